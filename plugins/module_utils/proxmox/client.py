# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Proxmox VE API client of nerv.homelab: every module and the inventory plugin use it.

    client = ProxmoxClient(ProxmoxSettings(url=..., token_id=..., token_secret=...).check())
    nodes = client.get("/nodes")
    upid = client.post("/nodes/pve1/qemu/100/status/start")
    client.wait_task(upid)                 # OK or 'WARNINGS: n', else ProxmoxError with the log tail

Only ProxmoxError leaves it: modules turn it into fail_json (common/boundary.run_module), controller plugins into
AnsibleError. Connecting is lazy - a client that is never asked anything makes no request, login included.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError, mask
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError, ProxmoxSettings
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.tasks import (
    IDEMPOTENT_METHODS,
    TRANSIENT_STATUSES,
    backoff_delays,
    decode_upid,
    poll_delays,
    task_failure,
    task_warnings,
)

try:
    import requests
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError, ResourceException
except ImportError as exc:  # the module reports it through missing_required_lib
    PROXMOXER_IMPORT_ERROR = exc
else:
    PROXMOXER_IMPORT_ERROR = None

try:
    from requests_toolbelt import MultipartEncoder
except ImportError as exc:  # only upload() needs it, and says so
    MultipartEncoder = None
    TOOLBELT_IMPORT_ERROR = exc
else:
    TOOLBELT_IMPORT_ERROR = None

TASK_TIMEOUT = 600
UPLOAD_TIMEOUT = 3600
UPLOAD_BLOCK = 1024 * 1024
TASK_LOG_LIMIT = 1000


