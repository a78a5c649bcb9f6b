"""The role gitops_platform against a local bare Git repository standing in for GitHub: check mode pushes
nothing, the first run commits and pushes the platform, the second changes nothing, and an app removed from the site
is removed from the repository by a commit."""

from __future__ import annotations

import shutil

import pytest
import yaml

from .._sites import INVENTORY, add_site_ca, bare_repository, git


@pytest.fixture
def remote(tmp_path):
    if not shutil.which("git"):
        pytest.skip("needs git (Debian package git)")
    return bare_repository(tmp_path, "home-gitops.git")


def site_copy(tmp_path):
    """(site file, admin key file): the Proxmox example with its site CA, as the keys phase leaves the site."""
    import pyrage

    site_dir = tmp_path / "site"
    if not site_dir.exists():
        site_dir.mkdir()
        identity = pyrage.x25519.Identity.generate()
        site = yaml.safe_load((INVENTORY / "example-proxmox" / "site.yml").read_text())
        site["sops"]["admin_recipients"] = [str(identity.to_public())]
        (site_dir / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
        add_site_ca(site_dir, tmp_path, str(identity))
    return site_dir / "site.yml", tmp_path / "site-ca-admin.agekey"


def run(ansible_cli, tmp_path, remote, check=False):
    site_file, admin = site_copy(tmp_path)
    play = [{"name": "g", "hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "nerv.homelab.site", "vars": {"site_show_plan": False}},
        {"role": "nerv.homelab.gitops_platform"}]}]  # fmt: skip
    extra = {"site_file": str(site_file), "gitops_platform_repo_url": f"file://{remote}",
             "gitops_platform_checkout": str(tmp_path / "checkout")}  # fmt: skip
    # the admin's identity opens the site CA, as on an admin's controller
    env = {"SOPS_AGE_KEY_FILE": str(admin), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = ansible_cli.playbook(play, "--diff", extra_vars=extra, check=check, env=env)
    assert result.rc == 0, result.describe()
    return result


def commits(remote):
    return git("--git-dir", str(remote), "log", "--format=%s", "main").splitlines()


def test_commits_and_pushes_only_when_the_platform_changed(ansible_cli, tmp_path, remote):
    checked = run(ansible_cli, tmp_path, remote, check=True)
    assert checked.task("Render the platform into the checkout")["changed"] and commits(remote) == ["initial"]

    first = run(ansible_cli, tmp_path, remote)
    assert first.stats()["changed"] > 0
    assert commits(remote)[0].startswith("nerv.homelab: platform of site home") and len(commits(remote)) == 2
    tree = git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main").splitlines()
    assert "clusters/home/stages.yaml" in tree and "platform/home/infrastructure/metallb.yaml" in tree
    # the example has monitoring: Grafana's admin Secret is committed, and only encrypted
    secret = yaml.safe_load(
        git("--git-dir", str(remote), "show", "main:platform/home/infrastructure/grafana-admin.sops.yaml")
    )
    assert secret["stringData"]["admin-password"].startswith("ENC[AES256_GCM,") and secret["sops"]["age"]
    # and the site CA, as cert-manager's Secret, only encrypted
    ca = yaml.safe_load(
        git("--git-dir", str(remote), "show", "main:platform/home/infrastructure-config/site-ca.sops.yaml")
    )
    assert ca["metadata"]["name"] == "site-ca" and ca["stringData"]["tls.key"].startswith("ENC[AES256_GCM,")
    rules = yaml.safe_load(git("--git-dir", str(remote), "show", "main:.sops.yaml"))["creation_rules"]
    admins = yaml.safe_load(site_copy(tmp_path)[0].read_text())["sops"]["admin_recipients"]
    assert rules[0]["path_regex"].startswith("^platform/home/") and rules[0]["age"] == ",".join(admins)

    second = run(ansible_cli, tmp_path, remote)
    assert second.stats()["changed"] == 0 and len(commits(remote)) == 2, second.describe()


def tree(remote):
    return git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main").splitlines()


def test_an_app_removed_from_the_site_is_committed_as_a_removal(ansible_cli, tmp_path, remote):
    run(ansible_cli, tmp_path, remote)
    assert "platform/home/apps/podinfo.yaml" in tree(remote)
    site_file, _admin = site_copy(tmp_path)
    site = yaml.safe_load(site_file.read_text())
    del site["apps"]
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))

    removed = run(ansible_cli, tmp_path, remote)
    assert removed.task("Render the platform into the checkout")["removed_files"] == ["platform/home/apps/podinfo.yaml"]
    assert "platform/home/apps/podinfo.yaml" not in tree(remote) and len(commits(remote)) == 3
    assert "platform/home/apps/kustomization.yaml" in tree(remote)
    assert "platform/home/infrastructure/grafana-admin.sops.yaml" in tree(remote), (
        "monitoring stays: so does its Secret"
    )
    status = git("-C", str(tmp_path / "checkout"), "status", "--porcelain")
    assert status == "", "the checkout is clean: the removal is in the commit"

    again = run(ansible_cli, tmp_path, remote)
    assert again.stats()["changed"] == 0 and len(commits(remote)) == 3
