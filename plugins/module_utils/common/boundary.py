# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place a module's own error becomes fail_json: message plus the details the error carries.

Every layer has one error type (SiteError, ProxmoxError, NixError, HostError, SopsError, KubeError); each layer
that wraps this for its modules only names its type (proxmox.client.run_module, secrets.sops.module.run_module).
"""

from __future__ import annotations


def error_details(exc: Exception) -> dict:
    """The details an error carries for fail_json (its dict attribute)."""
    details = getattr(exc, "details", None)
    if callable(details):
        details = details()
    return dict(details or {})


def run_module(module, work, errors: tuple):
    """module.exit_json(**work()); an exception of `errors` becomes fail_json(msg, **its details)."""
    try:
        result = work()
    except errors as exc:
        module.fail_json(msg=getattr(exc, "message", None) or str(exc), **error_details(exc))
    module.exit_json(**result)
