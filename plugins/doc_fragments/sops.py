# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Where nerv.homelab's sops modules and lookup find age identities (plugins/module_utils/secrets/age.py)."""

    DOCUMENTATION = r"""
options:
  identity_files:
    description:
      - Age key files (C(AGE-SECRET-KEY-1...) lines) or OpenSSH private keys to decrypt with, tried before the
        places sops itself looks.
      - sops' places are also searched, in sops' order - E(SOPS_AGE_KEY), E(SOPS_AGE_KEY_FILE), E(SOPS_AGE_KEY_CMD),
        C($XDG_CONFIG_HOME/sops/age/keys.txt) (C(~/.config/sops/age/keys.txt)), then E(SOPS_AGE_SSH_PRIVATE_KEY_FILE)
        or C(~/.ssh/id_ed25519). An ed25519 SSH key also yields the X25519 identity ssh-to-age derives from it, as
        sops-nix does on a host.
    type: list
    elements: path
    default: []
notes:
  - Implements the sops 3.x file format natively (AES-256-GCM values, SHA-512 MAC, age-wrapped data key); the sops
    binary is not needed. Only age recipients are handled; files with PGP, AWS, GCP, Azure, HashiCorp Vault or
    HuaweiCloud keys, or with several key groups (Shamir), are refused naming the feature, and so are such
    C(.sops.yaml) creation rules.
  - A file whose MAC does not verify, or that no available identity opens, is refused with a message naming the file
    and the recipients it is encrypted to.
  - Values, private keys and data keys never appear in a module's result, diff or log, nor in an error message.
requirements:
  - pyrage >= 1.4
  - cryptography
  - PyYAML
"""

    # The identities option alone, for a module that reads the admins' identities but no sops file (keys_backup).
    IDENTITIES = r"""
options:
  identity_files:
    description:
      - Age key files (C(AGE-SECRET-KEY-1...) lines) or OpenSSH private keys to read identities from, besides the
        places sops looks - E(SOPS_AGE_KEY), E(SOPS_AGE_KEY_FILE), E(SOPS_AGE_KEY_CMD),
        C($XDG_CONFIG_HOME/sops/age/keys.txt) (C(~/.config/sops/age/keys.txt)), then E(SOPS_AGE_SSH_PRIVATE_KEY_FILE)
        or C(~/.ssh/id_ed25519).
    type: list
    elements: path
    default: []
requirements:
  - pyrage >= 1.4
  - cryptography
"""
