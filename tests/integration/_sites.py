"""Where the site directories and their site files are."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory"
DEMO_SITE = INVENTORY / "demo" / "site.yml"
# The sites the repository ships; every one must validate and load as an inventory.
SHIPPED_SITES = ("demo", "example-proxmox", "example-baremetal")


def site_dirs() -> list[Path]:
    """Every directory under inventory/ (each is one site)."""
    if not INVENTORY.is_dir():
        return []
    return sorted(p for p in INVENTORY.iterdir() if p.is_dir() and not p.name.startswith("."))


def site_file(site: str) -> Path:
    return INVENTORY / site / "site.yml"


@functools.cache
def site_schema() -> dict:
    """SITE_SCHEMA of plugins/module_utils/site/schema.py, loaded by path (it needs no ansible imports)."""
    path = REPO / "plugins" / "module_utils" / "site" / "schema.py"
    spec = importlib.util.spec_from_file_location("_nerv_site_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SITE_SCHEMA


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def bare_repository(directory: Path, name: str = "gitops.git") -> Path:
    """A bare Git repository with one commit on main, standing in for the site's GitHub repository."""
    bare, seed = directory / name, directory / f"{name}-seed"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git("init", "--quiet", "--initial-branch=main", str(seed))
    (seed / "README.md").write_text("gitops\n")
    git("add", "README.md", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", str(bare), "main", cwd=seed)
    return bare


def baremetal_site(tmp_path: Path, count: int) -> tuple[Path, Path, dict]:
    """(inventory dir, admin key file, site data): the bare-metal example trimmed to its first count hosts, with a
    fresh admin age identity; also a client SSH key at tmp_path/id_ed25519."""
    import pyrage

    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text((INVENTORY / "example-baremetal" / "hosts.yml").read_text())
    data = yaml.safe_load((INVENTORY / "example-baremetal" / "site.yml").read_text())
    data["hosts"] = data["hosts"][:count]
    identity = pyrage.x25519.Identity.generate()
    data["sops"]["admin_recipients"] = [str(identity.to_public())]
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    admin = tmp_path / "admin-keys.txt"
    admin.write_text(f"{identity}\n")
    admin.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id_ed25519")], check=True)
    return inventory, admin, data


def add_site_ca(site_dir: Path, key_dir: Path, identity_text: str | None = None) -> Path:
    """Make site_dir/secrets/site-ca.sops.yaml as the keys phase does (nerv.homelab.site_ca's code, for the site's
    domain), encrypted to an admin age identity (identity_text, else a fresh one); returns a 0600 key file in key_dir
    holding that identity."""
    import pyrage

    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import site_ca

    identity = pyrage.x25519.Identity.from_str(identity_text.strip()) if identity_text else None
    identity = identity or pyrage.x25519.Identity.generate()
    key_dir.mkdir(parents=True, exist_ok=True)
    key_file = key_dir / "site-ca-admin.agekey"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    domain = yaml.safe_load((site_dir / "site.yml").read_text())["network"]["domain"]
    path, recipients = str(site_dir / "secrets" / "site-ca.sops.yaml"), [str(identity.to_public())]
    params = {"path": path, "domain": domain, "common_name": None, "validity_days": 30, "rotate": False,
              "recipients": recipients, "config": None}  # fmt: skip
    site_ca.task(params, [], check_mode=False)
    return key_file
