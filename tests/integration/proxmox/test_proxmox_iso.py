"""nerv.homelab.proxmox_iso in real playbooks against fakepve: upload, download, replace, delete, refusals."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

MODULE = "nerv.homelab.proxmox_iso"
CANARY = "canary-3be1f0-iso-secret"
NODE = "pve1"
ISO_URL = "https://images.example/releases/nixos-minimal-25.05.iso"
URL_SHA = "ab" * 32
DIFF = ("--diff", "-vvv")  # results keep their diff only at -vvv


def play(*tasks):
    return [{"name": "ISO", "hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def task(**options):
    return {"name": "ISO", MODULE: {"node": NODE, **options}, "register": "iso"}


def make_iso(path, size=96 * 1024, seed=b"nerv"):
    """A small file shaped like an ISO 9660 image (primary volume descriptor at 32 KiB), content from seed."""
    block = hashlib.sha256(seed).digest() * (size // 32 + 1)
    data = bytearray(block[:size])
    data[0x8000:0x8006] = b"\x01CD001"
    path.write_bytes(bytes(data))
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "records")


def iso_volumes(pve_site, storage="local"):
    """{volname: size} of the ISO volumes the fake holds."""
    volumes = pve_site.pve.storages[storage].get("volumes", {})
    return {name: vol["size"] for name, vol in volumes.items() if name.startswith("iso/")}


def upload_requests(pve_site):
    return [r for r in pve_site.pve.requests if r[0] == "POST" and r[1].endswith("/upload")]


def run(ansible_cli, pve_site, *tasks, check=False, secret=None, args=()):
    result = ansible_cli.playbook(play(*tasks), *args, env=pve_site.proxmox_env(secret), check=check)
    assert pve_site.token_secret not in result.output, "the token secret leaked into the output"
    return result


def test_upload_twice_is_changed_then_not_and_sends_the_fields_before_the_file(
    ansible_cli, pve_site, tmp_path, state_dir
):
    src, sha = make_iso(tmp_path / "nixos-installer.iso")
    name = f"nixos-installer-{sha[:12]}.iso"
    first = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir))
    assert first.rc == 0, first.describe()
    result = first.task("ISO")
    assert result["changed"] is True and result["action"] == "uploaded"
    assert result["volid"] == f"local:iso/{name}" and result["name"] == name
    assert result["sha256"] == sha and result["size"] == src.stat().st_size
    assert result["task"]["exitstatus"] == "OK"
    uploaded = pve_site.pve.uploaded
    assert list(uploaded) == ["content", "checksum", "checksum-algorithm", "filename", "data"]
    assert uploaded["content"] == "iso" and uploaded["checksum"] == sha and uploaded["checksum-algorithm"] == "sha256"
    assert uploaded["filename"] == name and len(uploaded["data"]) == src.stat().st_size
    assert hashlib.sha256(uploaded["data"]).hexdigest() == sha
    assert iso_volumes(pve_site) == {f"iso/{name}": src.stat().st_size}
    assert len(upload_requests(pve_site)) == 1

    second = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir))
    assert second.rc == 0, second.describe()
    again = second.task("ISO")
    assert again["changed"] is False and again["action"] == "none" and again["task"] is None
    assert again["volid"] == result["volid"]
    assert len(upload_requests(pve_site)) == 1, "the second run uploaded again"
    assert again["requests"] == 2  # storage status and content listing only


def test_check_mode_reports_the_upload_and_changes_nothing(ansible_cli, pve_site, tmp_path, state_dir):
    src, sha = make_iso(tmp_path / "installer.iso")
    checked = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir), check=True, args=DIFF)
    assert checked.rc == 0, checked.describe()
    result = checked.task("ISO")
    assert result["changed"] is True and result["action"] == "uploaded" and result["task"] is None
    assert result["diff"]["before"] == {"volid": result["volid"], "state": "absent"}
    assert result["diff"]["after"]["sha256"] == sha and result["diff"]["after"]["state"] == "present"
    assert upload_requests(pve_site) == [] and iso_volumes(pve_site) == {}
    assert not os.path.exists(state_dir), "check mode wrote the record"


def test_an_explicit_name_with_other_content_fails_without_force_and_is_replaced_with_it(
    ansible_cli, pve_site, tmp_path, state_dir
):
    one, sha_one = make_iso(tmp_path / "one.iso", seed=b"one")
    two, sha_two = make_iso(tmp_path / "two.iso", size=128 * 1024, seed=b"two")
    same_size, sha_same = make_iso(tmp_path / "three.iso", seed=b"three")
    first = run(ansible_cli, pve_site, task(src=str(one), name="rescue.iso", state_dir=state_dir))
    assert first.rc == 0 and first.task("ISO")["action"] == "uploaded", first.describe()
    again = run(ansible_cli, pve_site, task(src=str(one), name="rescue.iso", state_dir=state_dir))
    assert again.rc == 0 and again.task("ISO")["changed"] is False, again.describe()

    for other, _sha in ((two, sha_two), (same_size, sha_same)):  # a size that differs, and one that does not
        refused = run(ansible_cli, pve_site, task(src=str(other), name="rescue.iso", state_dir=state_dir))
        assert refused.rc != 0
        msg = refused.task("ISO")["msg"]
        assert "local:iso/rescue.iso already exists with different content" in msg
        assert "force: true" in msg and "leave name unset" in msg
        assert pve_site.pve.uploaded["checksum"] == sha_one and len(upload_requests(pve_site)) == 1

    forced = run(
        ansible_cli, pve_site, task(src=str(two), name="rescue.iso", force=True, state_dir=state_dir), args=DIFF
    )
    assert forced.rc == 0, forced.describe()
    result = forced.task("ISO")
    assert result["changed"] is True and result["action"] == "replaced"
    assert result["diff"]["before"] == {
        "volid": "local:iso/rescue.iso",
        "state": "present",
        "size": 96 * 1024,
        "sha256": sha_one,
    }
    assert result["diff"]["after"]["sha256"] == sha_two and result["diff"]["after"]["size"] == 128 * 1024
    assert pve_site.pve.uploaded["checksum"] == sha_two
    assert iso_volumes(pve_site) == {"iso/rescue.iso": 128 * 1024}
    records = json.loads((tmp_path / "records" / "records.json").read_text())
    assert list(records.values()) == [{"sha256": sha_two, "size": 128 * 1024}]
    assert next(iter(records)).endswith(f"/{NODE}/local/local:iso/rescue.iso")

    settled = run(ansible_cli, pve_site, task(src=str(two), name="rescue.iso", force=True, state_dir=state_dir))
    assert settled.rc == 0 and settled.task("ISO")["changed"] is False, "force re-sent identical content"


def test_an_explicit_name_with_no_record_is_unknown_content(ansible_cli, pve_site, tmp_path, state_dir):
    src, _sha = make_iso(tmp_path / "a.iso")
    pve_site.pve.store_file("local", "handmade.iso", src.stat().st_size)
    refused = run(ansible_cli, pve_site, task(src=str(src), name="handmade.iso", state_dir=state_dir))
    assert refused.rc != 0
    msg = refused.task("ISO")["msg"]
    assert "content is unknown" in msg and "force: true" in msg
    assert upload_requests(pve_site) == []
    forced = run(ansible_cli, pve_site, task(src=str(src), name="handmade.iso", force=True, state_dir=state_dir))
    assert forced.rc == 0 and forced.task("ISO")["action"] == "replaced", forced.describe()


def test_download_url_twice_then_absent_twice(ansible_cli, pve_site, state_dir):
    name = f"nixos-minimal-25.05-{URL_SHA[:12]}.iso"
    download = task(download_url=ISO_URL, checksum=URL_SHA, state_dir=state_dir)
    first = run(ansible_cli, pve_site, download)
    assert first.rc == 0, first.describe()
    result = first.task("ISO")
    assert result["changed"] is True and result["action"] == "downloaded"
    assert result["volid"] == f"local:iso/{name}" and result["task"]["exitstatus"] == "OK"
    assert result["size"] == 1024**2  # the fake's download size, read back from the listing
    posts = [r for r in pve_site.pve.requests if r[0] == "POST" and r[1].endswith("/download-url")]
    assert len(posts) == 1
    assert iso_volumes(pve_site) == {f"iso/{name}": 1024**2}

    second = run(ansible_cli, pve_site, download)
    assert second.rc == 0 and second.task("ISO")["changed"] is False, second.describe()
    assert len([r for r in pve_site.pve.requests if r[1].endswith("/download-url")]) == 1

    remove = task(name=name, state="absent", state_dir=state_dir)
    gone = run(ansible_cli, pve_site, remove, args=DIFF)
    assert gone.rc == 0, gone.describe()
    removed = gone.task("ISO")
    assert removed["changed"] is True and removed["action"] == "deleted" and removed["task"]["exitstatus"] == "OK"
    assert removed["diff"]["after"] == {"volid": f"local:iso/{name}", "state": "absent"}
    assert iso_volumes(pve_site) == {}
    again = run(ansible_cli, pve_site, remove)
    assert again.rc == 0 and again.task("ISO")["changed"] is False and again.task("ISO")["action"] == "none"


def test_bad_input_fails_early_naming_the_option_and_sends_nothing(ansible_cli, pve_site, tmp_path, state_dir):
    src, _sha = make_iso(tmp_path / "x.iso")
    cases = [
        (task(src=str(src), name="x.qcow2", state_dir=state_dir), "name 'x.qcow2' is not an ISO file name"),
        (task(src=str(src), download_url=ISO_URL, checksum=URL_SHA, state_dir=state_dir), "mutually exclusive"),
        (task(src=str(tmp_path / "missing.iso"), state_dir=state_dir), "is not a file"),
        (task(src=str(src), checksum="1234", state_dir=state_dir), "checksum '1234' is not a sha256"),
        (task(download_url=ISO_URL, state_dir=state_dir), "download_url needs checksum"),
    ]
    for options, expected in cases:
        failed = run(ansible_cli, pve_site, options)
        assert failed.rc != 0
        assert expected in failed.task("ISO")["msg"], failed.describe()
    assert pve_site.pve.requests == [] and pve_site.pve.uploaded is None


def test_a_storage_without_iso_content_is_refused_before_the_upload(ansible_cli, pve_site, tmp_path, state_dir):
    src, _sha = make_iso(tmp_path / "x.iso")
    pve_site.pve.storages["local"]["content"] = "vztmpl,backup,snippets"
    failed = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir))
    assert failed.rc != 0
    msg = failed.task("ISO")["msg"]
    assert "storage 'local' on node pve1 does not take ISO images" in msg and "storage option" in msg
    assert upload_requests(pve_site) == []

    lvm = run(ansible_cli, pve_site, task(src=str(src), storage="local-lvm", state_dir=state_dir))
    assert lvm.rc != 0 and "does not take ISO images" in lvm.task("ISO")["msg"]


def test_a_refused_upload_names_the_request_and_the_permission(ansible_cli, pve_site, tmp_path, state_dir):
    src, _sha = make_iso(tmp_path / "x.iso")
    pve_site.pve.fail("POST", "/upload", 403, "Permission check failed")
    failed = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir))
    assert failed.rc != 0
    result = failed.task("ISO")
    assert result["http_status"] == 403
    assert "Proxmox POST /nodes/pve1/storage/local/upload: HTTP 403 Permission check failed" in result["msg"]
    assert len(upload_requests(pve_site)) == 1, "a POST upload is sent once"
    assert not os.path.exists(os.path.join(state_dir, "records.json"))


def test_a_failing_upload_task_reports_its_log_tail(ansible_cli, pve_site, tmp_path, state_dir):
    src, _sha = make_iso(tmp_path / "x.iso")
    pve_site.pve.storages["local"]["avail"] = 1024
    failed = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir))
    assert failed.rc != 0
    result = failed.task("ISO")
    assert "Proxmox task imgcopy" in result["msg"] and "No space left on device" in result["msg"]
    assert any("No space left on device" in line for line in result["log_tail"])
    assert result["upid"].startswith("UPID:pve1:")
    assert iso_volumes(pve_site) == {}


def test_the_token_secret_never_shows_even_verbose_and_rejected(ansible_cli, pve_site, tmp_path, state_dir):
    src, _sha = make_iso(tmp_path / "x.iso")
    ok = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir), args=("-vvv",))
    assert ok.rc == 0, ok.describe()
    assert pve_site.token_secret not in str(ok.results)
    rejected = run(ansible_cli, pve_site, task(src=str(src), state_dir=state_dir), secret=CANARY, args=("-vvv",))
    assert rejected.rc != 0
    assert f"Proxmox rejected API token {pve_site.token_id}" in rejected.task("ISO")["msg"]
    assert CANARY not in rejected.output and CANARY not in str(rejected.results)


def test_the_client_upload_masks_a_rejected_secret_and_streams_with_a_content_length(pve_site, tmp_path):
    from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
    from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError, ProxmoxSettings

    src, sha = make_iso(tmp_path / "direct.iso")
    fields = [("content", "iso"), ("checksum", sha), ("checksum-algorithm", "sha256")]
    values = dict(url=pve_site.url, token_id=pve_site.token_id, ca_path=pve_site.cafile)
    bad = ProxmoxClient(ProxmoxSettings(token_secret=CANARY, **values))
    with pytest.raises(ProxmoxError) as caught:
        bad.upload("/nodes/pve1/storage/local/upload", fields, "filename", str(src), "direct.iso")
    assert caught.value.status == 401 and CANARY not in caught.value.message and bad.requests == 1

    good = ProxmoxClient(ProxmoxSettings(token_secret=pve_site.token_secret, **values))
    upid = good.upload("/nodes/pve1/storage/local/upload", fields, "filename", str(src), "direct.iso", timeout=60)
    assert good.wait_task(upid)["exitstatus"] == "OK"
    assert list(pve_site.pve.uploaded)[:3] == ["content", "checksum", "checksum-algorithm"]
    assert iso_volumes(pve_site) == {"iso/direct.iso": src.stat().st_size}

    with pytest.raises(ProxmoxError) as missing:
        good.upload("/nodes/pve1/storage/local/upload", fields, "filename", str(tmp_path / "nope.iso"), "n.iso")
    assert "cannot read" in missing.value.message


def test_the_client_upload_works_with_a_ticket_login_too(pve_site, tmp_path):
    from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
    from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxSettings

    from .._pve import ROOT

    src, sha = make_iso(tmp_path / "ticket.iso")
    settings = ProxmoxSettings(url=pve_site.url, user=ROOT, password=pve_site.root_password, ca_path=pve_site.cafile)
    client = ProxmoxClient(settings)
    fields = [("content", "iso"), ("checksum", sha), ("checksum-algorithm", "sha256")]
    upid = client.upload("/nodes/pve1/storage/local/upload", fields, "filename", str(src), "ticket.iso")
    assert client.wait_task(upid)["exitstatus"] == "OK"
    assert client.requests >= 3  # the login, the upload, the task status
    assert iso_volumes(pve_site) == {"iso/ticket.iso": src.stat().st_size}
