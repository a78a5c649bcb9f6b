# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How long and how often a module that waits for Ready looks (kube.WAIT_OPTIONS and kube.PROGRESS_OPTIONS)."""

    DOCUMENTATION = r"""
options:
  timeout:
    description: Seconds to wait for all to be Ready; the task fails when they are over.
    type: int
    default: 600
  interval:
    description: Seconds between polls.
    type: float
    default: 5
"""

    # A wait that hands back part-way, so that a repeated task prints how far the wait got.
    PROGRESS = r"""
options:
  return_after:
    description:
      - Seconds after which a call hands back while what it waits for is not all Ready yet, with RV(ready=false) and
        a RV(progress) line, instead of waiting on; 0 waits in one call until all is Ready or O(timeout) is over.
      - For a task that repeats the call with C(until) until RV(ready) (or a failure), so that each try prints how far
        the wait got (the stdout callback nerv.homelab.progress prints RV(progress)); see O(started).
    type: int
    default: 0
  started:
    description:
      - When the wait began, in seconds since the epoch; O(timeout) counts from there. Omitted, from the start of this
        call.
      - A task that repeats the call passes C("{{ now().timestamp() }}"), which Ansible templates once for all
        the tries of a task, so that the tries share one deadline and the last one fails as a single call would.
    type: float
"""
