"""playbooks/keys.yml on a copy of the bare-metal example site: check mode writes nothing, the first run makes
every key and secret, the second changes nothing, and without an admin identity nothing is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "keys.yml"


@pytest.fixture
def site(tmp_path):
    """(inventory dir, admin key file): the example-baremetal site with a fresh admin identity."""
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory" / "example-baremetal", inventory)
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "admin-keys.txt"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["sops"]["admin_recipients"] = [str(identity.to_public())]
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory, key_file


def keys(ansible_cli, inventory, key_file=None, check=False):
    env = {"XDG_CONFIG_HOME": str(inventory.parent / "xdg"), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}
    if key_file:
        env["SOPS_AGE_KEY_FILE"] = str(key_file)
    return ansible_cli.playbook(PLAYBOOK, "--diff", inventory=inventory / "hosts.yml", env=env, check=check)


def written(inventory):
    return sorted(p.relative_to(inventory).as_posix() for p in inventory.rglob("*") if p.is_file())


def test_check_mode_then_twice_for_real(ansible_cli, site):
    inventory, key_file = site
    before = written(inventory)
    checked = keys(ansible_cli, inventory, key_file, check=True)
    assert checked.rc == 0 and checked.stats()["changed"] > 0, checked.describe()
    assert written(inventory) == before, "check mode wrote files"

    first = keys(ansible_cli, inventory, key_file)
    assert first.rc == 0, first.describe()
    hosts = ["mini1", "mini2", "mini3"]
    new = set(written(inventory)) - set(before)
    assert new == {
        ".sops.yaml",
        "known_hosts",
        "secrets/k3s.sops.yaml",
        "secrets/site-ca.sops.yaml",
        "secrets/cluster/flux.agekey.sops.yaml",
        *(f"host-keys/{h}.pub" for h in hosts),
        *(f"secrets/host-keys/{h}.sops.yaml" for h in hosts),
    }
    token = yaml.safe_load((inventory / "secrets" / "k3s.sops.yaml").read_text())
    assert len(token["sops"]["age"]) == 4, "the admin and the three hosts read the K3s token"
    assert len((inventory / "known_hosts").read_text().splitlines()) == 3

    second = keys(ansible_cli, inventory, key_file)
    assert second.rc == 0 and second.stats()["changed"] == 0, second.describe()


def test_the_real_sops_run_in_the_site_directory_agrees_with_every_secrets_readers(ansible_cli, site, real_sops):
    inventory, key_file = site
    assert keys(ansible_cli, inventory, key_file).rc == 0
    secrets = sorted((inventory / "secrets").rglob("*.sops.yaml"))
    assert len(secrets) == 6, secrets
    for path in secrets:
        before = path.read_bytes()
        name = str(path.relative_to(inventory))
        run = real_sops.run("updatekeys", "--yes", name, cwd=inventory, env={"SOPS_AGE_KEY_FILE": str(key_file)})
        assert "already up to date" in run.stderr, run.describe()
        assert path.read_bytes() == before, f"sops would re-key {name}"


def test_the_site_ca_is_made_once_for_the_admins_and_the_caddy_hosts_and_never_shown(ansible_cli, site, real_sops):
    from cryptography import x509

    inventory, key_file = site
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["hosts"][1]["services"] = {"caddy": {"proxies": [{"name": "nas", "upstream": "http://192.168.10.4:5000"}]}}
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    domain, caddy_host = data["network"]["domain"], data["hosts"][1]["name"]
    path = inventory / "secrets" / "site-ca.sops.yaml"

    checked = keys(ansible_cli, inventory, key_file, check=True)
    assert checked.rc == 0 and not path.exists(), checked.describe()
    first = keys(ansible_cli, inventory, key_file)
    assert first.rc == 0 and first.task("Make the site CA when it is missing")["changed"], first.describe()
    made = path.read_text()
    second = keys(ansible_cli, inventory, key_file)
    assert second.rc == 0 and not second.task("Make the site CA when it is missing")["changed"]
    assert path.read_text() == made, "made once, never again"
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    # the real sops opens it with the admin's key and with the identity sops-nix derives from the Caddy host's SSH key
    plain = yaml.safe_load(real_sops.run("decrypt", str(path), env={"SOPS_AGE_KEY_FILE": str(key_file)}).stdout)
    host_keys = {}
    for host in (caddy_host, data["hosts"][0]["name"]):
        env = {"SOPS_AGE_KEY_FILE": str(host_age_key(inventory, key_file, host))}
        host_keys[host] = real_sops.run("decrypt", str(path), check=False, env=env)
    assert host_keys[caddy_host].returncode == 0, host_keys[caddy_host].describe()
    assert yaml.safe_load(host_keys[caddy_host].stdout) == plain
    assert host_keys[data["hosts"][0]["name"]].returncode != 0, "a host without Caddy cannot read the CA"
    rule = [r for r in yaml.safe_load((inventory / ".sops.yaml").read_text())["creation_rules"]
            if "site" in r.get("path_regex", "")]  # fmt: skip
    assert len(rule) == 1 and len(rule[0]["key_groups"][0]["age"]) == 2, "the admin and the Caddy host"

    certificate = x509.load_pem_x509_certificate(plain["tls.crt"].encode())
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    assert [n.value for n in constraints.permitted_subtrees] == [domain]
    assert (
        first.task("Publish the keys for later plays")["ansible_facts"]["sops_keys_site_ca_certificate"]
        == plain["tls.crt"]
    )
    # the key's PEM body: in no output and no recorded result of any run
    body = plain["tls.key"].splitlines()[1]
    recorded = "".join(p.read_text() for p in ansible_cli.tmp_path.glob("results-*.json"))
    for text in (checked.output, first.output, second.output, recorded):
        assert body not in text
    assert plain["tls.crt"].splitlines()[1] in recorded, "the canary would find the PEM: the certificate's is there"


def host_age_key(inventory, key_file, host):
    """A 0600 key file with the age identity sops-nix derives from host's SSH key (sops.age.sshKeyPaths)."""
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    plain = sops_files.decrypt_file(
        str(inventory / "secrets" / "host-keys" / f"{host}.sops.yaml"), age.load_identities({}, [str(key_file)])
    )
    private = age.serialization.load_ssh_private_key(plain["ssh_host_ed25519_key"].encode(), password=None)
    path = inventory.parent / f"{host}.agekey"
    path.write_text(age.age_identity_from_ed25519(private) + "\n")
    path.chmod(0o600)
    return path


