# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place a module's own error becomes fail_json: message plus the details the error carries."""

from __future__ import annotations


def run_module(module, work, errors: tuple):
    """module.exit_json(**work()); an exception of `errors` becomes fail_json(msg, **its details)."""
    try:
        result = work()
    except errors as exc:
        module.fail_json(msg=str(exc), **getattr(exc, "details", {}))
    module.exit_json(**result)
