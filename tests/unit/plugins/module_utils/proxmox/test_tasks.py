"""The pure parts of the Proxmox client: UPIDs, task outcomes, backoff, settings checks."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.tasks import (
    ProxmoxError,
    ProxmoxSettings,
    backoff_delays,
    decode_upid,
    log_tail,
    poll_delays,
    settings_from_site,
    task_failure,
    task_warnings,
)

UPID = "UPID:pve2:000A1B2C:0047A1F0:6744E5A1:qmstart:101:automation@pve!nerv:"
SECRET = "3f0b8e61-canary-secret"


def test_decode_upid_reads_the_node_and_hex_fields():
    upid = decode_upid(UPID)
    assert (upid.node, upid.type, upid.id, upid.user) == ("pve2", "qmstart", "101", "automation@pve!nerv")
    assert (upid.pid, upid.pstart, upid.starttime) == (0x000A1B2C, 0x0047A1F0, 0x6744E5A1)


@pytest.mark.parametrize(
    "bad",
    ["", None, "UPID:pve2:1:2:3:qmstart:101:root@pam:", UPID[:-1], UPID.replace("UPID", "UPIX"), "OK"],
)
def test_decode_upid_refuses_what_is_not_a_upid(bad):
    with pytest.raises(ProxmoxError, match="not a Proxmox task id"):
        decode_upid(bad)


@pytest.mark.parametrize(
    ("exitstatus", "warnings"),
    [("OK", 0), ("WARNINGS: 1", 1), ("WARNINGS: 12", 12), ("WARNINGS: x", None), ("ok", None), ("", None), (None, None)]
    + [("command 'qm start 101' failed: exit code 1", None), ("unexpected status", None)],
)
def test_task_warnings_treats_ok_and_warnings_as_success(exitstatus, warnings):
    assert task_warnings(exitstatus) == warnings


def test_log_tail_keeps_the_last_lines_in_order():
    lines = [{"n": n, "t": f"line {n}"} for n in range(30, 0, -1)]
    assert log_tail(lines, 3) == ["line 28", "line 29", "line 30"]
    assert log_tail(None) == [] and log_tail(["junk"]) == []


def test_task_failure_carries_exit_status_log_tail_and_upid():
    lines = [{"n": 1, "t": "starting"}, {"n": 2, "t": "TASK ERROR: boom"}]
    error = task_failure(decode_upid(UPID), UPID, "boom", lines)
    assert error.exitstatus == "boom" and error.log_tail == ["starting", "TASK ERROR: boom"] and error.upid == UPID
    assert "qmstart 101" in error.message and "pve2" in error.message and "TASK ERROR: boom" in error.message
    assert error.details == {"exitstatus": "boom", "log_tail": error.log_tail, "upid": UPID}


def test_backoff_doubles_and_is_capped():
    assert backoff_delays(4, 0.5) == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delays(3, 10, cap=15) == [10, 15, 15]
    assert backoff_delays(0, 1) == [] and backoff_delays(-1, 1) == []


def test_poll_delays_grow_to_a_cap():
    delays = poll_delays(0.2, 2.0, 1.0)
    assert [next(delays) for _count in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def settings(**changes):
    values = dict(url="https://pve1.lab.example:8006", token_id="automation@pve!nerv", token_secret=SECRET)
    values.update(changes)
    return ProxmoxSettings(**values)


def test_good_settings_pass_and_hide_their_secrets():
    good = settings().check()
    assert SECRET not in repr(good)
    assert good.endpoint() == ("pve1.lab.example", 8006)
    assert settings(url="https://[fd00::2]:9443").endpoint() == ("[fd00::2]", 9443)
    assert settings(url="https://pve1").endpoint() == ("pve1", 8006)
    assert settings(user="root@pam", password="pw", token_id=None, token_secret=None).check().uses_token is False


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"url": ""}, "url is required"),
        ({"url": "http://pve1:8006"}, "https://"),
        ({"url": "https://"}, "https://"),
        ({"url": "https://pve1:99999"}, "https://"),
        ({"url": "https://pve1:8006/somewhere"}, "has a path"),
        ({"token_id": "automation@pve"}, "USER@REALM!TOKENID"),
        ({"token_secret": None}, "PROXMOX_TOKEN_SECRET"),
        ({"token_id": None, "token_secret": None}, "no credentials"),
        ({"token_id": None, "user": "root"}, "USER@REALM"),
        ({"token_id": None, "user": "root@pam"}, "PROXMOX_PASSWORD"),
        ({"ca_path": "/nonexistent/ca.pem"}, "ca_path"),
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(changes, needle):
    with pytest.raises(ProxmoxError) as caught:
        settings(**changes).check()
    assert needle in caught.value.message
    assert SECRET not in caught.value.message


def test_verify_is_the_ca_bundle_when_given(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert settings().verify is True
    assert settings(ca_path=str(ca)).verify == str(ca)
    assert settings(ca_path=str(ca), validate_certs=False).verify is False


SITE = {"proxmox": {"url": "https://pve1:8006", "token_id": "a@pve!b", "token_secret_env": "MY_SECRET"}}


def test_settings_from_site_read_the_secret_from_the_named_variable():
    got = settings_from_site(SITE, environ={"MY_SECRET": SECRET})
    assert (got.url, got.token_id, got.token_secret) == ("https://pve1:8006", "a@pve!b", SECRET)
    assert got.validate_certs is True
    other = settings_from_site(SITE, environ={"MY_SECRET": SECRET}, url="https://other", ca_path=None)
    assert other.url == "https://other"


def test_settings_from_site_read_the_secret_from_the_sops_file_when_the_variable_is_unset():
    sops = {"proxmox": {**SITE["proxmox"], "token_secret_sops": {"file": "secrets/pve.sops.yaml", "key": "a.b"}}}
    asked = []

    def read_secret(file, key):
        asked.append((file, key))
        return SECRET

    assert settings_from_site(sops, environ={}, read_secret=read_secret).token_secret == SECRET
    assert asked == [("secrets/pve.sops.yaml", "a.b")]
    assert settings_from_site(sops, environ={"MY_SECRET": "env"}, read_secret=read_secret).token_secret == "env"
    assert len(asked) == 1, "the variable wins, and the file is not read then"


def test_settings_from_site_name_the_missing_variable():
    with pytest.raises(ProxmoxError, match="set MY_SECRET"):
        settings_from_site(SITE, environ={})
    sops = {"proxmox": {**SITE["proxmox"], "token_secret_sops": {"file": "s.yaml", "key": "k"}}}
    with pytest.raises(ProxmoxError, match=r"set MY_SECRET, or sops-encrypt it into s.yaml \(key k\)"):
        settings_from_site(sops, environ={})
    with pytest.raises(ProxmoxError, match="no proxmox section"):
        settings_from_site({"hosts": []}, environ={})
