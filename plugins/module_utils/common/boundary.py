# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place a module's error becomes fail_json: every module's main() ends in run_module(module, work).

Every layer's error is a NervError (common/errors.py); its message becomes msg and its details the other keys of the
failed result (log_tail, exitstatus, upid, problems, ...). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError


def run_module(module, work) -> None:
    """module.exit_json(**work()); a NervError becomes fail_json(msg=its message, **its details)."""
    try:
        result = work()
    except NervError as exc:
        module.fail_json(msg=exc.message or str(exc), **exc.details)
    module.exit_json(**result)
