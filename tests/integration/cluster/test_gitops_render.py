"""gitops_render in a real playbook: check mode writes nothing, the first run writes the platform, the second
changes nothing, and a change of the site's MetalLB pool rewrites exactly that file. With monitoring, Grafana's
admin password is made once into a sops file the real sops decrypts, is shown nowhere, and stays while the site keeps
monitoring (the prune takes it with monitoring). An app removed from the site is removed from the checkout (the
user's own files stay), and an app's values_sops reach the tree as a Secret encrypted for the recipients, checked
with the real sops binary."""

from __future__ import annotations

import shutil
import stat

import pyrage
import yaml

from .._kustomize import flux_build
from .._sites import INVENTORY, add_site_ca

SECRET = "platform/home/infrastructure/grafana-admin.sops.yaml"
CA_SECRET = "platform/home/infrastructure-config/site-ca.sops.yaml"
CANARY = "canary-5d1e0b7a-apps-values"


def ca_key(site_file):
    """The admin key the site CA beside site_file is encrypted to (add_site_ca), when the test made one."""
    return site_file.parent / "site-ca-admin.agekey"


def render(ansible_cli, site_file, checkout, check=False, env=None, ok=True, **args):
    module_args = {"site_file": str(site_file), "dest": str(checkout), **args}
    if ca_key(site_file).exists():
        module_args.setdefault("identity_files", [str(ca_key(site_file))])
    task = {"name": "render", "nerv.homelab.gitops_render": module_args}
    result = ansible_cli.playbook([{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": [task]}],
                                  "--diff", "-v", check=check, env=env)  # fmt: skip
    assert (result.rc == 0) == ok, result.describe()
    return result, result.task("render")


def shown(result, ansible_cli) -> str:
    """Everything the run showed or recorded: both streams and the result files of the harness."""
    recorded = "".join(p.read_text() for p in ansible_cli.tmp_path.glob("results-*.json"))
    return result.output + recorded


def example_site(tmp_path, admin=None, site_ca=True):
    """(site file, empty checkout): the Proxmox example in tmp_path, with its site CA as the keys phase makes it,
    encrypted to the admin (a RealSops: the identity the tests encrypt the checkout's secrets to as well)."""
    site_file = tmp_path / "site.yml"
    shutil.copy(INVENTORY / "example-proxmox" / "site.yml", site_file)
    if site_ca:
        add_site_ca(tmp_path, tmp_path, admin.key_file.read_text() if admin else None)
    checkout = tmp_path / "gitops"
    checkout.mkdir()
    return site_file, checkout


def edit_site(site_file, change):
    site = yaml.safe_load(site_file.read_text())
    change(site)
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))


def test_render_once_then_only_what_changed(ansible_cli, real_sops, tmp_path):
    site_file, checkout = example_site(tmp_path, real_sops)

    recipients = [real_sops.recipient]

    _result, checked = render(ansible_cli, site_file, checkout, check=True, sops_recipients=recipients)
    assert checked["changed"] and list(checkout.iterdir()) == []
    assert SECRET in checked["changed_files"]

    _result, first = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert first["changed"] and first["changed_files"] == first["files"]
    stages = list(yaml.safe_load_all((checkout / "clusters/home/stages.yaml").read_text()))
    assert [s["metadata"]["name"] for s in stages] == ["infrastructure", "infrastructure-config", "platform", "apps"]

    _result, second = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert not second["changed"] and second["changed_files"] == []

    site = yaml.safe_load(site_file.read_text())
    site["metallb"]["addresses"] = ["192.168.10.224/28"]
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    result, third = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    # the pool, and Traefik's address pinned to its first address (the LAN's DNS records point there)
    assert sorted(third["changed_files"]) == [
        "platform/home/infrastructure-config/metallb-pool.yaml",
        "platform/home/infrastructure-config/traefik.yaml",
    ]
    assert "192.168.10.224/28" in result.output, "--diff shows the change"


