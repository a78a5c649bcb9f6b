"""The site CA: a CA certificate for the site's domain only (checked with cryptography's own path validation, name
constraints included), made once into a sops file, checked when it exists, replaced on request only, and its key in
no result."""

from __future__ import annotations

import datetime
import json

import pyrage
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import site_ca
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import parse_identities
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.site_ca import SiteCaError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.files import decrypt_file

DOMAIN = "demo.lab.example"


def _identity():
    identity = pyrage.x25519.Identity.generate()
    return parse_identities(f"{identity}\n", "test"), str(identity.to_public())


def _params(path, recipients, **extra) -> dict:
    return {"path": str(path), "domain": DOMAIN, "common_name": None, "validity_days": 3650, "rotate": False,
            "recipients": recipients, "config": None, **extra}  # fmt: skip


def _issue(issuer_cert, issuer_key, subject: str, *, ca=False, dns=None):
    """A certificate signed by issuer: an intermediate CA (ca) or a leaf for dns."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        builder = builder.add_extension(site_ca._ca_usage(), critical=True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _verify(root, leaf, dns: str, intermediates=()):
    store = verification.Store([root])
    verifier = verification.PolicyBuilder().store(store).build_server_verifier(x509.DNSName(dns))
    return verifier.verify(leaf, list(intermediates))


@pytest.fixture(scope="module")
def ca():
    cert_pem, key_pem = site_ca.new_site_ca(f"{DOMAIN} CA", DOMAIN)
    return x509.load_pem_x509_certificate(cert_pem.encode()), serialization.load_pem_private_key(key_pem.encode(), None)


def test_the_ca_is_a_self_signed_ca_for_ten_years(ca):
    cert, key = ca
    assert cert.subject == cert.issuer and cert.subject.rfc4514_string() == f"O=nerv.homelab,CN={DOMAIN} CA"
    cert.verify_directly_issued_by(cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 3650
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert site_ca.permitted_domains(cert) == [DOMAIN]


def test_it_signs_for_the_domain_directly_and_through_an_intermediate_as_caddy_does(ca):
    root, root_key = ca
    leaf, _key = _issue(root, root_key, "grafana", dns=f"grafana.{DOMAIN}")
    assert _verify(root, leaf, f"grafana.{DOMAIN}")[-1] == root
    intermediate, intermediate_key = _issue(root, root_key, "site CA intermediate", ca=True)
    proxied, _key = _issue(intermediate, intermediate_key, "nas", dns=f"nas.{DOMAIN}")
    assert len(_verify(root, proxied, f"nas.{DOMAIN}", [intermediate])) == 3


def test_a_name_outside_the_domain_is_refused_by_the_name_constraints(ca):
    root, root_key = ca
    for name in ("bank.example", f"{DOMAIN}.evil.example", "lab.example"):
        leaf, _key = _issue(root, root_key, "x", dns=name)
        with pytest.raises(verification.VerificationError):
            _verify(root, leaf, name)


def test_made_once_then_kept_and_checked(tmp_path):
    identities, recipient = _identity()
    path = tmp_path / "secrets" / "site-ca.sops.yaml"
    params = _params(path, [recipient])

    planned = site_ca.task(params, identities, check_mode=True)
    assert planned["changed"] and planned["created"] and planned["certificate"] is None and not path.exists()

    first = site_ca.task(params, identities, check_mode=False)
    assert first["changed"] and first["created"] and not first["rotated"] and first["recipients"] == [recipient]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    plain = decrypt_file(str(path), identities)
    assert sorted(plain) == ["tls.crt", "tls.key"] and plain["tls.crt"] == first["certificate"]
    key_body = plain["tls.key"].splitlines()[1]
    assert key_body not in json.dumps(first) and key_body not in path.read_text()
    assert '["tls.key"]' in first["diff"]["after"]

    before = path.read_text()
    second = site_ca.task(params, identities, check_mode=False)
    assert not second["changed"] and path.read_text() == before and second["certificate"] == first["certificate"]
    assert key_body not in json.dumps(second)


def test_rotation_is_on_request_only(tmp_path):
    identities, recipient = _identity()
    path = tmp_path / "site-ca.sops.yaml"
    first = site_ca.task(_params(path, [recipient]), identities, check_mode=False)
    checked = site_ca.task(_params(path, [recipient], rotate=True), identities, check_mode=True)
    assert (
        checked["changed"]
        and checked["rotated"]
        and decrypt_file(str(path), identities)["tls.crt"] == first["certificate"]
    ), "check mode replaces nothing"
    rotated = site_ca.task(_params(path, [recipient], rotate=True), identities, check_mode=False)
    assert rotated["changed"] and rotated["rotated"] and not rotated["created"]
    assert rotated["sha256_fingerprint"] != first["sha256_fingerprint"]
    assert decrypt_file(str(path), identities)["tls.crt"] == rotated["certificate"]


def test_a_ca_for_another_domain_is_refused_naming_rotate(tmp_path):
    identities, recipient = _identity()
    path = tmp_path / "site-ca.sops.yaml"
    site_ca.task(_params(path, [recipient]), identities, check_mode=False)
    before = path.read_text()
    with pytest.raises(SiteCaError, match="not the site's domain home.example.*rotate"):
        site_ca.task(_params(path, [recipient], domain="home.example"), identities, check_mode=False)
    assert path.read_text() == before
    # a subdomain of the CA's domain is inside its constraints
    inside = site_ca.task(_params(path, [recipient], domain=f"k8s.{DOMAIN}"), identities, check_mode=False)
    assert not inside["changed"]


def test_a_file_without_the_ca_is_refused(tmp_path):
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files

    identities, recipient = _identity()
    path = tmp_path / "site-ca.sops.yaml"
    files.plan_values(str(path), identities, {"token": "canary-not-a-ca"}, [], [recipient]).apply()
    with pytest.raises(SiteCaError, match="does not hold tls.crt and tls.key"):
        site_ca.task(_params(path, [recipient]), identities, check_mode=False)
    with pytest.raises(SiteCaError, match="at least 1"):
        site_ca.task(_params(path, [recipient], validity_days=0), identities, check_mode=False)
