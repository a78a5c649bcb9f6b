"""sops_file, sops_config, host_keys and the sops lookup in real playbooks: twice each, secrets never shown.

The admin key is made by the real age-keygen where the age package is installed (CI), else with pyrage; the
data-key stanzas this code writes are opened with the real `age -d` where it exists.
"""

from __future__ import annotations

import shutil
import stat
import subprocess

import pytest
import yaml

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

CANARY = "canary-Secret-51c0ffee"
OTHER = "canary-Other-9d0d0d0d"


def play(*tasks):
    return [{"name": "sops", "hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def task(module, name="the task", **options):
    return {"name": name, f"nerv.homelab.{module}": options}


@pytest.fixture
def admin(tmp_path):
    """(key file, recipient) of a fresh admin identity."""
    key_file = tmp_path / "admin-keys.txt"
    keygen = shutil.which("age-keygen")
    if keygen:
        subprocess.run([keygen, "-o", str(key_file)], check=True, capture_output=True)
        recipient = subprocess.run([keygen, "-y", str(key_file)], check=True, capture_output=True, text=True).stdout
    else:
        identity = pyrage.x25519.Identity.generate()
        key_file.write_text(f"{identity}\n")
        recipient = str(identity.to_public())
    return key_file, recipient.strip()


@pytest.fixture
def run(ansible_cli, tmp_path, admin):
    """run(*tasks, check=False, env=None) with the admin identity in SOPS_AGE_KEY_FILE and -v --diff output."""

    def go(*tasks, check=False, env=None, identity=True):
        base = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}
        if identity:
            base["SOPS_AGE_KEY_FILE"] = str(admin[0])
        result = ansible_cli.playbook(play(*tasks), "-v", "--diff", env={**base, **(env or {})}, check=check)
        assert CANARY not in result.output and OTHER not in result.output, result.describe()
        assert "PRIVATE KEY" not in result.output and "AGE-SECRET-KEY" not in result.output, result.describe()
        return result

    return go


def ok(result, name="the task"):
    assert result.rc == 0, result.describe()
    return result.task(name)


def failed(result, name="the task"):
    assert result.rc != 0, result.describe()
    outcome = result.task(name)
    assert outcome.get("failed"), outcome
    return outcome


def decrypt(path, key_file):
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    return sops_files.decrypt_file(str(path), age.load_identities({}, [str(key_file)]))


def test_sops_file_sets_values_once_and_keeps_them_secret(run, tmp_path, admin):
    path = tmp_path / "secrets" / "app.sops.yaml"
    create = task("sops_file", path=str(path), recipients=[admin[1]], values={"db": {"password": CANARY}, "port": 5432})
    first = ok(run(create))
    assert first["changed"] and first["created"] and first["keys"] == ["db.password", "port"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert CANARY not in path.read_text()
    assert decrypt(path, admin[0]) == {"db": {"password": CANARY}, "port": 5432}
    assert not ok(run(create))["changed"], "the same values again are no change"

    text = path.read_text()
    update = task("sops_file", path=str(path), values={"db": {"password": OTHER}})
    checked = ok(run(update, check=True))
    assert checked["changed"] and checked["changed_keys"] == ["db.password"] and path.read_text() == text
    changed_run = run(update)
    changed = ok(changed_run)
    assert changed["changed"] and "db.password  # value changed" in changed_run.output, "--diff shows the key"
    assert decrypt(path, admin[0])["db"]["password"] == OTHER
    port = [line for line in text.splitlines() if line.startswith("port:")]
    assert port and port[0] in path.read_text().splitlines(), "an unchanged value keeps its ciphertext"


def test_a_generated_token_is_made_once(run, tmp_path, admin):
    path = tmp_path / "k3s.sops.yaml"
    make = task("sops_file", path=str(path), recipients=[admin[1]], generate=["token"])
    assert ok(run(make))["changed"]
    token = decrypt(path, admin[0])["token"]
    assert len(token) >= 43
    assert not ok(run(make))["changed"] and decrypt(path, admin[0])["token"] == token


def test_a_generated_age_identity_is_made_once_and_only_its_recipient_is_shown(run, tmp_path, admin):
    path = tmp_path / "cluster" / "flux.agekey.sops.yaml"
    make = task("sops_file", path=str(path), recipients=[admin[1]], generate=["identity"], generate_type="age_identity")
    first = ok(run(make))  # run() fails the test if AGE-SECRET-KEY appears anywhere in the output
    identity = decrypt(path, admin[0])["identity"]
    assert first["changed"] and identity.startswith("AGE-SECRET-KEY-1")
    recipient = str(pyrage.x25519.Identity.from_str(identity).to_public())
    assert first["public"] == {"identity": recipient}
    again = ok(run(make))
    assert not again["changed"] and again["public"] == {"identity": recipient}
    assert decrypt(path, admin[0])["identity"] == identity

    age = shutil.which("age")
    if age:  # the real age encrypts to the returned recipient and opens it with the stored identity
        key_file = tmp_path / "cluster.agekey"
        key_file.write_text(identity + "\n")
        sealed = subprocess.run([age, "-r", recipient], input=b"x", capture_output=True, check=True).stdout
        opened = subprocess.run([age, "-d", "-i", str(key_file)], input=sealed, capture_output=True, check=True)
        assert opened.stdout == b"x"


def test_a_value_that_is_not_an_age_identity_is_refused_without_showing_it(run, tmp_path, admin):
    path = tmp_path / "flux.agekey.sops.yaml"
    ok(run(task("sops_file", path=str(path), recipients=[admin[1]], values={"identity": CANARY})))
    make = task("sops_file", path=str(path), generate=["identity"], generate_type="age_identity")
    message = failed(run(make))["msg"]
    assert "not an age identity" in message


def test_updatekeys_follows_sops_yaml_and_the_host_key_opens_the_file(run, tmp_path, admin):
    site = tmp_path / "site"
    secret = site / "secrets" / "k3s.sops.yaml"
    host_keys = {
        "hosts": [{"name": "nuc1"}],
        "public_dir": str(site / "host-keys"),
        "secrets_dir": str(site / "secrets" / "host-keys"),
        "admin_recipients": [admin[1]],
        "extra_files_dir": str(tmp_path / "extra"),
    }
    (tmp_path / "extra").mkdir(mode=0o700)
    config = {
        "path": str(site / ".sops.yaml"),
        "admin_recipients": [admin[1]],
        "shared": [{"path_regex": "^secrets/k3s\\.sops\\.yaml$"}],
    }
    ok(run(task("sops_config", **config)))
    rules = str(site / ".sops.yaml")
    made = task("sops_file", path=str(secret), config=rules, values={"token": CANARY})
    assert ok(run(made))["recipients"] == [admin[1]]

    keys = ok(run(task("host_keys", **host_keys)))
    recipient = keys["recipients"]["nuc1"]
    with_host = {**config, "hosts": [{"name": "nuc1", "recipient": recipient}]}
    assert ok(run(task("sops_config", **with_host)))["changed"]
    rekey = task("sops_file", path=str(secret), config=rules, updatekeys=True)
    first = ok(run(rekey))
    assert first["changed"] and first["recipients"] == [admin[1], recipient]
    assert not ok(run(rekey))["changed"]

    host_key = tmp_path / "extra" / "nuc1" / "etc" / "ssh" / "ssh_host_ed25519_key"
    lookup = {
        "name": "the task",
        "ansible.builtin.assert": {
            "that": [
                "lookup('nerv.homelab.sops', '"
                + str(secret)
                + "', key='token', identity_files=['"
                + str(host_key)
                + "']) == '"
                + CANARY
                + "'"
            ],
            "quiet": True,
        },
    }
    ok(run(lookup, identity=False))


def test_rotate_changes_the_data_key_and_keeps_the_values(run, tmp_path, admin):
    path = tmp_path / "r.sops.json"
    ok(run(task("sops_file", path=str(path), recipients=[admin[1]], values={"a": CANARY})))
    before = path.read_text()
    assert ok(run(task("sops_file", path=str(path), rotate=True)))["changed"]
    assert path.read_text() != before and decrypt(path, admin[0]) == {"a": CANARY}


def test_a_tampered_file_is_refused_without_showing_values(run, tmp_path, admin):
    path = tmp_path / "t.sops.yaml"
    ok(run(task("sops_file", path=str(path), recipients=[admin[1]], values={"a": CANARY, "n_unencrypted": "x"})))
    path.write_text(path.read_text().replace("n_unencrypted: x", "n_unencrypted: y"))
    before = path.read_text()
    assert "MAC mismatch" in failed(run(task("sops_file", path=str(path), values={"a": OTHER})))["msg"]
    assert path.read_text() == before


def test_without_an_identity_the_error_names_the_recipients(run, tmp_path, admin):
    path = tmp_path / "n.sops.yaml"
    ok(run(task("sops_file", path=str(path), recipients=[admin[1]], values={"a": CANARY})))
    message = failed(run(task("sops_file", path=str(path), values={"a": OTHER}), identity=False))["msg"]
    assert admin[1] in message and "age-keygen" in message


def test_a_bad_recipient_is_refused_and_nothing_is_written(run, tmp_path):
    path = tmp_path / "b.sops.yaml"
    message = failed(run(task("sops_file", path=str(path), recipients=["age1nope"], values={"a": CANARY})))["msg"]
    assert "not an age recipient" in message and not path.exists()


def test_host_keys_made_recorded_kept_and_rotated_only_when_asked(run, tmp_path, admin):
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age

    _pem, vm_key = age.new_ssh_host_key("root@cp1")
    args = {
        "hosts": [{"name": "nuc1"}, {"name": "cp1", "public_key": vm_key}],
        "public_dir": str(tmp_path / "pub"),
        "secrets_dir": str(tmp_path / "sec"),
        "admin_recipients": [admin[1]],
    }
    checked = ok(run(task("host_keys", **args), check=True))
    assert checked["changed"] and not (tmp_path / "pub").exists()
    first = ok(run(task("host_keys", **args)))
    assert {h: v["action"] for h, v in first["hosts"].items()} == {"nuc1": "generated", "cp1": "recorded"}
    assert first["recipients"]["cp1"] == age.age_recipient_from_ssh(vm_key)
    assert (tmp_path / "pub" / "cp1.pub").read_text().split()[:2] == vm_key.split()[:2]
    assert not (tmp_path / "sec" / "cp1.sops.yaml").exists(), "a key the VM made has no private copy here"
    private = decrypt(tmp_path / "sec" / "nuc1.sops.yaml", admin[0])["ssh_host_ed25519_key"]
    assert age.public_line_of(private.encode()) == " ".join(first["hosts"]["nuc1"]["public_key"].split()[:2])
    assert not ok(run(task("host_keys", **args)))["changed"]

    _pem, new_vm_key = age.new_ssh_host_key("root@cp1")
    changed_args = {**args, "hosts": [{"name": "nuc1"}, {"name": "cp1", "public_key": new_vm_key}]}
    message = failed(run(task("host_keys", **changed_args)))["msg"]
    assert "rotate" in message and (tmp_path / "pub" / "cp1.pub").read_text().split()[1] == vm_key.split()[1]
    rotated = ok(run(task("host_keys", **changed_args, rotate=["cp1", "nuc1"])))
    assert {h: v["action"] for h, v in rotated["hosts"].items()} == {"nuc1": "rotated", "cp1": "rotated"}
    assert rotated["hosts"]["nuc1"]["public_key"] != first["hosts"]["nuc1"]["public_key"]


def test_the_extra_files_tree_has_the_modes_nixos_anywhere_expects(run, tmp_path, admin):
    extra = tmp_path / "extra"
    extra.mkdir(mode=0o700)
    args = {
        "hosts": [{"name": "nuc1"}],
        "public_dir": str(tmp_path / "pub"),
        "secrets_dir": str(tmp_path / "sec"),
        "admin_recipients": [admin[1]],
        "extra_files_dir": str(extra),
    }
    ok(run(task("host_keys", **args)))
    ssh = extra / "nuc1" / "etc" / "ssh"
    modes = {p.relative_to(extra).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in sorted(extra.rglob("*"))}
    assert modes == {
        "nuc1": 0o755,
        "nuc1/etc": 0o755,
        "nuc1/etc/ssh": 0o755,
        "nuc1/etc/ssh/ssh_host_ed25519_key": 0o600,
        "nuc1/etc/ssh/ssh_host_ed25519_key.pub": 0o644,
    }
    assert (ssh / "ssh_host_ed25519_key.pub").read_text() == (tmp_path / "pub" / "nuc1.pub").read_text()
    # a second run decrypts the stored key and finds the same tree
    assert not ok(run(task("host_keys", **args)))["changed"]
    keygen = shutil.which("ssh-keygen")
    if keygen:
        derived = subprocess.run(
            [keygen, "-y", "-f", str(ssh / "ssh_host_ed25519_key")], capture_output=True, text=True, check=True
        )
        assert derived.stdout.split()[:2] == (ssh / "ssh_host_ed25519_key.pub").read_text().split()[:2]


def test_sops_config_is_written_once_and_requires_an_admin_identity(run, tmp_path, admin):
    path = tmp_path / ".sops.yaml"
    args = {"path": str(path), "admin_recipients": [admin[1]], "require_identity": True}
    first = ok(run(task("sops_config", **args)))
    assert first["changed"] and first["admin_identity"] == str(admin[0])
    assert yaml.safe_load(path.read_text())["creation_rules"][-1] == {"key_groups": [{"age": [admin[1]]}]}
    assert not ok(run(task("sops_config", **args)))["changed"]
    message = failed(run(task("sops_config", **args), identity=False))["msg"]
    assert "age-keygen" in message and admin[1] in message


def test_the_data_key_stanza_opens_with_the_real_age(run, tmp_path, admin):
    age = shutil.which("age")
    if not age:
        pytest.skip("needs age (Debian package age)")
    path = tmp_path / "a.sops.yaml"
    ok(run(task("sops_file", path=str(path), recipients=[admin[1]], values={"a": CANARY})))
    enc = yaml.safe_load(path.read_text())["sops"]["age"][0]["enc"]
    opened = subprocess.run([age, "-d", "-i", str(admin[0])], input=enc.encode(), capture_output=True, check=False)
    assert opened.returncode == 0 and len(opened.stdout) == 32, opened.stderr
