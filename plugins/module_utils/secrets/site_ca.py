# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site CA: one private key and a self-signed CA certificate for the site's domain, made on the controller once
and kept sops-encrypted (keys tls.crt and tls.key, as a Kubernetes TLS Secret names them). cert-manager's ClusterIssuer
site-ca and Caddy on the site's hosts both sign with it, so a browser that trusts this one certificate trusts the
cluster's dashboards and the home services alike.

The key is made in memory and goes only into the encrypted file: never into a result, a diff or a message.
"""

from __future__ import annotations

import datetime
import hashlib

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # require_libraries (secrets.age) names the missing library before anything here runs
    x509 = None

# Its file in the site's secrets directory (and in the assembled flake's secrets/)
FILE_NAME = "site-ca.sops.yaml"
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
# Ten years: the CA is installed by hand in browsers and devices, and every leaf certificate (cert-manager's, Caddy's)
# is short-lived and renewed under it; a rotation is a deliberate act (rotate), not an expiry surprise.
VALIDITY_DAYS = 3650
# Caddy's internal CA signs its leaf certificates with an intermediate it makes under the root: one level below it.
PATH_LENGTH = 1


class SiteCaError(NervError):
    """A site CA that cannot be used as it is (wrong domain, not a CA, keys missing); names the fix."""


def new_site_ca(common_name: str, domain: str, days: int = VALIDITY_DAYS, now=None) -> tuple[str, str]:
    """(certificate PEM, private key PEM) of a new self-signed CA, ECDSA P-256, whose names are constrained to
    domain (and its subdomains): the CA cannot vouch for names outside the site even if its key leaks."""
    # timezone.utc, not datetime.UTC: module_utils stay importable on the older Pythons of managed nodes
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nerv.homelab"),
    ])  # fmt: skip
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        # an hour back: a host whose clock is a little behind still accepts it
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=PATH_LENGTH), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(domain)], excluded_subtrees=None), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert_pem, key_pem


def _ca_usage():
    return x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                         decipher_only=False)  # fmt: skip


def describe(cert_pem: str) -> dict:
    """What the result says of a CA certificate (public): subject, validity, fingerprint, the domain it is for."""
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    return {
        "certificate": cert_pem,
        "subject": certificate.subject.rfc4514_string(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "sha256_fingerprint": hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "domains": permitted_domains(certificate),
    }


def permitted_domains(certificate) -> list | None:
    """The DNS names a CA certificate's name constraints permit; None when it has none (any name)."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    return [s.value for s in constraints.permitted_subtrees or [] if isinstance(s, x509.DNSName)]


def check_existing(path: str, plain: dict, domain: str) -> str:
    """The certificate PEM of an existing CA file after checking it is one this site can use: both keys there, a CA,
    the key belonging to the certificate, and a domain its name constraints allow. SiteCaError names the fix."""
    cert_pem, key_pem = plain.get(CERT_KEY), plain.get(KEY_KEY)
    rotate = "set rotate to make a new CA (every certificate issued from it is then re-issued)"
    if not isinstance(cert_pem, str) or not isinstance(key_pem, str):
        raise SiteCaError(f"{path} does not hold {CERT_KEY} and {KEY_KEY}: {rotate}")
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except ValueError:
        raise SiteCaError(f"{path}: {CERT_KEY} or {KEY_KEY} is not PEM: {rotate}") from None
    if not _is_ca(certificate):
        raise SiteCaError(f"{path}: {CERT_KEY} is not a CA certificate: {rotate}")
    if _public_der(key.public_key()) != _public_der(certificate.public_key()):
        raise SiteCaError(f"{path}: {KEY_KEY} is not the key of {CERT_KEY}: {rotate}")
    domains = permitted_domains(certificate)
    if domains is not None and not any(_within(domain, d) for d in domains):
        raise SiteCaError(
            f"{path}: the CA is constrained to {', '.join(domains) or 'no names'}, not the site's domain {domain} "
            f"(network.domain changed?): {rotate}"
        )
    return cert_pem


def _is_ca(certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _public_der(public) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _within(name: str, constraint: str) -> bool:
    name, constraint = name.lower().rstrip("."), constraint.lower().lstrip(".").rstrip(".")
    return name == constraint or name.endswith("." + constraint)


def task(params: dict, identities: list, check_mode: bool) -> dict:
    """nerv.homelab.site_ca: the CA made (written unless check mode) when the file is missing or rotate is asked, else
    the existing one decrypted and checked, never replaced; no secret in the result."""
    path, domain = params["path"], params["domain"].lower().rstrip(".")
    if params["validity_days"] < 1:
        raise SiteCaError("validity_days must be at least 1")
    document = files.open_document(path, "yaml")
    if document is not None and not params["rotate"]:
        ca = describe(check_existing(path, files.decrypt(document, identities, path), domain))
        return {"changed": False, "path": path, "created": False, "rotated": False,
                "recipients": document.recipients, **ca}  # fmt: skip
    cert_pem, key_pem = new_site_ca(params["common_name"] or f"{domain} CA", domain, params["validity_days"])
    values = {(CERT_KEY,): cert_pem, (KEY_KEY,): key_pem}
    change = files.plan_values(path, identities, values, [], params["recipients"], None, "yaml",
                               sops_config=params["config"])  # fmt: skip
    ca = describe(cert_pem)
    if check_mode:
        # the CA made for the plan is thrown away: nothing about it describes what a real run would make
        ca = dict.fromkeys(ca)
    else:
        change.apply()
    return {"changed": True, "path": path, "created": change.created, "rotated": not change.created,
            "recipients": change.after_recipients, "diff": change.diff(), **ca}  # fmt: skip
