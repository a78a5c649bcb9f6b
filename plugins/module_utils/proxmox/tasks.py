# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure pieces of the Proxmox client: UPIDs, task outcomes, which requests may go again, backoff and poll delays.

Nothing here opens a connection, so all of it is unit-tested with plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError

# pveproxy answers 595-599 when it cannot reach the node it proxies to (connection refused, timed out,
# ...): the request never ran there, so a GET or PUT may safely go again.
TRANSIENT_STATUSES = frozenset(range(595, 600))
# HTTP methods that may be repeated without asking: the same request twice leaves the same state.
IDEMPOTENT_METHODS = frozenset({"GET", "PUT"})
LOG_TAIL_LINES = 20

_UPID = re.compile(
    r"^UPID:(?P<node>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,9}):"
    r"(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)
_WARNINGS = re.compile(r"^WARNINGS: (\d+)$")


@dataclass(frozen=True)
class Upid:
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str


def decode_upid(upid) -> Upid:
    """The fields of a UPID (UPID:node:pid:pstart:starttime:type:id:user:), hex numbers decoded."""
    match = _UPID.match(str(upid or ""))
    if not match:
        raise ProxmoxError(f"not a Proxmox task id (UPID:node:pid:pstart:starttime:type:id:user:): {upid!r}")
    parts = match.groupdict()
    for key in ("pid", "pstart", "starttime"):
        parts[key] = int(parts[key], 16)
    return Upid(**parts)


def task_warnings(exitstatus):
    """0 for 'OK', n for 'WARNINGS: n' (both a success), None for anything else (a failure)."""
    if exitstatus == "OK":
        return 0
    match = _WARNINGS.match(str(exitstatus or ""))
    return int(match.group(1)) if match else None


def log_tail(lines, count: int = LOG_TAIL_LINES) -> list:
    """The last count lines' text of a task log answer ([{n, t}, ...]), in order."""
    ordered = sorted((line for line in lines or [] if isinstance(line, dict)), key=lambda line: line.get("n", 0))
    return [str(line.get("t", "")) for line in ordered][-count:]


def task_failure(upid: Upid, raw_upid: str, exitstatus, lines) -> ProxmoxError:
    tail = log_tail(lines)
    what = f"{upid.type} {upid.id}".strip()
    message = f"Proxmox task {what} on node {upid.node} failed: {exitstatus or 'no exit status'}"
    if tail:
        message += " (log tail: " + " | ".join(tail[-3:]) + ")"
    return ProxmoxError(message, exitstatus=exitstatus, log_tail=tail, upid=raw_upid)


def backoff_delays(retries: int, base: float, cap: float = 30.0) -> list:
    """Seconds to wait before each retry: base, 2*base, 4*base, ... capped."""
    return [min(cap, base * (2**attempt)) for attempt in range(max(0, retries))]


def poll_delays(initial: float = 0.2, factor: float = 1.5, cap: float = 2.0):
    """Endless growing poll intervals for a task: quick for short tasks, gentle for long ones."""
    delay = initial
    while True:
        yield delay
        delay = min(cap, delay * factor)