def test_ini_and_binary_secrets_of_a_host_are_rekeyed_for_it_like_the_rest(ansible_cli, site, real_sops):
    inventory, key_file = site
    admin = yaml.safe_load((inventory / "site.yml").read_text())["sops"]["admin_recipients"][0]
    folder = inventory / "secrets" / "hosts" / "mini1"
    folder.mkdir(parents=True)
    for name, text in {"app.sops.ini": "[db]\npassword = canary-Keys-Ini\n", "blob.sops.bin": "opaque\n"}.items():
        (folder / name).write_text(text)
        real_sops.run("encrypt", "--in-place", "--age", admin, str(folder / name), cwd=folder)
    assert keys(ansible_cli, inventory, key_file).rc == 0
    for name in ("app.sops.ini", "blob.sops.bin"):
        relative = f"secrets/hosts/mini1/{name}"
        run = real_sops.run("updatekeys", "--yes", relative, cwd=inventory, env={"SOPS_AGE_KEY_FILE": str(key_file)})
        assert "already up to date" in run.stderr, f"keys.yml did not give {relative} to mini1:\n{run.describe()}"


def test_without_an_admin_identity_it_stops_before_writing(ansible_cli, site):
    inventory, _key_file = site
    before = written(inventory)
    result = keys(ansible_cli, inventory)
    assert result.rc != 0 and "age-keygen" in result.output, result.describe()
    assert written(inventory) == before


