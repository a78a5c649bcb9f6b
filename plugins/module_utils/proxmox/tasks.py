# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure pieces of the Proxmox client: the one error type, UPIDs, task outcomes, backoff, settings checks.

Nothing here opens a connection, so all of it is unit-tested with plain values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError

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
_TOKEN_ID = re.compile(r"^[^@!\s]+@[^@!\s]+![A-Za-z][A-Za-z0-9._-]*$")
_USER = re.compile(r"^[^@!\s]+@[^@!\s]+$")


class ProxmoxError(NervError):
    """Everything that goes wrong talking to Proxmox: modules turn it into fail_json, plugins into AnsibleError.

    status: the HTTP status, when there was an answer; exitstatus/log_tail/upid: a failed task's. details (what a
    module returns beside msg) holds only the fields that are set."""

    def __init__(self, message, status=None, exitstatus=None, log_tail=(), upid=None, errors=None):
        found = {"http_status": status, "exitstatus": exitstatus, "log_tail": list(log_tail) or None, "upid": upid,
                 "errors": dict(errors or {}) or None}  # fmt: skip
        super().__init__(message, **{key: value for key, value in found.items() if value is not None})
        self.status = status
        self.exitstatus = exitstatus
        self.log_tail = list(log_tail)
        self.upid = upid
        self.errors = dict(errors or {})


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


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class ProxmoxSettings:
    """How to reach one Proxmox API. Secrets are left out of repr()."""

    url: str
    token_id: str | None = None
    token_secret: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    validate_certs: bool = True
    ca_path: str | None = None
    timeout: float = 30
    retries: int = 4
    backoff: float = 0.5

    @property
    def secrets(self) -> tuple:
        return tuple(s for s in (self.token_secret, self.password) if s)

    @property
    def uses_token(self) -> bool:
        return bool(self.token_id)

    @property
    def verify(self):
        """requests' verify: the CA bundle when one is given, else the switch."""
        return (self.ca_path or True) if self.validate_certs else False

    def endpoint(self) -> tuple:
        """(host, port) for proxmoxer: IPv6 literals in brackets, 8006 when the URL names no port."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        return (f"[{host}]" if ":" in host else host), (parts.port or 8006)

    def check(self) -> ProxmoxSettings:
        """self, or a ProxmoxError naming the first bad field and how to fix it (nothing is contacted)."""
        for problem in (_url_problem(self.url), _auth_problem(self), _tls_problem(self), _limits_problem(self)):
            if problem:
                raise ProxmoxError(problem)
        return self


def _url_problem(url):
    try:
        parts = urlsplit(str(url or ""))
        _port = parts.port  # raises ValueError on a bad port
    except ValueError:
        parts = None
    if not url:
        return "url is required: give the API URL, e.g. https://pve1.lab.example:8006 (or set PROXMOX_URL)"
    if parts is None or parts.scheme != "https" or not parts.hostname:
        return f"url {url!r} is not an https:// URL with a host: use e.g. https://pve1.lab.example:8006"
    if parts.path.strip("/") not in ("", "api2/json"):
        return f"url {url!r} has a path: give only scheme, host and port, e.g. https://pve1.lab.example:8006"
    return None


def _auth_problem(settings):
    if settings.token_id:
        if not _TOKEN_ID.match(settings.token_id):
            return f"token_id {settings.token_id!r} is not USER@REALM!TOKENID: write it like automation@pve!nerv"
        if not settings.token_secret:
            return (
                f"token_secret is missing for token_id {settings.token_id}: set PROXMOX_TOKEN_SECRET "
                "(or the variable the site names in proxmox.token_secret_env)"
            )
        return None
    if settings.user:
        if not _USER.fullmatch(settings.user):
            return f"user {settings.user!r} is not USER@REALM: write it like root@pam"
        if not settings.password:
            return f"password is missing for user {settings.user}: set PROXMOX_PASSWORD, or use an API token"
        return None
    return "no credentials: give token_id and token_secret (preferred; PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET), " + (
        "or user and password (PROXMOX_USER, PROXMOX_PASSWORD)"
    )


def _tls_problem(settings):
    if settings.ca_path and not os.path.isfile(settings.ca_path):
        return f"ca_path {settings.ca_path!r} is not a readable file: give the PEM bundle of the API's CA"
    return None


def _limits_problem(settings):
    if not settings.timeout or settings.timeout <= 0:
        return f"timeout must be a positive number of seconds, not {settings.timeout!r}"
    if settings.retries is None or settings.retries < 0:
        return f"retries must be 0 or more, not {settings.retries!r}"
    return None


def settings_from_site(site: dict, environ=None, read_secret=None, **overrides) -> ProxmoxSettings:
    """The settings of a (normalised) site's proxmox section; the token secret from the environment variable
    it names, else from its sops file (read_secret(file, key) reads one, file relative to the site's directory).
    overrides (not None) win: they are what the user gave explicitly."""
    environ = os.environ if environ is None else environ
    proxmox = (site or {}).get("proxmox")
    if not proxmox:
        raise ProxmoxError("the site has no proxmox section: add one (docs/site.md) or give url and token_id")
    variable = proxmox.get("token_secret_env") or "PROXMOX_TOKEN_SECRET"
    values = {
        "url": proxmox.get("url"),
        "token_id": proxmox.get("token_id"),
        "token_secret": environ.get(variable) or None,
        "validate_certs": proxmox.get("validate_certs", True),
        "ca_path": proxmox.get("ca_path"),
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    sops = proxmox.get("token_secret_sops")
    if values["token_id"] and not values["token_secret"] and sops and read_secret:
        values["token_secret"] = read_secret(sops["file"], sops["key"]) or None
    if values["token_id"] and not values["token_secret"] and not values.get("password"):
        where = f", or sops-encrypt it into {sops['file']} (key {sops['key']})" if sops else ""
        raise ProxmoxError(f"token_secret is missing for token_id {values['token_id']}: set {variable}{where}")
    return ProxmoxSettings(**values)
