"""age keys: ssh-to-age both ways, identities from where sops looks, and recipients checked early."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError

pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")


def test_the_recipient_from_a_public_key_matches_the_identity_from_its_private_key():
    # Two independent derivations must meet: Edwards y -> Montgomery u on the public side, and the X25519 public
    # key of sha512(seed)[:32] on the private side (what sops-nix uses on the host).
    for _round in range(5):
        pem, public = age.new_ssh_host_key("root@h")
        identities = age.identities_from_ssh_key(pem, "h")
        assert age.age_recipient_from_ssh(public) in [i.public for i in identities]


def test_a_key_made_by_ssh_keygen_opens_what_its_recipient_can_read(tmp_path):
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        pytest.skip("needs ssh-keygen (Debian package openssh-client)")
    key = tmp_path / "ssh_host_ed25519_key"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    recipient = age.age_recipient_from_ssh((tmp_path / "ssh_host_ed25519_key.pub").read_text())
    wrapped = age.wrap_data_key(b"k" * 32, recipient)
    identities = age.identities_from_ssh_key(key.read_bytes(), str(key))
    assert age.unwrap_data_key([{"recipient": recipient, "enc": wrapped}], identities) == b"k" * 32


def test_the_identity_is_bech32_upper_case():
    pem, _public = age.new_ssh_host_key("x")
    private = age.serialization.load_ssh_private_key(pem, password=None)
    assert age.age_identity_from_ed25519(private).startswith("AGE-SECRET-KEY-1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age1qqqq", "not an age recipient"),
        ("ssh-ed25519 AAAAnotbase64", "not a valid SSH public key"),
        ("age1prquxwcyd8xat0p3wep7q5mtk0yw4zx7kj755j32tye9dwht8q4qdxvdc8", "bad checksum"),
    ],
)
def test_bad_recipients_are_refused(text, message):
    with pytest.raises(SopsError, match=message):
        age.check_recipient(text)


def test_a_host_public_key_must_be_ed25519():
    with pytest.raises(SopsError, match="ssh-ed25519"):
        age.age_recipient_from_ssh("ssh-rsa AAAAB3NzaC1yc2E root@h")


def test_identities_come_from_sops_variables_in_order(tmp_path):
    first, second = (age.pyrage.x25519.Identity.generate() for _i in range(2))
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# created: now\n# public key: {second.to_public()}\n{second}\n")
    env = {"SOPS_AGE_KEY": str(first), "SOPS_AGE_KEY_FILE": str(key_file), "XDG_CONFIG_HOME": str(tmp_path / "none")}
    found = age.load_identities(env)
    assert [i.public for i in found][:2] == [str(first.to_public()), str(second.to_public())]
    assert [i.source for i in found][:2] == ["SOPS_AGE_KEY", str(key_file)]


def test_a_broken_key_file_names_the_line_not_the_key(tmp_path):
    key_file = tmp_path / "keys.txt"
    key_file.write_text("AGE-SECRET-KEY-1CANARYCANARY\n")
    with pytest.raises(SopsError) as caught:
        age.load_identities({"SOPS_AGE_KEY_FILE": str(key_file), "XDG_CONFIG_HOME": str(tmp_path)})
    assert "line 1" in str(caught.value) and "CANARY" not in str(caught.value)


def test_no_identity_says_how_to_make_one():
    with pytest.raises(SopsError, match="age-keygen"):
        age.unwrap_data_key([{"recipient": "age1x", "enc": ""}], [])


def test_an_identity_comes_from_the_key_command(tmp_path):
    identity = age.pyrage.x25519.Identity.generate()
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"{identity}\n")
    env = {"SOPS_AGE_KEY_CMD": f"cat {key_file}", "XDG_CONFIG_HOME": str(tmp_path / "none")}
    assert [i.source for i in age.load_identities(env)][:1] == ["SOPS_AGE_KEY_CMD"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("false CANARY-passphrase", "^SOPS_AGE_KEY_CMD exited with 1$"),
        ("/no/such/command CANARY-passphrase", "^cannot run /no/such/command"),
        ("cat 'CANARY-passphrase", "^SOPS_AGE_KEY_CMD could not run: its quoting is unbalanced$"),
    ],
)
def test_a_failing_key_command_is_named_without_its_arguments(tmp_path, command, message):
    with pytest.raises(SopsError, match=message) as caught:
        age.load_identities({"SOPS_AGE_KEY_CMD": command, "XDG_CONFIG_HOME": str(tmp_path)})
    assert "CANARY" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "library"), [("PYRAGE_IMPORT_ERROR", "pyrage >= 1.4"), ("CRYPTOGRAPHY_IMPORT_ERROR", "cryptography")]
)
def test_a_library_that_did_not_import_is_named_as_missing_required_lib_names_it(monkeypatch, name, library):
    monkeypatch.setattr(age, name, ImportError(f"No module named {library!r}"))
    with pytest.raises(SopsError, match=rf"^Failed to import the required Python library \({library}\) on ") as caught:
        age.require_libraries()
    assert isinstance(caught.value.__cause__, ImportError)
