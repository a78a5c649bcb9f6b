"""playbooks/fleet_secrets.yml on a flake inventory (a flake without inputs, evaluated by the real nix): each host's
recipient from its SSH key pinned in the fleet's known_hosts, the flake's .sops.yaml, exactly the secrets whose rule
changed re-keyed (the others byte-identical), check mode listing them, key rotation in two steps checked with the
real sops binary decrypting with each host key at each step, and canary values never in any output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .._ansible import AnsibleCli
from .._fleet import host_identity, snapshot
from .._skips import require_commands

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "fleet_secrets.yml"
CANARY = "canary-Fleet-5ec2e7"

FLAKE = """
{
  outputs = { self }: {
    nixosConfigurations.pi = { config.nixpkgs.hostPlatform.system = "aarch64-linux"; };
    nixosConfigurations.box = { config.nixpkgs.hostPlatform.system = "x86_64-linux"; };
    darwinConfigurations.mac = { config.nixpkgs.hostPlatform.system = "aarch64-darwin"; };
    deploy.nodes.pi = { hostname = "10.77.0.31"; };
    deploy.nodes.mac = { hostname = "mac.lan"; };
    nerv.tags.pi = [ "edge" ];
    nerv.tags.box = [ "edge" ];
  };
}
"""
ADDRESSES = {"pi": "10.77.0.31", "box": "box", "mac": "mac.lan"}
# the secrets a user keeps in the flake, by the rule that should match each
SECRETS = {
    "secrets/pi/wifi.sops.yaml": "pi",
    "secrets/box/db.sops.yaml": "box",
    "secrets/common/ntp.sops.yaml": "common",
    "secrets/edge/vpn.sops.yaml": "edge",
    "secrets/admin-notes.sops.yaml": "admins",
}


def ssh_key(path: Path) -> str:
    """A fresh ed25519 key made by the real ssh-keygen at path; its public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture
def fleet(tmp_path, real_sops):
    """The flake (with flake.yml), the fleet's known_hosts pinning pi and box, their keys, and the user's
    secrets encrypted by the real sops to the admin (real_sops' identity) alone."""
    require_commands("nix", "ssh-keygen")
    flake = tmp_path / "fleet"
    flake.mkdir()
    (flake / "flake.nix").write_text(FLAKE)
    (flake / "flake.yml").write_text("plugin: nerv.homelab.flake\n")
    keys = tmp_path / "keys"
    keys.mkdir()
    public = {name: ssh_key(keys / name) for name in ("pi", "box", "mac")}
    pin(flake, "pi", public["pi"])
    pin(flake, "box", public["box"])
    for relative in SECRETS:
        path = flake / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"value: {CANARY}-{path.parent.name}\n")
        real_sops.encrypt_for(path, cwd=flake)
    return flake, keys, public


def pin(flake: Path, name: str, public: str) -> None:
    with open(flake / "known_hosts", "a", encoding="utf-8") as handle:
        handle.write(f"{ADDRESSES[name]} {public}\n")


def stranger_key(directory: Path) -> Path:
    """An age identity that is no admin's."""
    key_file = directory / "stranger.txt"
    key_file.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    key_file.chmod(0o600)
    return key_file


def run(real_sops, flake, check=False, identity=True, **extra):
    env = {"XDG_CONFIG_HOME": str(flake.parent / "xdg"), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}
    env["SOPS_AGE_KEY_FILE"] = str(real_sops.key_file if identity else stranger_key(flake.parent))
    done = AnsibleCli(flake.parent).playbook(
        PLAYBOOK, "--diff", "-v", inventory=flake / "flake.yml", check=check, env=env,
        extra_vars={"fleet_admin_recipients": [real_sops.recipient], **extra},
    )  # fmt: skip
    assert CANARY not in done.output, done.describe()
    assert "PRIVATE KEY" not in done.output and "AGE-SECRET-KEY" not in done.output, done.describe()
    return done


def relative(flake, done):
    task = done.task("Write the flake's .sops.yaml and re-key exactly the secrets whose rule changed")
    return sorted(Path(p).relative_to(flake).as_posix() for p in task["rekeyed"])


