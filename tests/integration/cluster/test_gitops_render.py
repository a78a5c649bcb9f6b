"""gitops_render in a real playbook: check mode writes nothing, the first run writes the platform, the second
changes nothing, and a change of the site's MetalLB pool rewrites exactly that file. With monitoring, Grafana's
admin password is made once into a sops file the real sops decrypts, and is shown nowhere."""

from __future__ import annotations

import shutil
import stat

import yaml

from .._sites import INVENTORY

SECRET = "platform/home/infrastructure/grafana-admin.sops.yaml"


def render(ansible_cli, site_file, checkout, check=False, recipients=None, ok=True):
    args = {"site_file": str(site_file), "dest": str(checkout)}
    if recipients:
        args["sops_recipients"] = recipients
    task = {"name": "render", "nerv.homelab.gitops_render": args}
    result = ansible_cli.playbook([{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": [task]}],
                                  "--diff", "-v", check=check)  # fmt: skip
    assert (result.rc == 0) == ok, result.describe()
    return result, result.task("render")


def shown(result, ansible_cli) -> str:
    """Everything the run showed or recorded: both streams and the result files of the harness."""
    recorded = "".join(p.read_text() for p in ansible_cli.tmp_path.glob("results-*.json"))
    return result.output + recorded


def test_render_once_then_only_what_changed(ansible_cli, real_sops, tmp_path):
    site_file = tmp_path / "site.yml"
    shutil.copy(INVENTORY / "example-proxmox" / "site.yml", site_file)
    checkout = tmp_path / "gitops"
    checkout.mkdir()

    recipients = [real_sops.recipient]

    _result, checked = render(ansible_cli, site_file, checkout, check=True, recipients=recipients)
    assert checked["changed"] and list(checkout.iterdir()) == []
    assert SECRET in checked["changed_files"]

    _result, first = render(ansible_cli, site_file, checkout, recipients=recipients)
    assert first["changed"] and first["changed_files"] == first["files"]
    stages = list(yaml.safe_load_all((checkout / "clusters/home/stages.yaml").read_text()))
    assert [s["metadata"]["name"] for s in stages] == ["infrastructure", "infrastructure-config", "platform", "apps"]

    _result, second = render(ansible_cli, site_file, checkout, recipients=recipients)
    assert not second["changed"] and second["changed_files"] == []

    site = yaml.safe_load(site_file.read_text())
    site["metallb"]["addresses"] = ["192.168.10.224/28"]
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    result, third = render(ansible_cli, site_file, checkout, recipients=recipients)
    assert third["changed_files"] == ["platform/home/infrastructure-config/metallb-pool.yaml"]
    assert "192.168.10.224/28" in result.output, "--diff shows the change"


def test_a_missing_checkout_is_a_clear_error(ansible_cli, tmp_path):
    task = {"name": "render", "nerv.homelab.gitops_render": {
        "site_file": str(INVENTORY / "example-proxmox" / "site.yml"), "dest": str(tmp_path / "nope")}}  # fmt: skip
    result = ansible_cli.playbook([{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    assert result.rc != 0 and "is not a directory" in result.task("render")["msg"]


def test_grafanas_password_is_made_once_encrypted_and_never_shown(ansible_cli, real_sops, tmp_path):
    site_file = tmp_path / "site.yml"
    shutil.copy(INVENTORY / "example-proxmox" / "site.yml", site_file)
    checkout = tmp_path / "gitops"
    checkout.mkdir()
    recipients = [real_sops.recipient]

    result, first = render(ansible_cli, site_file, checkout, recipients=recipients)
    assert first["changed"] and SECRET in first["changed_files"] and SECRET in first["files"]
    path = checkout / SECRET
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (secret,) = yaml.safe_load_all(real_sops.decrypt(path))
    assert secret["metadata"] == {"name": "grafana-admin", "namespace": "monitoring"}
    password = secret["stringData"]["admin-password"]
    assert secret["stringData"]["admin-user"] == "admin" and len(password) >= 32
    assert password not in path.read_text(), "only stringData is encrypted, and it is"
    encrypted = yaml.safe_load(path.read_text())
    assert encrypted["kind"] == "Secret" and encrypted["sops"]["encrypted_regex"] == "^(data|stringData)$"
    assert [a["recipient"] for a in encrypted["sops"]["age"]] == recipients
    assert password not in shown(result, ansible_cli), "the password reached the output or the results"
    assert "(sops-encrypted Secret monitoring/grafana-admin: not shown)" in result.output
    (kustomization,) = yaml.safe_load_all((checkout / "platform/home/infrastructure/kustomization.yaml").read_text())
    assert "grafana-admin.sops.yaml" in kustomization["resources"]

    before = path.read_text()
    result, second = render(ansible_cli, site_file, checkout, recipients=recipients)
    assert not second["changed"] and second["changed_files"] == [] and SECRET in second["files"]
    assert path.read_text() == before, "the password is kept, never made again"
    assert password not in shown(result, ansible_cli)

    path.unlink()
    _result, checked = render(ansible_cli, site_file, checkout, check=True, recipients=recipients)
    assert checked["changed_files"] == [SECRET] and not path.exists(), "check mode writes nothing"


def test_monitoring_without_recipients_fails_naming_the_option_and_writes_nothing(ansible_cli, tmp_path):
    checkout = tmp_path / "gitops"
    checkout.mkdir()
    _result, failed = render(ansible_cli, INVENTORY / "example-proxmox" / "site.yml", checkout, ok=False)
    assert "sops_recipients" in failed["msg"] and "Grafana" in failed["msg"]
    assert list(checkout.iterdir()) == []


def test_a_secret_left_decrypted_in_the_checkout_is_refused(ansible_cli, real_sops, tmp_path):
    checkout = tmp_path / "gitops"
    (checkout / "platform/home/infrastructure").mkdir(parents=True)
    (checkout / SECRET).write_text("apiVersion: v1\nkind: Secret\nstringData:\n  admin-password: canary-Clear-1\n")
    result, failed = render(ansible_cli, INVENTORY / "example-proxmox" / "site.yml", checkout,
                            recipients=[real_sops.recipient], ok=False)  # fmt: skip
    assert "is not a sops-encrypted file" in failed["msg"] and "canary-Clear-1" not in result.output
    written = [str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file()]
    assert written == [SECRET], "nothing else was written"