def test_the_site_ca_reaches_cert_manager_encrypted_for_flux_and_is_never_shown(ansible_cli, real_sops, tmp_path):
    from cryptography import x509

    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age, site_ca
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.files import decrypt_file

    site_file, checkout = example_site(tmp_path, real_sops)
    source = tmp_path / "secrets" / "site-ca.sops.yaml"
    ca = decrypt_file(str(source), age.parse_identities(ca_key(site_file).read_text(), "admin"))
    key_line = ca["tls.key"].splitlines()[1]
    flux = pyrage.x25519.Identity.generate()
    flux_key = tmp_path / "flux.agekey"
    flux_key.write_text(f"{flux}\n")
    recipients = [real_sops.recipient, str(flux.to_public())]

    result, first = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert CA_SECRET in first["changed_files"] and CA_SECRET in first["files"]
    path = checkout / CA_SECRET
    text = path.read_text()
    assert key_line not in text and key_line not in shown(result, ansible_cli), "the key is in no output, no result"
    # the real sops opens it with Flux's key (as kustomize-controller does) and with the admin's
    for key in (flux_key, real_sops.key_file):
        clear = yaml.safe_load(real_sops.run("decrypt", str(path), env={"SOPS_AGE_KEY_FILE": str(key)}).stdout)
        assert clear["kind"] == "Secret" and clear["type"] == "kubernetes.io/tls"
        assert clear["metadata"]["name"] == "site-ca" and clear["metadata"]["namespace"] == "cert-manager"
        assert clear["stringData"] == {"tls.crt": ca["tls.crt"], "tls.key": ca["tls.key"], "ca.crt": ca["tls.crt"]}
    certificate = x509.load_pem_x509_certificate(clear["stringData"]["tls.crt"].encode())
    assert site_ca.permitted_domains(certificate) == [yaml.safe_load(site_file.read_text())["network"]["domain"]]
    assert yaml.safe_load(text)["stringData"]["tls.key"].startswith("ENC[AES256_GCM,")
    built = flux_build(checkout / "platform/home/infrastructure-config", tmp_path / "scratch")
    assert ("Secret", "cert-manager", "site-ca") in built.objects()
    assert built.get("ClusterIssuer", "site-ca")["spec"] == {"ca": {"secretName": "site-ca"}}

    result, second = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert not second["changed"] and path.read_text() == text, "the same CA and recipients: the file as it was"
    assert key_line not in shown(result, ansible_cli)

    _result, fewer = render(ansible_cli, site_file, checkout, sops_recipients=recipients[:1])
    assert CA_SECRET in fewer["changed_files"], "other recipients: re-keyed"
    failed = real_sops.run("decrypt", str(path), env={"SOPS_AGE_KEY_FILE": str(flux_key)}, check=False)
    assert failed.returncode != 0

    params = {"path": str(source), "domain": "home.lab.example", "common_name": None, "validity_days": 30,
              "rotate": True, "recipients": None, "config": None}  # fmt: skip
    rotated = site_ca.task(params, age.parse_identities(ca_key(site_file).read_text(), "admin"), check_mode=False)
    result, third = render(ansible_cli, site_file, checkout, sops_recipients=recipients[:1])
    assert third["changed_files"] == [CA_SECRET], "a rotated CA is a new Secret"
    clear = yaml.safe_load(real_sops.decrypt(path))
    assert clear["stringData"]["tls.crt"] == rotated["certificate"] != ca["tls.crt"]
    assert clear["stringData"]["tls.key"].splitlines()[1] not in shown(result, ansible_cli)


def test_without_the_site_ca_check_mode_plans_it_and_a_run_says_to_make_it(ansible_cli, real_sops, tmp_path):
    site_file, checkout = example_site(tmp_path, real_sops, site_ca=False)
    recipients = [real_sops.recipient]
    result, checked = render(ansible_cli, site_file, checkout, check=True, sops_recipients=recipients)
    assert CA_SECRET in checked["changed_files"] and CA_SECRET in checked["files"] and list(checkout.iterdir()) == []
    assert "(sops-encrypted Secret cert-manager/site-ca: not shown)" in result.output
    _result, failed = render(ansible_cli, site_file, checkout, sops_recipients=recipients, ok=False)
    assert "site-ca.sops.yaml" in failed["msg"] and "keys phase" in failed["msg"], failed["msg"]
    assert list(checkout.iterdir()) == [], "nothing written"