def opens(real_sops, flake, relative_path, ssh_private: Path) -> bool:
    """Whether the real sops decrypts the file with this host's key alone (as sops-nix does on the host)."""
    done = real_sops.run(
        "decrypt", relative_path, cwd=flake, check=False,
        env={"SOPS_AGE_KEY_FILE": str(host_identity(ssh_private)), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"},
    )  # fmt: skip
    if done.returncode == 0:
        assert CANARY in done.stdout, done.describe()
    return done.returncode == 0


def readers(real_sops, flake, keys, relative_path, hosts=("pi", "box", "mac")):
    return [h for h in hosts if opens(real_sops, flake, relative_path, keys / h)]


def test_rules_rekey_only_what_changed_then_nothing(fleet, real_sops):
    flake, keys, _public = fleet
    before = snapshot(flake)
    checked = run(real_sops, flake, check=True, fleet_shared=[{"path_regex": "^secrets/edge/", "hosts": ["tag_edge"]}])
    assert checked.rc == 0, checked.describe()
    would = ["secrets/box/db.sops.yaml", "secrets/common/ntp.sops.yaml", "secrets/edge/vpn.sops.yaml",
             "secrets/pi/wifi.sops.yaml"]  # fmt: skip
    assert relative(flake, checked) == would
    assert snapshot(flake) == before, "check mode wrote files"

    first = run(real_sops, flake, fleet_shared=[{"path_regex": "^secrets/edge/", "hosts": ["tag_edge"]}])
    assert first.rc == 0 and first.stats()["changed"] > 0, first.describe()
    assert relative(flake, first) == would
    after = snapshot(flake)
    assert after["secrets/admin-notes.sops.yaml"] == before["secrets/admin-notes.sops.yaml"], "its rule did not change"
    assert sorted(p.name for p in (flake / "host-keys").iterdir()) == ["box.pub", "pi.pub"], "mac has no pinned key"
    rules = yaml.safe_load((flake / ".sops.yaml").read_text())["creation_rules"]
    assert [r.get("path_regex") for r in rules] == [
        "^host\\-keys/", "^secrets/box/", "^secrets/pi/", "^secrets/common/", "^secrets/edge/", None,
    ]  # fmt: skip
    assert readers(real_sops, flake, keys, "secrets/pi/wifi.sops.yaml") == ["pi"]
    assert readers(real_sops, flake, keys, "secrets/box/db.sops.yaml") == ["box"]
    assert readers(real_sops, flake, keys, "secrets/common/ntp.sops.yaml") == ["pi", "box"]
    assert readers(real_sops, flake, keys, "secrets/edge/vpn.sops.yaml") == ["pi", "box"]
    assert readers(real_sops, flake, keys, "secrets/admin-notes.sops.yaml") == []
    notes = real_sops.decrypt(flake / "secrets" / "admin-notes.sops.yaml", cwd=flake)
    assert notes.strip().endswith(CANARY + "-secrets"), "the admin still reads it"
    # the real sops run in the flake agrees: every file is encrypted to what its rule names
    for path in SECRETS:
        assert "already up to date" in real_sops.updatekeys(Path(path), cwd=flake).stderr

    second = run(real_sops, flake, fleet_shared=[{"path_regex": "^secrets/edge/", "hosts": ["tag_edge"]}])
    assert second.rc == 0 and second.stats()["changed"] == 0, second.describe()
    assert relative(flake, second) == []
    assert snapshot(flake) == after


def test_adding_a_host_rekeys_exactly_the_files_its_rules_match(fleet, real_sops):
    flake, keys, public = fleet
    assert run(real_sops, flake).rc == 0
    (flake / "secrets" / "mac").mkdir()
    mine = flake / "secrets" / "mac" / "login.sops.yaml"
    mine.write_text(f"value: {CANARY}-mac\n")
    real_sops.encrypt_for(mine, cwd=flake)
    before = snapshot(flake)

    pin(flake, "mac", public["mac"])
    checked = run(real_sops, flake, check=True)
    assert checked.rc == 0, checked.describe()
    assert relative(flake, checked) == ["secrets/common/ntp.sops.yaml", "secrets/mac/login.sops.yaml"]
    assert snapshot(flake) == {**before, "known_hosts": (flake / "known_hosts").read_bytes()}

    added = run(real_sops, flake)
    assert added.rc == 0 and added.stats()["changed"] > 0, added.describe()
    assert relative(flake, added) == ["secrets/common/ntp.sops.yaml", "secrets/mac/login.sops.yaml"]
    after = snapshot(flake)
    for untouched in ("secrets/pi/wifi.sops.yaml", "secrets/box/db.sops.yaml", "secrets/edge/vpn.sops.yaml",
                      "secrets/admin-notes.sops.yaml", "host-keys/pi.pub", "host-keys/box.pub"):  # fmt: skip
        assert after[untouched] == before[untouched], f"{untouched} was touched"
    assert readers(real_sops, flake, keys, "secrets/common/ntp.sops.yaml") == ["pi", "box", "mac"]
    assert readers(real_sops, flake, keys, "secrets/mac/login.sops.yaml") == ["mac"]

    again = run(real_sops, flake)
    assert again.rc == 0 and again.stats()["changed"] == 0, again.describe()


def test_rotation_in_two_steps_keeps_the_host_able_to_decrypt(fleet, real_sops):
    flake, keys, public = fleet
    assert run(real_sops, flake).rc == 0
    new_public = ssh_key(keys / "pi-new")
    pi_files = ["secrets/common/ntp.sops.yaml", "secrets/pi/wifi.sops.yaml"]
    rotate = {"fleet_rotate_hosts": ["pi"], "fleet_rotate_public_keys": {"pi": new_public}}

    add = run(real_sops, flake, fleet_rotate_stage="add", **rotate)
    assert add.rc == 0 and add.stats()["changed"] > 0, add.describe()
    assert relative(flake, add) == pi_files
    for path in pi_files:  # the host decrypts with its old key (still running) and its new one (once deployed)
        assert readers(real_sops, flake, keys, path, ("pi", "pi-new")) == ["pi", "pi-new"], path
    assert (flake / "host-keys" / "pi.next.pub").read_text().strip() == new_public
    again = run(real_sops, flake, fleet_rotate_stage="add", **rotate)
    assert again.rc == 0 and again.stats()["changed"] == 0, again.describe()
    between = run(real_sops, flake)  # a run between the steps keeps both keys
    assert between.rc == 0 and between.stats()["changed"] == 0, between.describe()

    drop = run(real_sops, flake, fleet_rotate_stage="drop", **rotate)
    assert drop.rc == 0 and drop.stats()["changed"] > 0, drop.describe()
    assert relative(flake, drop) == pi_files
    for path in pi_files:
        assert readers(real_sops, flake, keys, path, ("pi", "pi-new")) == ["pi-new"], path
    assert (flake / "host-keys" / "pi.pub").read_text().strip() == new_public
    assert not (flake / "host-keys" / "pi.next.pub").exists()
    pinned = [line for line in (flake / "known_hosts").read_text().splitlines() if line.startswith("10.77.0.31 ")]
    assert [" ".join(line.split()[1:3]) for line in pinned] == [new_public], "known_hosts pins the new key"
    assert readers(real_sops, flake, keys, "secrets/box/db.sops.yaml") == ["box"], "box was not touched"
    done = run(real_sops, flake, fleet_rotate_stage="drop", **rotate)
    assert done.rc == 0 and done.stats()["changed"] == 0, done.describe()
    assert run(real_sops, flake).stats()["changed"] == 0


def test_a_new_key_made_here_for_the_rotation_opens_the_hosts_files(fleet, real_sops):
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    flake, keys, _public = fleet
    assert run(real_sops, flake).rc == 0
    add = run(real_sops, flake, fleet_rotate_stage="add", fleet_rotate_hosts=["box"])
    assert add.rc == 0, add.describe()
    assert relative(flake, add) == ["secrets/box/db.sops.yaml", "secrets/common/ntp.sops.yaml"]
    stored = flake / "host-keys" / "box.next.sops.yaml"
    plain = sops_files.decrypt_file(str(stored), age.load_identities({}, [str(real_sops.key_file)]))
    (keys / "box-new").write_text(plain["ssh_host_ed25519_key"])
    (keys / "box-new").chmod(0o600)
    assert readers(real_sops, flake, keys, "secrets/box/db.sops.yaml", ("box", "box-new")) == ["box", "box-new"]
    drop = run(real_sops, flake, fleet_rotate_stage="drop", fleet_rotate_hosts=["box"])
    assert drop.rc == 0, drop.describe()
    assert readers(real_sops, flake, keys, "secrets/box/db.sops.yaml", ("box", "box-new")) == ["box-new"]
    assert (flake / "host-keys" / "box.sops.yaml").is_file() and not stored.exists()
    assert run(real_sops, flake).stats()["changed"] == 0


def test_data_keys_of_a_host_are_rotated_on_request(fleet, real_sops):
    flake, keys, _public = fleet
    assert run(real_sops, flake).rc == 0
    before = snapshot(flake)
    done = run(real_sops, flake, fleet_rotate_data_keys=["pi"])
    assert done.rc == 0 and done.stats()["changed"] > 0, done.describe()
    after = snapshot(flake)
    changed = sorted(p for p in after if after[p] != before[p])
    assert changed == ["secrets/pi/wifi.sops.yaml"]
    old = yaml.safe_load(before["secrets/pi/wifi.sops.yaml"])["sops"]["age"]
    new = yaml.safe_load(after["secrets/pi/wifi.sops.yaml"])["sops"]["age"]
    assert [s["recipient"] for s in old] == [s["recipient"] for s in new] and old != new, "a new data key"
    assert readers(real_sops, flake, keys, "secrets/pi/wifi.sops.yaml") == ["pi"]


def test_bad_inputs_are_refused_before_anything_is_written(fleet, real_sops):
    flake, _keys, _public = fleet
    before = snapshot(flake)
    no_identity = run(real_sops, flake, identity=False)
    assert no_identity.rc != 0 and "age-keygen" in no_identity.output, no_identity.describe()
    assert "fleet_admin_recipients" in no_identity.output
    no_admin = run(real_sops, flake, fleet_admin_recipients=[])
    assert no_admin.rc != 0 and "fleet_admin_recipients is empty" in no_admin.output, no_admin.describe()
    no_stage = run(real_sops, flake, fleet_rotate_hosts=["pi"])
    assert no_stage.rc != 0 and "fleet_rotate_stage add" in no_stage.output, no_stage.describe()
    stranger = run(real_sops, flake, fleet_shared=[{"path_regex": "^x/", "hosts": ["nosuchhost"]}])
    assert stranger.rc != 0 and "names nosuchhost" in stranger.output, stranger.describe()
    assert snapshot(flake) == before
