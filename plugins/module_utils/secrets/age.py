# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""age keys for sops: recipients, identities, ssh-to-age, and wrapping a file's data key.

The age primitives come from pyrage (the Rust ``age`` crate); this module only parses, converts and finds keys.
No function here puts a private key or a data key in an exception message.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run
from ansible_collections.nerv.homelab.plugins.module_utils.site.formats import bech32_decode, bech32_encode

# Each third-party import with its X_IMPORT_ERROR for require(); the sanity import test of the modules runs without
# them. cryptography's other modules (sops/document.py, site_ca.py) are checked through CRYPTOGRAPHY_IMPORT_ERROR.
try:
    import pyrage
except ImportError as exc:
    pyrage, PYRAGE_IMPORT_ERROR = None, exc
else:
    PYRAGE_IMPORT_ERROR = None

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
except ImportError as exc:
    serialization = ed25519 = None
    CRYPTOGRAPHY_IMPORT_ERROR = exc
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

# Field prime of Curve25519/Ed25519, for the Edwards -> Montgomery conversion ssh-to-age does.
_P = 2**255 - 19
SSH_RECIPIENT_TYPES = ("ssh-ed25519", "ssh-rsa")


class SopsError(NervError):
    """Any sops/age failure; the module boundary turns it into fail_json. Never carries secret material."""


def require(library: str, import_error: ImportError | None) -> None:
    """SopsError, in the words of Ansible's missing_required_lib, when library could not be imported."""
    if import_error is not None:
        raise SopsError(missing_required_lib(library)) from import_error


def require_libraries() -> None:
    """pyrage and cryptography, which every sops and age operation needs."""
    require("pyrage >= 1.4", PYRAGE_IMPORT_ERROR)
    require("cryptography", CRYPTOGRAPHY_IMPORT_ERROR)


def check_recipient(text: str) -> str:
    """The recipient, stripped, when it is an X25519 age recipient or an ssh-ed25519/ssh-rsa public key."""
    value = str(text).strip()
    if value.split(" ", 1)[0] in SSH_RECIPIENT_TYPES:
        _ssh_recipient(value)
        return " ".join(value.split()[:2])
    try:
        hrp, payload = bech32_decode(value)
    except ValueError as exc:
        raise SopsError(f"{value!r} is not an age recipient ({exc}): expected age1... or an ssh-ed25519 key") from None
    if hrp != "age" or len(payload) != 32:
        raise SopsError(f"{value!r} is not an X25519 age recipient (age1... with a 32-byte key)")
    return value


def _ssh_recipient(value: str):
    require_libraries()
    try:
        return pyrage.ssh.Recipient.from_str(" ".join(value.split()[:2]))
    except Exception:  # pyrage raises its own RecipientError or ValueError
        raise SopsError(f"{value.split()[0]} key {value.split()[1][:16]}... is not a valid SSH public key") from None


def _recipient(value: str):
    require_libraries()
    value = check_recipient(value)
    if value.startswith("ssh-"):
        return _ssh_recipient(value)
    return pyrage.x25519.Recipient.from_str(value)


def wrap_data_key(data_key: bytes, recipient: str) -> str:
    """The data key encrypted to one recipient as an ASCII-armored age file, as sops stores it."""
    armored = pyrage.encrypt(data_key, [_recipient(recipient)], armored=True)
    text = armored.decode("ascii")
    return text if text.endswith("\n") else text + "\n"


@dataclass
class Identity:
    """An age identity and where it came from; ``public`` is its recipient when known (for messages)."""

    key: object
    source: str
    public: str = ""


