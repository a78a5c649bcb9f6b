"""What the fleet playbooks' tests share: a flake directory's files, and a host's age identity from its SSH key."""

from __future__ import annotations

from pathlib import Path


def snapshot(flake):
    return {p.relative_to(flake).as_posix(): p.read_bytes() for p in flake.rglob("*") if p.is_file()}


def host_identity(ssh_private: Path) -> Path:
    """The age identity sops-nix derives from a host's SSH key (sops.age.sshKeyPaths, as ssh-to-age does), in a
    key file beside it."""
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age

    ids = [i for i in age.identities_from_ssh_key(ssh_private.read_bytes(), "test") if i.public.startswith("age1")]
    key_file = ssh_private.with_suffix(".agekey")
    key_file.write_text(f"{ids[0].key}\n")
    key_file.chmod(0o600)
    return key_file
