"""The pure parts of the Proxmox client: UPIDs, task outcomes, backoff and poll delays."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.tasks import (
    backoff_delays,
    decode_upid,
    log_tail,
    poll_delays,
    task_failure,
    task_warnings,
)

UPID = "UPID:pve2:000A1B2C:0047A1F0:6744E5A1:qmstart:101:automation@pve!nerv:"


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
