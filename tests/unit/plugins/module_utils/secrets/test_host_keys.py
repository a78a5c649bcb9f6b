"""host_keys' rotation in two steps: step add records the new key beside the current one (both recipients), step
drop makes it the host's key; each step a second time changes nothing, and what would lose a key is refused."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets import host_keys as hk
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")


@pytest.fixture
def admin():
    key = pyrage.x25519.Identity.generate()
    return age.Identity(key, "test", str(key.to_public()))


def new_public(name):
    return age.new_ssh_host_key(f"root@{name}")[1]


def run(tmp_path, admin, check=False, **params):
    base = {
        "hosts": [{"name": "pi", "address": "10.0.0.1", "generate": False}],
        "public_dir": str(tmp_path / "keys"),
        "secrets_dir": str(tmp_path / "keys"),
        "admin_recipients": [admin.public],
        "rotate": [],
        "rotate_stage": "replace",
        "known_hosts": str(tmp_path / "known_hosts"),
        "extra_files_dir": None,
    }
    return hk.settle({**base, **params}, check, lambda: [admin])


@pytest.fixture
def pinned(tmp_path, admin):
    """pi's current key, pinned in known_hosts and recorded by a first run."""
    current = new_public("pi")
    (tmp_path / "known_hosts").write_text(f"10.0.0.1 {current}\n")
    assert run(tmp_path, admin)["hosts"]["pi"]["action"] == "recorded"
    return current


def host(**more):
    return [{"name": "pi", "address": "10.0.0.1", "generate": False, **more}]


def test_step_add_records_the_new_key_beside_the_current_one(tmp_path, admin, pinned):
    new = new_public("pi")
    checked = run(tmp_path, admin, check=True, rotate=["pi"], rotate_stage="add", hosts=host(next_public_key=new))
    assert checked["changed"] and not (tmp_path / "keys" / "pi.next.pub").exists()
    added = run(tmp_path, admin, rotate=["pi"], rotate_stage="add", hosts=host(next_public_key=new))
    assert added["changed"] and added["hosts"]["pi"]["next_action"] == "added"
    assert added["recipients"] == {"pi": age.age_recipient_from_ssh(pinned)}
    assert added["next_recipients"] == {"pi": age.age_recipient_from_ssh(new)}
    again = run(tmp_path, admin, rotate=["pi"], rotate_stage="add", hosts=host(next_public_key=new))
    assert not again["changed"] and again["hosts"]["pi"]["next_action"] == "kept"
    assert run(tmp_path, admin)["next_recipients"] == added["next_recipients"], "kept in runs between the steps"


def test_step_drop_makes_the_new_key_the_hosts_and_then_does_nothing(tmp_path, admin, pinned):
    new = new_public("pi")
    run(tmp_path, admin, rotate=["pi"], rotate_stage="add", hosts=host(next_public_key=new))
    # the host now runs with its new key and was re-pinned: that is the rotation, not a different key
    (tmp_path / "known_hosts").write_text(f"10.0.0.1 {new}\n")
    assert not run(tmp_path, admin)["changed"]
    checked = run(tmp_path, admin, check=True, rotate=["pi"], rotate_stage="drop")
    assert checked["changed"] and (tmp_path / "keys" / "pi.next.pub").exists()
    dropped = run(tmp_path, admin, rotate=["pi"], rotate_stage="drop")
    assert dropped["changed"] and dropped["hosts"]["pi"]["action"] == "rotated"
    assert dropped["recipients"] == {"pi": age.age_recipient_from_ssh(new)} and dropped["next_recipients"] == {}
    assert (tmp_path / "keys" / "pi.pub").read_text().split() == new.split()[:2]
    assert not (tmp_path / "keys" / "pi.next.pub").exists()
    assert not run(tmp_path, admin, rotate=["pi"], rotate_stage="drop")["changed"]


def test_a_new_key_made_here_is_kept_encrypted_to_the_admins_and_becomes_the_hosts(tmp_path, admin, pinned):
    added = run(tmp_path, admin, rotate=["pi"], rotate_stage="add")
    public = added["hosts"]["pi"]["next_public_key"]
    stored = tmp_path / "keys" / "pi.next.sops.yaml"
    pem = files.decrypt_file(str(stored), [admin])[hk.PRIVATE_KEY].encode()
    assert age.public_line_of(pem).split()[:2] == public.split()[:2]
    dropped = run(tmp_path, admin, rotate=["pi"], rotate_stage="drop")
    assert dropped["hosts"]["pi"]["source"] == "generated" and not stored.exists()
    assert files.decrypt_file(str(tmp_path / "keys" / "pi.sops.yaml"), [admin])[hk.PRIVATE_KEY].encode() == pem


def test_what_would_lose_a_key_is_refused_and_changes_nothing(tmp_path, admin, pinned):
    new, other = new_public("pi"), new_public("pi")
    run(tmp_path, admin, rotate=["pi"], rotate_stage="add", hosts=host(next_public_key=new))
    before = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    with pytest.raises(age.SopsError, match="already rotating to"):
        run(tmp_path, admin, rotate=["pi"], rotate_stage="add", hosts=host(next_public_key=other))
    with pytest.raises(age.SopsError, match="finish with rotate_stage drop"):
        run(tmp_path, admin, rotate=["pi"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()} == before


def test_the_new_key_must_differ_and_a_host_without_a_key_has_none_to_rotate(tmp_path, admin, pinned):
    with pytest.raises(age.SopsError, match="is its current key"):
        run(tmp_path, admin, rotate=["pi"], rotate_stage="add", hosts=host(next_public_key=pinned))
    fresh = [{"name": "mac", "address": "10.0.0.9", "generate": False}]
    with pytest.raises(age.SopsError, match="mac has no key yet"):
        run(tmp_path, admin, rotate=["mac"], rotate_stage="add", hosts=fresh)
