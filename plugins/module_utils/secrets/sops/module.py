# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the sops modules share: the identity options, and their boundary (a SopsError becomes fail_json)."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common import boundary
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    SopsError,
    load_identities,
    require_libraries,
)

IDENTITY_OPTIONS = {"identity_files": {"type": "list", "elements": "path", "default": []}}


def identities(params: dict) -> list:
    return load_identities(extra_files=params.get("identity_files") or [])


def run_module(module, work):
    """module.exit_json(**work()) once the crypto libraries are there; a SopsError becomes fail_json."""

    def checked():
        require_libraries()
        return work()

    boundary.run_module(module, checked, (SopsError,))
