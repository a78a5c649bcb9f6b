"""The keys' export and restore: what an export holds and lists, when a new one is written, what a restore refuses."""

from __future__ import annotations

import datetime
import io
import json
import tarfile

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age, backup
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

NOW = datetime.datetime(2026, 12, 7, 14, 0, 0, tzinfo=datetime.timezone.utc)  # noqa: UP017


@pytest.fixture
def site(tmp_path):
    """(params, held identities, admin identity text, recovery identity) for a small site directory."""
    site_dir = tmp_path / "site"
    (site_dir / "secrets" / "hosts").mkdir(parents=True)
    (site_dir / "secrets" / "k3s.sops.yaml").write_text("token: ENC[...]\n")
    (site_dir / "secrets" / "hosts" / "a.sops.yaml").write_text("x: ENC[...]\n")
    (site_dir / ".sops.yaml").write_text("creation_rules: []\n")
    (site_dir / "site.yml").write_text("site: {}\n")
    admin, other, recovery = (pyrage.x25519.Identity.generate() for _count in range(3))
    held = age.parse_identities(f"{admin}\n{other}\n", "keys.txt")
    params = {
        "site": "home",
        "site_dir": str(site_dir),
        "paths": [".sops.yaml", "known_hosts", "host-keys", "secrets"],
        "admin_recipients": [str(admin.to_public())],
        "dest": str(tmp_path / "backups"),
        "recipient": str(recovery.to_public()),
        "passphrase": None,
    }
    return params, held, str(admin), recovery, str(other)


def test_an_export_holds_the_admins_identity_and_the_key_files_and_lists_no_value(site, tmp_path):
    params, held, admin, recovery, other = site
    result = backup.export(params, held, False, NOW)
    assert result["changed"] and result["archive"].endswith("home-keys-20261207T140000Z.tar.age")
    listed = json.loads((tmp_path / "backups" / "home-keys-20261207T140000Z.json").read_text())
    assert [f["path"] for f in listed["files"]] == [".sops.yaml", "secrets/hosts/a.sops.yaml", "secrets/k3s.sops.yaml"]
    assert listed["identities"] == params["admin_recipients"] and listed["encrypted_to"] == params["recipient"]
    assert admin not in json.dumps(listed) and admin not in json.dumps(result)
    plain = pyrage.decrypt((tmp_path / "backups" / "home-keys-20261207T140000Z.tar.age").read_bytes(), [recovery])
    members = backup.unpack(plain, "a")
    assert admin in members[backup.IDENTITIES].decode(), "the admin's identity is in the archive"
    assert other not in members[backup.IDENTITIES].decode(), "an identity of no admin of the site stays out"
    assert "site.yml" not in json.dumps(listed), "only the key files, not the rest of the site"


def test_a_second_export_of_the_same_keys_writes_nothing_and_a_changed_file_writes_a_new_one(site, tmp_path):
    params, held = site[:2]
    backup.export(params, held, False, NOW)
    again = backup.export(params, held, False, NOW + datetime.timedelta(hours=1))
    assert not again["changed"] and again["archive"].endswith("20261207T140000Z.tar.age")
    (tmp_path / "site" / "secrets" / "k3s.sops.yaml").write_text("token: ENC[other]\n")
    checked = backup.export(params, held, True, NOW + datetime.timedelta(hours=2))
    assert checked["changed"] and len(list((tmp_path / "backups").iterdir())) == 3, "check mode wrote nothing"
    changed = backup.export(params, held, False, NOW + datetime.timedelta(hours=2))
    assert changed["changed"] and changed["previous"].endswith("20261207T140000Z.tar.age")
    assert len(list((tmp_path / "backups").iterdir())) == 6, "a new export beside the old one, never a deletion"


def test_an_export_needs_an_admin_identity_on_the_controller(site):
    params, held = site[:2]
    with pytest.raises(SopsError, match="none of the site's admin identities is on this controller"):
        backup.export(params, held[1:], False, NOW)


def test_a_restore_writes_what_is_missing_adds_the_identity_once_and_refuses_a_differing_file(site, tmp_path):
    params, held, admin, recovery = site[:4]
    archive = backup.export(params, held, False, NOW)["archive"]
    identity_file = tmp_path / "recovery.txt"
    identity_file.write_text(f"{recovery}\n")
    fresh, key_file = tmp_path / "fresh", tmp_path / "xdg" / "keys.txt"
    key_file.parent.mkdir()
    key_file.write_text(f"# another site's\n{pyrage.x25519.Identity.generate()}")
    before = key_file.read_text()
    wanted = {"archive": archive, "identity_file": str(identity_file), "passphrase": None, "site_dir": str(fresh),
              "key_file": str(key_file), "force": False}  # fmt: skip
    checked = backup.restore(wanted, {}, True)
    assert checked["changed"] and checked["checksum"] == "verified" and not fresh.exists()
    done = backup.restore(wanted, {}, False)
    assert done["restored"] == [".sops.yaml", "secrets/hosts/a.sops.yaml", "secrets/k3s.sops.yaml"]
    assert (fresh / "secrets" / "k3s.sops.yaml").read_text() == "token: ENC[...]\n"
    text = key_file.read_text()
    assert text.startswith(before + "\n") and text.count(admin) == 1 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert admin not in json.dumps(done)
    assert not backup.restore(wanted, {}, False)["changed"]
    (fresh / ".sops.yaml").write_text("changed\n")
    with pytest.raises(SopsError, match=r"differ from the export and were not replaced: \.sops\.yaml;.*force=true"):
        backup.restore(wanted, {}, False)
    forced = backup.restore(dict(wanted, force=True), {}, False)
    assert forced["restored"] == [".sops.yaml"] and (fresh / ".sops.yaml").read_text() == "creation_rules: []\n"


def test_a_damaged_copy_or_the_wrong_key_is_refused_without_writing(site, tmp_path):
    params, held, admin, recovery = site[:4]
    archive = backup.export(params, held, False, NOW)["archive"]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    wanted = {"archive": archive, "identity_file": str(wrong), "passphrase": None, "site_dir": str(tmp_path / "f"),
              "key_file": str(tmp_path / "k"), "force": False}  # fmt: skip
    with pytest.raises(SopsError, match="the recovery identity in .*wrong.txt does not open"):
        backup.restore(wanted, {}, False)
    with open(archive, "ab") as handle:
        handle.write(b"x")
    with pytest.raises(SopsError, match="does not match its checksum"):
        backup.restore(wanted, {}, False)
    assert not (tmp_path / "f").exists() and not (tmp_path / "k").exists()


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "site/../../x", "other/file"])
def test_an_archive_member_no_export_holds_is_refused(name):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in (backup.LISTING, name):
            info = tarfile.TarInfo(member)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(SopsError, match="which no export of nerv.homelab holds"):
        backup.unpack(buffer.getvalue(), "x.tar.age")


def test_a_link_in_an_archive_is_refused():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("site/secrets")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    with pytest.raises(SopsError, match="'site/secrets'"):
        backup.unpack(buffer.getvalue(), "x.tar.age")


def test_the_key_file_is_where_sops_reads_it():
    assert backup.default_key_file({"SOPS_AGE_KEY_FILE": "/k"}) == "/k"
    assert backup.default_key_file({"XDG_CONFIG_HOME": "/c"}) == "/c/sops/age/keys.txt"