def test_a_missing_checkout_is_a_clear_error(ansible_cli, tmp_path):
    task = {"name": "render", "nerv.homelab.gitops_render": {
        "site_file": str(INVENTORY / "example-proxmox" / "site.yml"), "dest": str(tmp_path / "nope")}}  # fmt: skip
    result = ansible_cli.playbook([{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    assert result.rc != 0 and "is not a directory" in result.task("render")["msg"]


def test_the_dashboards_login_is_made_once_encrypted_and_never_shown(ansible_cli, real_sops, tmp_path):
    """Traefik's, Longhorn's and Capacitor's UIs share one basic-auth login: a kubernetes.io/basic-auth Secret (the
    type Traefik's basicAuth middleware reads as username and password) made once, encrypted for Flux."""
    site_file, checkout = example_site(tmp_path, real_sops)
    recipients = [real_sops.recipient]
    relative = "platform/home/platform/dashboard-auth.sops.yaml"

    result, first = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert relative in first["changed_files"] and relative in first["files"]
    path = checkout / relative
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (secret,) = yaml.safe_load_all(real_sops.decrypt(path))
    assert (secret["type"], secret["metadata"]["namespace"], secret["metadata"]["name"]) == (
        "kubernetes.io/basic-auth", "traefik", "dashboard-auth")  # fmt: skip
    password = secret["stringData"]["password"]
    assert secret["stringData"]["username"] == "admin" and len(password) >= 32
    assert password not in path.read_text() and password not in shown(result, ansible_cli)
    assert "(sops-encrypted Secret traefik/dashboard-auth: not shown)" in result.output
    (kustomization,) = yaml.safe_load_all((checkout / "platform/home/platform/kustomization.yaml").read_text())
    assert "dashboard-auth.sops.yaml" in kustomization["resources"]

    before = path.read_text()
    result, second = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert not second["changed"] and path.read_text() == before, "the login is kept, never made again"


def test_grafanas_password_is_made_once_encrypted_and_never_shown(ansible_cli, real_sops, tmp_path):
    site_file, checkout = example_site(tmp_path, real_sops)
    recipients = [real_sops.recipient]

    result, first = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert first["changed"] and SECRET in first["changed_files"] and SECRET in first["files"]
    path = checkout / SECRET
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (secret,) = yaml.safe_load_all(real_sops.decrypt(path))
    assert secret["metadata"] == {"name": "grafana-admin", "namespace": "monitoring",
                                  "annotations": {"nerv.homelab/rendered-by": "gitops_render"}}  # fmt: skip
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
    result, second = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert not second["changed"] and second["changed_files"] == [] and SECRET in second["files"]
    assert path.read_text() == before, "the password is kept, never made again"
    assert password not in shown(result, ansible_cli)

    path.unlink()
    _result, checked = render(ansible_cli, site_file, checkout, check=True, sops_recipients=recipients)
    assert checked["changed_files"] == [SECRET] and not path.exists(), "check mode writes nothing"


def test_grafanas_secret_outlives_an_apps_prune_and_goes_with_monitoring(ansible_cli, real_sops, tmp_path):
    site_file, checkout = example_site(tmp_path, real_sops)
    recipients = [real_sops.recipient]
    render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    path = checkout / SECRET
    before = path.read_text()
    password = yaml.safe_load(real_sops.decrypt(path))["stringData"]["admin-password"]
    annotations = yaml.safe_load(before)["metadata"]["annotations"]
    assert annotations == {"nerv.homelab/rendered-by": "gitops_render"}, "marked in the clear, as the prune reads it"

    edit_site(site_file, lambda site: site.pop("apps"))
    _result, pruned = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert pruned["removed_files"] == ["platform/home/apps/podinfo.yaml"] and SECRET in pruned["files"]
    assert path.read_text() == before, "the apps' prune leaves Grafana's Secret as it was"

    # removing monitoring from the site removes it from Git, Grafana's Secret with it
    edit_site(site_file, lambda site: site.pop("monitoring"))
    gone = sorted([SECRET, "platform/home/infrastructure/kube-prometheus-stack.yaml",
                   "platform/home/platform/platform-alerts.yaml"])  # fmt: skip
    _result, checked = render(ansible_cli, site_file, checkout, check=True, sops_recipients=recipients)
    assert checked["removed_files"] == gone and path.exists(), "check mode deletes nothing"
    result, off = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert off["removed_files"] == gone and not path.exists() and SECRET not in off["files"]
    (kustomization,) = yaml.safe_load_all((checkout / "platform/home/infrastructure/kustomization.yaml").read_text())
    assert "grafana-admin.sops.yaml" not in kustomization["resources"]
    assert "(sops-encrypted, not shown)" in result.output and password not in shown(result, ansible_cli)
    _result, again = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert not again["changed"] and again["removed_files"] == []


def test_the_logins_without_recipients_fail_naming_the_option_and_write_nothing(ansible_cli, tmp_path):
    """The dashboards' login (every site) and Grafana's admin (with monitoring) are kept encrypted: no recipients,
    no render."""
    checkout = tmp_path / "gitops"
    checkout.mkdir()
    _result, failed = render(ansible_cli, INVENTORY / "example-proxmox" / "site.yml", checkout, ok=False)
    assert "give sops_recipients" in failed["msg"] and "Secret traefik/dashboard-auth" in failed["msg"]
    assert list(checkout.iterdir()) == []


def test_a_secret_left_decrypted_in_the_checkout_is_refused(ansible_cli, real_sops, tmp_path):
    checkout = tmp_path / "gitops"
    (checkout / "platform/home/infrastructure").mkdir(parents=True)
    (checkout / SECRET).write_text("apiVersion: v1\nkind: Secret\nstringData:\n  admin-password: canary-Clear-1\n")
    result, failed = render(ansible_cli, INVENTORY / "example-proxmox" / "site.yml", checkout,
                            sops_recipients=[real_sops.recipient], ok=False)  # fmt: skip
    assert "is not a sops-encrypted file" in failed["msg"] and "canary-Clear-1" not in result.output
    written = [str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file()]
    assert written == [SECRET], "nothing else was written"


def test_an_app_removed_from_the_site_is_removed_and_the_users_files_stay(ansible_cli, real_sops, tmp_path):
    site_file, checkout = example_site(tmp_path, real_sops)
    recipients = [real_sops.recipient]  # the site has monitoring: Grafana's Secret is encrypted to them
    _result, first = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    app = checkout / "platform/home/apps/podinfo.yaml"
    assert first["changed"] and app.is_file() and first["removed_files"] == []
    mine = checkout / "platform/home/apps/mine.yaml"
    mine.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine, namespace: podinfo}\n")
    notes = checkout / "platform/home/notes.sops.yaml"
    notes.write_text("stringData: {a: ENC[...]}\nsops: {version: 3.9.4}\n")
    _result, second = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert not second["changed"] and second["changed_files"] == [] and second["removed_files"] == []

    edit_site(site_file, lambda site: site.pop("apps"))
    _result, checked = render(ansible_cli, site_file, checkout, check=True, sops_recipients=recipients)
    assert checked["changed"] and checked["removed_files"] == ["platform/home/apps/podinfo.yaml"]
    assert app.is_file(), "check mode deletes nothing"

    result, third = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert third["changed"] and third["removed_files"] == ["platform/home/apps/podinfo.yaml"]
    assert sorted(third["changed_files"]) == [
        "platform/home/apps/kustomization.yaml",
        "platform/home/apps/podinfo.yaml",
    ]
    assert not app.exists() and mine.is_file() and notes.is_file(), "only what gitops_render wrote goes"
    assert "app-podinfo" in result.output, "--diff shows what goes"
    (kustomization,) = yaml.safe_load_all((checkout / "platform/home/apps/kustomization.yaml").read_text())
    assert kustomization["resources"] == []
    _result, fourth = render(ansible_cli, site_file, checkout, sops_recipients=recipients)
    assert not fourth["changed"] and fourth["removed_files"] == []


def test_values_sops_reach_the_tree_encrypted_for_the_recipients(ansible_cli, real_sops, tmp_path):
    site_file, checkout = example_site(tmp_path, real_sops)
    values = tmp_path / "secrets" / "podinfo-values.sops.yaml"
    values.parent.mkdir(exist_ok=True)
    values.write_text(f"# the UI's message\nui:\n  message: {CANARY}\nreplicaCount: 3\n")
    real_sops.encrypt_for(values)
    edit_site(site_file, lambda site: site["apps"][0].update(values_sops="secrets/podinfo-values.sops.yaml"))
    flux = pyrage.x25519.Identity.generate()
    flux_key = tmp_path / "flux.agekey"
    flux_key.write_text(f"{flux}\n")
    recipients = [real_sops.recipient, str(flux.to_public())]
    env = {"SOPS_AGE_KEY_FILE": str(real_sops.key_file), "HOME": str(real_sops.home),
           "XDG_CONFIG_HOME": str(real_sops.home / ".config")}  # fmt: skip

    result, first = render(ansible_cli, site_file, checkout, env=env, sops_recipients=recipients)
    secret_file = checkout / "platform/home/apps/podinfo-values.sops.yaml"
    assert "platform/home/apps/podinfo-values.sops.yaml" in first["changed_files"]
    text = secret_file.read_text()
    assert CANARY not in text and CANARY not in result.output, "no value in the tree's text, the result or the diff"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o644"
    # the real sops reads it with the admin's identity and with the Flux key's (as kustomize-controller would)
    for key in (real_sops.key_file, flux_key):
        clear = yaml.safe_load(real_sops.run("decrypt", str(secret_file), env={"SOPS_AGE_KEY_FILE": str(key)}).stdout)
        assert clear["kind"] == "Secret" and clear["metadata"]["name"] == "podinfo-values"
        assert yaml.safe_load(clear["stringData"]["values.yaml"]) == {"ui": {"message": CANARY}, "replicaCount": 3}
    encrypted = yaml.safe_load(text)
    assert encrypted["metadata"]["namespace"] == "podinfo", "only data and stringData are encrypted"
    assert encrypted["stringData"]["values.yaml"].startswith("ENC[AES256_GCM,")
    (release,) = [d for d in yaml.safe_load_all((checkout / "platform/home/apps/podinfo.yaml").read_text())
                  if d["kind"] == "HelmRelease"]  # fmt: skip
    assert release["spec"]["valuesFrom"] == [{"kind": "Secret", "name": "podinfo-values", "valuesKey": "values.yaml"}]
    built = flux_build(checkout / "platform/home/apps", tmp_path / "scratch")
    assert ("Secret", "podinfo", "podinfo-values") in built.objects()

    _result, second = render(ansible_cli, site_file, checkout, env=env, sops_recipients=recipients)
    assert not second["changed"] and secret_file.read_text() == text, "same values: the file is kept as it was"

    values.write_text(f"ui:\n  message: {CANARY}-2\nreplicaCount: 3\n")
    real_sops.encrypt_for(values)
    result, third = render(ansible_cli, site_file, checkout, env=env, sops_recipients=recipients)
    assert third["changed_files"] == ["platform/home/apps/podinfo-values.sops.yaml"]
    assert CANARY not in result.output
    clear = yaml.safe_load(real_sops.decrypt(secret_file))
    assert yaml.safe_load(clear["stringData"]["values.yaml"])["ui"]["message"] == f"{CANARY}-2"

    _result, fourth = render(ansible_cli, site_file, checkout, env=env, sops_recipients=recipients[:1])
    assert "platform/home/apps/podinfo-values.sops.yaml" in fourth["changed_files"], "fewer recipients: re-keyed"
    failed = real_sops.run("decrypt", str(secret_file), env={"SOPS_AGE_KEY_FILE": str(flux_key)}, check=False)
    assert failed.returncode != 0, "the Flux key is no recipient any more"

    edit_site(site_file, lambda site: site["apps"][0].pop("values_sops"))
    _result, fifth = render(ansible_cli, site_file, checkout, env=env, sops_recipients=recipients)
    assert fifth["removed_files"] == ["platform/home/apps/podinfo-values.sops.yaml"] and not secret_file.exists()


def test_values_sops_without_recipients_or_identity_are_clear_errors(ansible_cli, real_sops, tmp_path):
    site_file, checkout = example_site(tmp_path, real_sops)
    values = tmp_path / "podinfo.sops.yaml"
    values.write_text(f"ui: {{message: {CANARY}}}\n")
    real_sops.encrypt_for(values)
    edit_site(site_file, lambda site: site["apps"][0].update(values_sops="podinfo.sops.yaml"))
    task = {"name": "render", "nerv.homelab.gitops_render": {"site_file": str(site_file), "dest": str(checkout)}}
    play = [{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    result = ansible_cli.playbook(play, env={"SOPS_AGE_KEY_FILE": str(real_sops.key_file)})
    assert result.rc != 0 and "has values_sops" in result.task("render")["msg"]
    assert "give sops_recipients" in result.task("render")["msg"]

    task["nerv.homelab.gitops_render"]["sops_recipients"] = [real_sops.recipient]
    stranger = tmp_path / "stranger.agekey"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    env = {"SOPS_AGE_KEY_FILE": str(stranger), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    result = ansible_cli.playbook(play, env=env)
    message = result.task("render")["msg"]
    assert result.rc != 0 and "podinfo.sops.yaml" in message, message
    assert CANARY not in result.output and list(checkout.iterdir()) == [], "nothing written"