class _Transient(NervError):
    """A failure that did not reach Proxmox's handler (connection trouble, pveproxy 595-599): may be retried."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class ProxmoxClient:
    """A proxmoxer session with retries, ticket renewal, task waiting and counted requests.

    Thread-safe for concurrent requests (map() runs them); sleep and clock are injectable for tests."""

    def __init__(self, settings: ProxmoxSettings, pool_size: int = 10, sleep=time.sleep, clock=time.monotonic):
        if PROXMOXER_IMPORT_ERROR is not None:
            raise ProxmoxError(
                f"the Python library proxmoxer is needed (pip install proxmoxer): {PROXMOXER_IMPORT_ERROR}"
            )
        self.settings = settings.check()
        self.pool_size = max(1, int(pool_size))
        self.requests = 0  # HTTP requests sent, the login included
        self._sleep = sleep
        self._clock = clock
        self._api = None
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, path: str, **params):
        return self.request("GET", path, params)

    def post(self, path: str, **data):
        return self.request("POST", path, data)

    def put(self, path: str, **data):
        return self.request("PUT", path, data)

    def delete(self, path: str, **params):
        return self.request("DELETE", path, params)

    def request(self, method: str, path: str, data=None):
        """The answer's data. GET and PUT are retried with exponential backoff on connection errors and 595-599;
        anything else fails at once."""
        method, data = method.upper(), dict(data or {})
        retries = self.settings.retries if method in IDEMPOTENT_METHODS else 0
        return self._attempts(method, path, retries, lambda api: self._send(api, method, path, dict(data)))

    def upload(self, path: str, fields, file_field: str, file_path: str, filename: str, timeout=UPLOAD_TIMEOUT):
        """POST path as multipart/form-data: the fields first, in the order given ((name, value) pairs or a
        dict), then the file part file_field (named filename, application/octet-stream), streamed from
        file_path with a Content-Length - never read into memory, never chunked. Sent once (a POST); timeout
        bounds the connection (the client's timeout) and then every read and write of the transfer (this one)."""
        if MultipartEncoder is None:
            raise ProxmoxError(
                "the Python library requests-toolbelt is needed to upload files "
                f"(pip install requests-toolbelt): {TOOLBELT_IMPORT_ERROR}"
            )
        pairs = [(str(key), str(value)) for key, value in (fields.items() if isinstance(fields, dict) else fields)]
        return self._attempts(
            "POST", path, 0, lambda api: self._upload_once(api, path, pairs, file_field, file_path, filename, timeout)
        )

    def _attempts(self, method, path, retries, send):
        """send(api), again after each transient failure while retries last (backoff between them), and once more
        after renewing an expired login ticket."""
        delays = backoff_delays(retries, self.settings.backoff)
        for attempt, delay in enumerate([*delays, None]):
            try:
                return self._renewing(method, path, send)
            except _Transient as exc:
                if delay is None:
                    raise self._gave_up(method, path, exc, attempt + 1) from None
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _renewing(self, method, path, send):
        for renewed in (False, True):
            api, generation = self._session()
            try:
                return send(api)
            except ResourceException as exc:
                if exc.status_code == 401 and not self.settings.uses_token and not renewed:
                    self._renew(generation)
                    continue
                raise self._api_error(method, path, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, api, method, path, data):
        self._count()
        resource = api(str(path).strip("/"))
        try:
            if method in ("GET", "DELETE"):
                return resource._request(method, params=data)  # pylint: disable=protected-access
            return resource._request(method, data=data)  # pylint: disable=protected-access
        except ResourceException as exc:
            raise _transient_or(exc) from None
        except requests.exceptions.RequestException as exc:
            raise self._connection_error(exc) from None

    def _upload_once(self, api, path, pairs, file_field, file_path, filename, timeout):
        session = api._store["session"]  # pylint: disable=protected-access
        resource = api(str(path).strip("/"))
        url = resource._store["base_url"]  # pylint: disable=protected-access
        auth = session.auth
        try:
            with open(file_path, "rb") as handle:
                part = (file_field, (filename, handle, "application/octet-stream"))
                encoder = MultipartEncoder(fields=[*pairs, part])
                self._count()
                # requests.Session.request itself: proxmoxer's session would try to copy the encoder as a dict.
                response = requests.Session.request(
                    session,
                    "POST",
                    url,
                    data=_Blocks(encoder),
                    headers={"Content-Type": encoder.content_type},
                    cookies=auth.get_cookies(),
                    verify=auth.verify_ssl,
                    timeout=(self.settings.timeout, timeout),
                )
        except OSError as exc:
            if isinstance(exc, requests.exceptions.RequestException):
                raise self._connection_error(exc) from None
            raise ProxmoxError(f"cannot read {file_path} to upload it: {mask(exc, self.settings.secrets)}") from None
        serializer = api._store["serializer"]  # pylint: disable=protected-access
        if response.status_code >= 400:
            reason, errors = response.reason, serializer.loads_errors(response)
            raise _transient_or(ResourceException(response.status_code, reason, reason, errors=errors))
        return serializer.loads(response)

    def _count(self):
        with self._lock:
            self.requests += 1

    def _session(self):
        """(proxmoxer API, generation), logging in on first use (or after a renewal)."""
        with self._lock:
            if self._api is None:
                self._api = self._connect()
                self._generation += 1
            return self._api, self._generation

    def _renew(self, generation):
        """Forget the session unless another thread already renewed it since this one failed."""
        with self._lock:
            if self._generation == generation:
                self._api = None

    def _connect(self):
        settings = self.settings
        host, port = settings.endpoint()
        common = {"host": host, "port": port, "verify_ssl": _verify(settings), "timeout": settings.timeout}
        if settings.uses_token:
            user, name = settings.token_id.split("!", 1)
            api = ProxmoxAPI(user=user, token_name=name, token_value=settings.token_secret, **common)
        else:
            api = self._login(common)
        self._tune_session(api)
        return api

    def _login(self, common):
        """A ticket login (one request; proxmoxer renews the ticket itself after an hour)."""
        self.requests += 1  # under self._lock, from _session
        try:
            return ProxmoxAPI(user=self.settings.user, password=self.settings.password, **common)
        except AuthenticationError:
            raise ProxmoxError(
                f"Proxmox refused the login of user {self.settings.user} at {self.settings.url}: "
                "check user and password (PROXMOX_USER, PROXMOX_PASSWORD)",
                status=401,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise self._connection_error(exc) from None  # a transient one is retried like any request

    def _tune_session(self, api):
        """One keep-alive connection per worker, so concurrent requests do not re-handshake TLS; and the
        environment read once: requests otherwise re-reads every proxy variable on each request (about a
        millisecond apiece, the largest CPU cost of a request). NO_PROXY and HTTPS_PROXY still apply."""
        session = api._store["session"]  # pylint: disable=protected-access
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_size)
        session.mount("https://", adapter)
        session.proxies.update(requests.utils.get_environ_proxies(self.settings.url))
        session.trust_env = False

    def _connection_error(self, exc):
        """TLS trouble is final (and names the fix); other connection trouble is transient."""
        text = mask(exc, self.settings.secrets)
        if isinstance(exc, requests.exceptions.SSLError):
            return ProxmoxError(
                f"TLS verification of {self.settings.url} failed: {text}. Give the CA bundle as ca_path "
                "(PROXMOX_CA_PATH), or set validate_certs: false to skip verification (not recommended)"
            )
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "connection failed"
            return _Transient(f"{kind} ({text})")
        return ProxmoxError(f"request to {self.settings.url} failed: {text}")

    def _gave_up(self, method, path, exc, attempts):
        tries = "once" if attempts == 1 else f"{attempts} times"
        return ProxmoxError(
            f"Proxmox {method} {path} at {self.settings.url} failed {tries}: {exc.message}", status=exc.status
        )

    def _api_error(self, method, path, exc):
        status, reason = exc.status_code, mask(_reason(exc), self.settings.secrets)
        errors = getattr(exc, "errors", None)
        errors = {k: mask(v, self.settings.secrets) for k, v in errors.items()} if isinstance(errors, dict) else {}
        if status == 401 and self.settings.uses_token:
            message = (
                f"Proxmox rejected API token {self.settings.token_id} at {self.settings.url} (HTTP 401 {reason}): "
                "check token_id and its secret (PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET)"
            )
        else:
            message = f"Proxmox {method} {path}: HTTP {status} {reason}".rstrip()
            if errors:
                message += " - " + "; ".join(f"{key}: {value}" for key, value in sorted(errors.items()))
        return ProxmoxError(message, status=status, errors=errors)

    def wait_task(self, upid, timeout: float = TASK_TIMEOUT) -> dict | None:
        """Poll the task's own node until it stops. Returns {upid, exitstatus, warnings}; a failed task
        raises ProxmoxError with its exit status and the tail of its log. An answer that is no task id (null:
        PVE did it at once) is None."""
        if not (isinstance(upid, str) and upid.startswith("UPID:")):
            return None
        decoded = decode_upid(upid)
        status_path = f"/nodes/{decoded.node}/tasks/{upid}/status"
        deadline = Deadline(timeout, self._clock, self._sleep)
        for delay in poll_delays():
            status = self.get(status_path)
            if status.get("status") == "stopped":
                break
            if not deadline.pause(delay):
                raise ProxmoxError(f"Proxmox task {upid} is still running after {timeout} s", upid=upid)
        exitstatus = status.get("exitstatus")
        warnings = task_warnings(exitstatus)
        if warnings is None:
            lines = self.get(f"/nodes/{decoded.node}/tasks/{upid}/log", start=0, limit=TASK_LOG_LIMIT)
            raise task_failure(decoded, upid, exitstatus, lines)
        return {"upid": upid, "exitstatus": exitstatus, "warnings": warnings}

    def map(self, fn, items, workers: int | None = None) -> list:
        """fn over items, results in order, at most `workers` (default pool_size) at once; the first error wins."""
        items = list(items)
        workers = min(len(items), workers or self.pool_size)
        if workers <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, items))


class _Blocks:
    """A streamed body read in blocks of at least UPLOAD_BLOCK bytes: http.client asks for 8 KiB at a time,
    and each such read and TLS write costs more than the bytes themselves. len gives the Content-Length."""

    def __init__(self, stream, block=UPLOAD_BLOCK):
        self._stream = stream
        self._block = block
        self.len = stream.len

    def read(self, size=-1):
        return self._stream.read(max(size, self._block) if size is not None and size >= 0 else -1)


def _reason(exc):
    return str(getattr(exc, "content", "") or getattr(exc, "status_message", "") or "").strip()


def _transient_or(exc):
    """A ResourceException as it is raised: a _Transient when pveproxy could not reach the node (595-599)."""
    if exc.status_code in TRANSIENT_STATUSES:
        return _Transient(f"HTTP {exc.status_code} {_reason(exc)}", exc.status_code)
    return exc


def _verify(settings):
    """requests' verify, with the CA bundle variables requests itself honours (read once, see _tune_session)."""
    verify = settings.verify
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify
