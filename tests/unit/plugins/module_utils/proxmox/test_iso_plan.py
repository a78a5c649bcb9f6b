"""nerv.homelab.proxmox_iso's pure parts (naming, checks, the decision table, sha256 streaming, the record)
and ProxmoxClient.upload's request (field order, streamed body with a Content-Length), without a network."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import iso_plan
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import UPLOAD_BLOCK, ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError, ProxmoxSettings

SHA = hashlib.sha256(b"one").hexdigest()
OTHER = hashlib.sha256(b"two").hexdigest()
VOLID = "local:iso/rescue.iso"
SECRET = "canary-77aa01-unit-secret"
UPID = "UPID:pve1:0000A1B2:00C3D4E5:6745A1B2:imgcopy::automation@pve!nerv:"


# ---------------------------------------------------------------- naming and input


@pytest.mark.parametrize(
    ("basename", "name"),
    [
        ("nixos-installer.iso", f"nixos-installer-{SHA[:12]}.iso"),
        ("rescue.IMG", f"rescue-{SHA[:12]}.img"),
        ("latest nixos (x86_64).iso", f"latest_nixos_x86_64-{SHA[:12]}.iso"),
        ("disk.raw", f"disk.raw-{SHA[:12]}.iso"),
        ("", f"image-{SHA[:12]}.iso"),
    ],
)
def test_the_default_name_carries_the_stem_and_12_hex_of_the_checksum(basename, name):
    assert iso_plan.derived_name(basename, SHA) == name
    assert iso_plan.check_name(name) == name


def test_a_new_build_gets_a_new_name():
    assert iso_plan.derived_name("nixos.iso", SHA) != iso_plan.derived_name("nixos.iso", OTHER)


def test_the_source_basename_comes_from_the_path_or_the_url():
    assert iso_plan.source_basename(src="/tmp/build/result.iso") == "result.iso"
    assert iso_plan.source_basename(url="https://x.example/a/nixos%20min.iso?sig=1") == "nixos min.iso"


@pytest.mark.parametrize("name", ["x.qcow2", "x.iso.gz", "../x.iso", "a b.iso", "", ".iso2"])
def test_names_pve_would_refuse_or_rewrite_are_refused_naming_the_option(name):
    with pytest.raises(iso_plan.IsoError, match=r"^name .* ends in \.iso or \.img"):
        iso_plan.check_name(name)


def test_checksums_are_64_hex_digits_in_lower_case():
    assert iso_plan.check_checksum(SHA.upper()) == SHA
    assert iso_plan.check_checksum(f"sha256:{SHA}") == SHA
    assert iso_plan.check_checksum(None) is None and iso_plan.check_checksum("") is None
    for bad in ("1234", SHA[:-1] + "g", "md5:" + SHA):
        with pytest.raises(iso_plan.IsoError, match="is not a sha256"):
            iso_plan.check_checksum(bad)


def test_iso_content_is_read_from_the_storage_status():
    assert iso_plan.has_iso_content({"content": "vztmpl,iso,backup"})
    assert not iso_plan.has_iso_content({"content": "images,rootdir"})
    assert not iso_plan.has_iso_content({"content": "isos"}) and not iso_plan.has_iso_content({})


def test_the_volume_is_found_in_the_listing_by_volid():
    listing = [{"volid": "local:iso/a.iso", "size": 5}, {"volid": VOLID, "size": 7}]
    assert iso_plan.find_volume(listing, VOLID) == {"volid": VOLID, "size": 7}
    assert iso_plan.find_volume(listing, "local:iso/none.iso") is None


# ---------------------------------------------------------------- sha256 streaming


# ---------------------------------------------------------------- the decision table

LISTED = {"volid": VOLID, "size": 100}


@pytest.mark.parametrize(
    ("state", "listed", "record", "sha", "size", "by_content", "force", "action", "error"),
    [
        # absent
        ("absent", None, None, None, None, False, False, "none", None),
        ("absent", LISTED, None, None, None, False, False, "delete", None),
        ("absent", LISTED, {"sha256": SHA, "size": 100}, SHA, 100, True, True, "delete", None),
        # not there yet
        ("present", None, None, SHA, 100, True, False, "create", None),
        ("present", None, {"sha256": OTHER, "size": 5}, SHA, 100, False, False, "create", None),
        # named after the content: the name says what it holds
        ("present", LISTED, None, SHA, 100, True, False, "none", None),
        ("present", LISTED, None, SHA, None, True, False, "none", None),
        ("present", LISTED, None, SHA, 99, True, False, "none", "different content"),
        ("present", LISTED, None, SHA, 99, True, True, "replace", None),
        # an explicit name: the record decides
        ("present", LISTED, {"sha256": SHA, "size": 100}, SHA, 100, False, False, "none", None),
        ("present", LISTED, {"sha256": SHA, "size": 100}, SHA, None, False, False, "none", None),
        ("present", LISTED, {"sha256": SHA, "size": 100}, SHA, 100, False, True, "none", None),
        ("present", LISTED, {"sha256": OTHER, "size": 100}, SHA, 100, False, False, "none", "different content"),
        ("present", LISTED, {"sha256": OTHER, "size": 100}, SHA, 100, False, True, "replace", None),
        ("present", LISTED, {"sha256": SHA, "size": 100}, SHA, 120, False, False, "none", "different content"),
        ("present", LISTED, {"sha256": SHA, "size": 80}, SHA, None, False, False, "none", "different content"),
        ("present", LISTED, {"sha256": SHA, "size": 80}, SHA, None, False, True, "replace", None),
        ("present", LISTED, None, SHA, 100, False, False, "none", "content is unknown"),
        ("present", LISTED, None, SHA, 100, False, True, "replace", None),
    ],
)
def test_the_decision_table(state, listed, record, sha, size, by_content, force, action, error):
    decision = iso_plan.decide(state, VOLID, listed, record, sha, size, by_content, force)
    assert decision.action == action
    if error:
        assert decision.error and error in decision.error
        assert "force: true" in decision.error and "leave name unset" in decision.error
    else:
        assert decision.error is None


@pytest.mark.parametrize(
    ("action", "from_url", "shown"),
    [("create", False, "uploaded"), ("create", True, "downloaded"), ("replace", True, "replaced"),
     ("delete", False, "deleted"), ("none", False, "none")],
)  # fmt: skip
def test_the_returned_action(action, from_url, shown):
    assert iso_plan.result_action(action, from_url) == shown


def test_the_diff_shows_what_is_known():
    assert iso_plan.diff_view(VOLID, None) == {"volid": VOLID, "state": "absent"}
    assert iso_plan.diff_view(VOLID, LISTED) == {"volid": VOLID, "state": "present", "size": 100}
    assert iso_plan.diff_view(VOLID, LISTED, SHA)["sha256"] == SHA
    assert iso_plan.known_sha256({"sha256": OTHER}, SHA, True) == OTHER
    assert iso_plan.known_sha256(None, SHA, True) == SHA and iso_plan.known_sha256(None, SHA, False) is None


# ---------------------------------------------------------------- the record


def test_the_record_is_kept_per_api_node_storage_and_volume(tmp_path):
    records = iso_plan.Records(str(tmp_path / "state"))
    key = iso_plan.record_key("https://pve1:8006/", "pve1", "local", VOLID)
    assert key == f"https://pve1:8006/pve1/local/{VOLID}"
    assert records.get(key) is None
    records.put(key, None)
    assert not (tmp_path / "state").exists(), "dropping nothing wrote a file"
    records.put(key, {"sha256": SHA, "size": 100})
    records.put("other", {"sha256": OTHER, "size": 1})
    assert records.get(key) == {"sha256": SHA, "size": 100}
    records.put(key, None)
    assert json.loads((tmp_path / "state" / "records.json").read_text()) == {"other": {"sha256": OTHER, "size": 1}}
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [".records.lock", "records.json"], (
        "a temporary file was left"
    )


def test_a_broken_record_is_a_clear_error(tmp_path):
    (tmp_path / "records.json").write_text("{not json")
    with pytest.raises(iso_plan.IsoError, match="cannot be read .* fix or remove it"):
        iso_plan.Records(str(tmp_path)).get("x")


# ---------------------------------------------------------------- ProxmoxClient.upload, on the wire


class Capture(requests.adapters.BaseAdapter):
    """A transport that records the prepared request and reads its body the way a socket would: in blocks."""

    def __init__(self, status=200, payload=None, reason="OK"):
        super().__init__()
        self.status, self.payload, self.reason = status, payload if payload is not None else {"data": UPID}, reason
        self.sent = []

    def send(self, request, **kwargs):
        body, reads = bytearray(), []
        while True:
            block = request.body.read(8192)  # what http.client asks for
            if not block:
                break
            reads.append(len(block))
            body += block
        self.sent.append({"request": request, "kwargs": kwargs, "body": bytes(body), "reads": reads})
        response = requests.Response()
        response.status_code, response.reason, response.url = self.status, self.reason, request.url
        response._content = json.dumps(self.payload).encode()  # pylint: disable=protected-access
        response.request = request
        return response

    def close(self):
        pass


def parts_of(body, content_type):
    """[(field name, filename or None, data)] of a multipart body, in order."""
    boundary = content_type.split("boundary=", 1)[1].encode()
    found = []
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _sep, data = part[2:-2].partition(b"\r\n\r\n")
        disposition = head.decode().split("\r\n")[0]
        field = disposition.split('name="', 1)[1].split('"', 1)[0]
        filename = disposition.split('filename="', 1)[1].split('"', 1)[0] if 'filename="' in disposition else None
        found.append((field, filename, data))
    return found


def client_with(adapter, **changes):
    values = dict(url="https://pve1.lab.example:8006", token_id="automation@pve!nerv", token_secret=SECRET)
    values.update(changes)
    client = ProxmoxClient(ProxmoxSettings(**values))
    api, _generation = client._session()  # pylint: disable=protected-access
    api._store["session"].mount("https://", adapter)  # pylint: disable=protected-access
    return client


def test_upload_streams_the_fields_first_then_the_file_with_a_content_length(tmp_path):
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    path = tmp_path / "x.iso"
    path.write_bytes(data)
    adapter = Capture()
    client = client_with(adapter, timeout=7)
    fields = iso_plan.upload_fields(SHA)
    answer = client.upload("/nodes/pve1/storage/local/upload", fields, "filename", str(path), "x-abc.iso", timeout=99)
    assert answer == UPID and client.requests == 1
    sent = adapter.sent[0]
    request = sent["request"]
    assert (
        request.method == "POST"
        and request.url == "https://pve1.lab.example:8006/api2/json/nodes/pve1/storage/local/upload"
    )
    assert not isinstance(request.body, (bytes, str)), "the body was built in memory"
    # read in blocks of 1 MiB (UPLOAD_BLOCK), not all at once, and not the 8 KiB http.client asks for
    assert max(sent["reads"]) <= UPLOAD_BLOCK and len(sent["reads"]) == 4
    assert int(request.headers["Content-Length"]) == len(sent["body"])
    assert "Transfer-Encoding" not in request.headers
    assert request.headers["Authorization"] == f"PVEAPIToken=automation@pve!nerv={SECRET}"
    assert sent["kwargs"]["timeout"] == (7, 99)
    parts = parts_of(sent["body"], request.headers["Content-Type"])
    assert [(name, filename) for name, filename, _data in parts] == [
        ("content", None),
        ("checksum", None),
        ("checksum-algorithm", None),
        ("filename", "x-abc.iso"),
    ]
    assert [d for _n, _f, d in parts[:3]] == [b"iso", SHA.encode(), b"sha256"]
    assert parts[3][2] == data
    assert b"Content-Type: application/octet-stream" in sent["body"]


def test_upload_errors_name_the_request_and_mask_the_secret(tmp_path):
    path = tmp_path / "x.iso"
    path.write_bytes(b"iso")
    adapter = Capture(status=403, payload={"data": None}, reason=f"Permission check failed ({SECRET})")
    client = client_with(adapter)
    with pytest.raises(ProxmoxError) as caught:
        client.upload("/nodes/pve1/storage/local/upload", [("content", "iso")], "filename", str(path), "x.iso")
    assert caught.value.status == 403 and SECRET not in caught.value.message
    assert caught.value.message.startswith("Proxmox POST /nodes/pve1/storage/local/upload: HTTP 403")
    assert len(adapter.sent) == 1


def test_upload_is_not_retried_on_a_transient_answer(tmp_path):
    path = tmp_path / "x.iso"
    path.write_bytes(b"iso")
    adapter = Capture(status=596, payload={"data": None}, reason="Connection timed out")
    client = client_with(adapter)
    with pytest.raises(ProxmoxError, match="failed once: HTTP 596"):
        client.upload("/nodes/pve1/storage/local/upload", {"content": "iso"}, "filename", str(path), "x.iso")
    assert len(adapter.sent) == 1 and client.requests == 1


def test_an_unwritable_record_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(iso_plan.IsoError, match="set state_dir to a writable directory"):
        iso_plan.Records(str(tmp_path / "file" / "state")).put("x", {"sha256": SHA, "size": 1})