def unwrap_data_key(stanzas: list[dict], identities: list[Identity]) -> bytes:
    """Decrypt the data key from the first stanza one of the identities opens; SopsError naming recipients."""
    require_libraries()
    if not identities:
        raise SopsError(
            "no age identity found; set SOPS_AGE_KEY_FILE to an age key file (make one with `age-keygen -o keys.txt`),"
            f" or put it in ~/.config/sops/age/keys.txt; the file is encrypted to: {_recipients_of(stanzas)}"
        )
    keys = [identity.key for identity in identities]
    for stanza in stanzas:
        try:
            data_key = pyrage.decrypt(str(stanza.get("enc", "")).encode(), keys)
        except Exception:  # pyrage.DecryptError: this stanza is not for any of our identities
            continue
        if len(data_key) != 32:
            raise SopsError(f"the data key for {stanza.get('recipient')} is {len(data_key)} bytes, not 32")
        return data_key
    tried = ", ".join(i.public or i.source for i in identities)
    raise SopsError(
        f"none of the age identities ({tried}) opens this file; it is encrypted to: {_recipients_of(stanzas)}"
    )


def _recipients_of(stanzas: list[dict]) -> str:
    return ", ".join(str(s.get("recipient")) for s in stanzas) or "(no age recipient)"


# ---- identities -------------------------------------------------------------------------------------------


def parse_identities(text: str, source: str) -> list[Identity]:
    """Every AGE-SECRET-KEY-1... line of an age key file; a malformed line is an error naming the source only."""
    require_libraries()
    found = []
    for number, line in enumerate(str(text).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = pyrage.x25519.Identity.from_str(line)
        except Exception:
            raise SopsError(f"line {number} of {source} is not an age identity (AGE-SECRET-KEY-1...)") from None
        found.append(Identity(key, source, str(key.to_public())))
    return found


def identities_from_ssh_key(data: bytes, source: str) -> list[Identity]:
    """An OpenSSH private key as identities: age's ssh identity, and for ed25519 the ssh-to-age X25519 one.

    The second is what sops-nix derives from a host key (sops.age.sshKeyPaths), so files encrypted to a host's
    age1... recipient open with the host's SSH key. An encrypted (passphrase) key yields nothing."""
    require_libraries()
    found = []
    try:
        found.append(Identity(pyrage.ssh.Identity.from_buffer(data), source))
    except Exception:
        return []
    try:
        private = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError):
        return found
    if isinstance(private, ed25519.Ed25519PrivateKey):
        identity = age_identity_from_ed25519(private)
        key = pyrage.x25519.Identity.from_str(identity)
        found.append(Identity(key, source, str(key.to_public())))
    return found


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise SopsError(f"cannot read {what} {path}: {exc.strerror}") from None


def _key_file(path: str, what: str) -> list[Identity]:
    return parse_identities(_read(path, what).decode(), path)


def identities_in_file(path: str) -> list[Identity]:
    """The identities of an age key file or an OpenSSH private key."""
    data = _read(path, "identity file")
    if b"PRIVATE KEY" in data:
        return identities_from_ssh_key(data, path)
    return parse_identities(data.decode("utf-8", "replace"), path)


def config_key_file(env: dict) -> str:
    """The age key file sops reads from the user's configuration: $XDG_CONFIG_HOME/sops/age/keys.txt."""
    return os.path.join(env.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "sops", "age", "keys.txt")


def load_identities(env: dict | None = None, extra_files: list | None = None) -> list[Identity]:
    """Identities from the places sops looks, in its order, plus extra_files (age key files or SSH keys)."""
    env = os.environ if env is None else env
    found = [identity for path in extra_files or [] for identity in identities_in_file(path)]
    if env.get("SOPS_AGE_KEY"):
        found += parse_identities(env["SOPS_AGE_KEY"], "SOPS_AGE_KEY")
    if env.get("SOPS_AGE_KEY_FILE"):
        found += _key_file(env["SOPS_AGE_KEY_FILE"], "SOPS_AGE_KEY_FILE")
    if env.get("SOPS_AGE_KEY_CMD"):
        found += parse_identities(_key_command(env["SOPS_AGE_KEY_CMD"]), "SOPS_AGE_KEY_CMD")
    default = config_key_file(env)
    if os.path.isfile(default):
        found += _key_file(default, "age key file")
    for path in _ssh_identity_paths(env):
        found += identities_from_ssh_key(_read(path, "SSH key"), path)
    return found


