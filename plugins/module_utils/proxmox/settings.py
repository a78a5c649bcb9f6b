# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How to reach a Proxmox API: the settings, their checks, where they come from (module options, a site file), and
ProxmoxError, the one error of the Proxmox layer.

Nothing here opens a connection, so all of it is unit-tested with plain values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError

_TOKEN_ID = re.compile(r"^[^@!\s]+@[^@!\s]+![A-Za-z][A-Za-z0-9._-]*$")
_USER = re.compile(r"^[^@!\s]+@[^@!\s]+$")


class ProxmoxError(NervError):
    """Everything that goes wrong talking to Proxmox: modules turn it into fail_json, plugins into AnsibleError.

    status: the HTTP status, when there was an answer; exitstatus/log_tail/upid: a failed task's. details (what a
    module returns beside msg) holds only the fields that are set."""

    def __init__(self, message, status=None, exitstatus=None, log_tail=(), upid=None, errors=None):
        self.status, self.exitstatus, self.log_tail, self.upid = status, exitstatus, list(log_tail), upid
        self.errors = dict(errors or {})
        found = {"http_status": status, "exitstatus": exitstatus, "log_tail": self.log_tail, "upid": upid,
                 "errors": self.errors}  # fmt: skip
        super().__init__(message, **{key: value for key, value in found.items() if value not in (None, [], {})})


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


def proxmox_argument_spec() -> dict:
    """The connection options every Proxmox module takes (doc fragment nerv.homelab.proxmox_auth)."""
    return {
        "url": {"type": "str", "fallback": (env_fallback, ["PROXMOX_URL"])},
        "token_id": {"type": "str", "fallback": (env_fallback, ["PROXMOX_TOKEN_ID"])},
        "token_secret": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PROXMOX_TOKEN_SECRET"])},
        "user": {"type": "str", "fallback": (env_fallback, ["PROXMOX_USER"])},
        "password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PROXMOX_PASSWORD"])},
        "validate_certs": {"type": "bool", "default": True, "fallback": (env_fallback, ["PROXMOX_VALIDATE_CERTS"])},
        "ca_path": {"type": "path", "fallback": (env_fallback, ["PROXMOX_CA_PATH"])},
        "timeout": {"type": "int", "default": 30, "fallback": (env_fallback, ["PROXMOX_TIMEOUT"])},
        "retries": {"type": "int", "default": 4, "fallback": (env_fallback, ["PROXMOX_RETRIES"])},
    }


def settings_from_params(params: dict) -> ProxmoxSettings:
    """The settings of the connection options a module or the inventory plugin was given (None: not given)."""
    values = {key: params.get(key) for key in proxmox_argument_spec() if params.get(key) is not None}
    return ProxmoxSettings(**{"url": "", **values})