def rotate(ansible_cli, inventory, key_file, **extra):
    env = {"XDG_CONFIG_HOME": str(inventory.parent / "xdg"), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null",
           "SOPS_AGE_KEY_FILE": str(key_file)}  # fmt: skip
    playbook = REPO / "playbooks" / "rotate_keys.yml"
    return ansible_cli.playbook(playbook, inventory=inventory, env=env, extra_vars=extra or None)


def opens(path, key_text):
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    try:
        sops_files.decrypt_file(str(path), age.parse_identities(key_text, "test"))
    except Exception:  # SopsError: none of the identities opens it
        return False
    return True


def host_identity(inventory, key_file, host):
    """The age identity of host's recorded SSH key (decrypted with the admin key), as text."""
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    plain = sops_files.decrypt_file(
        str(inventory / "secrets" / "host-keys" / f"{host}.sops.yaml"), age.load_identities({}, [str(key_file)])
    )
    return age.identities_from_ssh_key(plain["ssh_host_ed25519_key"].encode(), host)


def test_rotate_keys_refuses_without_a_target(ansible_cli, site):
    inventory, key_file = site
    assert keys(ansible_cli, inventory, key_file).rc == 0
    before = {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()}
    for extra in ({}, {"rotate_hosts": ["nosuchhost"]}):
        run = rotate(ansible_cli, inventory, key_file, **extra)
        assert run.rc != 0 and "Name what to rotate" in run.output, run.describe()
    assert {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()} == before


def test_rotating_a_host_replaces_its_key_everywhere(ansible_cli, site):
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    inventory, key_file = site
    assert keys(ansible_cli, inventory, key_file).rc == 0
    token = inventory / "secrets" / "k3s.sops.yaml"
    old_public = (inventory / "host-keys" / "mini1.pub").read_text()
    old = host_identity(inventory, key_file, "mini1")
    run = rotate(ansible_cli, inventory, key_file, rotate_hosts=["mini1"])
    assert run.rc == 0, run.describe()
    assert (inventory / "host-keys" / "mini1.pub").read_text() != old_public
    new = host_identity(inventory, key_file, "mini1")
    assert sops_files.decrypt_file(str(token), new)["token"], "the new key opens the K3s token"
    try:
        sops_files.decrypt_file(str(token), old)
        raise AssertionError("the old key still opens the K3s token")
    except Exception as exc:  # SopsError
        assert "none of the age identities" in str(exc)
    pinned = (inventory / "known_hosts").read_text()
    assert (
        old_public.split()[1] not in pinned and (inventory / "host-keys" / "mini1.pub").read_text().split()[1] in pinned
    )
    assert keys(ansible_cli, inventory, key_file).stats()["changed"] == 0, "keys.yml agrees with the rotated state"


def test_a_new_admin_gets_new_data_keys_and_the_old_admin_is_shut_out(ansible_cli, site, tmp_path):
    inventory, key_file = site
    assert keys(ansible_cli, inventory, key_file).rc == 0
    old_admin = key_file.read_text()
    new = pyrage.x25519.Identity.generate()
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["sops"]["admin_recipients"] = [str(new.to_public())]
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    both = tmp_path / "both-admins.txt"
    both.write_text(old_admin + f"{new}\n")
    both.chmod(0o600)
    token = inventory / "secrets" / "k3s.sops.yaml"
    sealed_before = yaml.safe_load(token.read_text())["token"]
    run = rotate(ansible_cli, inventory, both, rotate_data_keys=True)
    assert run.rc == 0, run.describe()
    for path in sorted((inventory / "secrets").rglob("*.sops.yaml")):
        assert opens(path, f"{new}\n"), f"{path}: the new admin cannot open it"
        assert not opens(path, old_admin), f"{path}: the old admin still opens it"
    assert yaml.safe_load(token.read_text())["token"] != sealed_before, "the token was sealed with a new data key"
