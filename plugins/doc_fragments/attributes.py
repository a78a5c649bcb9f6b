# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The attributes every nerv.homelab module shares: full check mode, and it runs on the controller. A module
    adds what check mode and the diff show in its own details, and says diff_mode support none when it has none."""

    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and report what would change, changing nothing.
    support: full
  diff_mode:
    description: Shows what changed, or would change in check mode, when run with C(--diff).
    support: full
  platform:
    description: Runs on the controller, or on another POSIX host that has the requirements and the files it reads.
    support: full
    platforms: posix
"""

    # A module that only reads: check mode runs it as it is, and there is no difference to show.
    READ_ONLY = r"""
attributes:
  check_mode:
    description: Can run in check mode; it only reads, so check mode runs it the same way.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to diff.
    support: none
  platform:
    description: Runs on the controller, or on another POSIX host that has the requirements and the files it reads.
    support: full
    platforms: posix
"""
