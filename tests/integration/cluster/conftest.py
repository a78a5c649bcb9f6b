"""Fixtures of the cluster tests."""

from __future__ import annotations

import shutil

import pytest
import yaml

from .._ansible import AnsibleCli
from .._kubectl import kubectl_path
from .._sites import add_site_ca, site_dirs


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, tuple[dict, object]]:
    """site -> (site data, checkout): every site under inventory/ rendered by gitops_render in one playbook run,
    each with its site CA as the keys phase leaves it."""
    kubectl_path()
    root = tmp_path_factory.mktemp("gitops-rendered")
    checkouts, tasks = {}, []
    for directory in site_dirs():
        site = directory.name
        checkout = root / site
        checkout.mkdir()
        data = yaml.safe_load((directory / "site.yml").read_text())
        checkouts[site] = (data, checkout)
        # a copy of the site with its site CA, as the keys phase leaves it, and the admin key that opens it
        site_dir = root / f"{site}-site"
        shutil.copytree(directory, site_dir)
        key = add_site_ca(site_dir, root / f"{site}-key")
        # the admins' recipients, as the role gitops_platform passes them (the Secrets made once need them)
        module_args = {"site_file": str(site_dir / "site.yml"), "dest": str(checkout), "identity_files": [str(key)],
                       "sops_recipients": data["sops"]["admin_recipients"]}  # fmt: skip
        tasks.append({"name": f"render {site}", "nerv.homelab.gitops_render": module_args})
    result = AnsibleCli(root).playbook([{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    assert result.rc == 0, result.describe()
    return checkouts