# The modules' identity_files (doc_fragments/sops.py): key files tried before the places sops looks
IDENTITY_OPTIONS = {"identity_files": {"type": "list", "elements": "path", "default": []}}


def identities(params: dict) -> list:
    return load_identities(extra_files=params.get("identity_files") or [])


def _ssh_identity_paths(env) -> list:
    if env.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE"):
        return [env["SOPS_AGE_SSH_PRIVATE_KEY_FILE"]]
    home_keys = (os.path.expanduser(f"~/.ssh/{name}") for name in ("id_ed25519", "id_rsa"))
    return [path for path in home_keys if os.path.isfile(path)][:1]


def _key_command(command: str) -> str:
    # the command's own text is not repeated in the errors: it may carry a secret (a passphrase argument)
    try:
        argv = shlex.split(command)
    except ValueError:
        raise SopsError("SOPS_AGE_KEY_CMD could not run: its quoting is unbalanced") from None
    done = run(argv, 60, error=SopsError, late="SOPS_AGE_KEY_CMD could not run: no answer within 60 s")
    if done.rc != 0:
        raise SopsError(f"SOPS_AGE_KEY_CMD exited with {done.rc}")
    return done.stdout


# ---- ssh-to-age and host keys ------------------------------------------------------------------------------


def ssh_public_key_blob(public_line: str) -> bytes:
    """The 32-byte ed25519 point of an 'ssh-ed25519 AAAA... [comment]' line; SopsError when it is not one."""
    require_libraries()
    parts = str(public_line).split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise SopsError("the host public key must be an ssh-ed25519 key line ('ssh-ed25519 AAAA... comment')")
    try:
        key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (ValueError, TypeError, UnicodeError):
        raise SopsError(f"ssh-ed25519 key {parts[1][:16]}... is not a valid public key") from None
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def age_recipient_from_ssh(public_line: str) -> str:
    """The age1... recipient ssh-to-age derives from an ssh-ed25519 public key (Edwards y -> Montgomery u)."""
    point = ssh_public_key_blob(public_line)
    y = int.from_bytes(point, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return bech32_encode("age", u.to_bytes(32, "little"))


def age_identity_from_ed25519(private) -> str:
    """The AGE-SECRET-KEY-1... identity ssh-to-age derives from an ed25519 private key: sha512(seed)[:32]."""
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return bech32_encode("age-secret-key-", hashlib.sha512(seed).digest()[:32]).upper()


def new_age_identity() -> str:
    """A fresh X25519 age identity, AGE-SECRET-KEY-1... (as age-keygen writes it)."""
    require_libraries()
    return str(pyrage.x25519.Identity.generate())


def age_public(identity: str) -> str:
    """The age1... recipient of an AGE-SECRET-KEY-1... identity; SopsError (without the value) otherwise."""
    require_libraries()
    try:
        return str(pyrage.x25519.Identity.from_str(str(identity).strip()).to_public())
    except Exception:  # pyrage raises its own IdentityError or ValueError; the value is a secret, never echoed
        raise SopsError("the value is not an age identity as age-keygen writes it") from None


def new_ssh_host_key(comment: str) -> tuple[bytes, str]:
    """A fresh ed25519 key: (OpenSSH private key bytes, 'ssh-ed25519 AAAA... comment')."""
    require_libraries()
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return pem, f"{_openssh_public(private)} {comment}".strip()


def public_line_of(private_pem: bytes) -> str:
    """'ssh-ed25519 AAAA...' of an OpenSSH ed25519 private key (to check a stored pair belongs together)."""
    require_libraries()
    try:
        private = serialization.load_ssh_private_key(private_pem, password=None)
    except (ValueError, TypeError):
        raise SopsError("the stored host private key is not an unencrypted OpenSSH key") from None
    return _openssh_public(private)


def _openssh_public(private) -> str:
    public = private.public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
