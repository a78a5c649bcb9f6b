# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting with a deadline: the one way every poll loop of the collection (Proxmox tasks, locks and guest agents,
installer VMs, SSH coming back, Kubernetes nodes and Flux objects) measures and spends its time.

The clock and the sleep are parameters so that unit tests can run a wait of minutes in no time.
"""

from __future__ import annotations

import time


class Deadline:
    """A moment `seconds` from now."""

    def __init__(self, seconds: float, clock=time.monotonic, sleep=time.sleep):
        self._clock, self._sleep = clock, sleep
        self._end = clock() + seconds

    def left(self) -> float:
        """Seconds until the deadline; 0 or less once it has passed."""
        return self._end - self._clock()

    @property
    def passed(self) -> bool:
        return self.left() <= 0

    def pause(self, delay: float) -> bool:
        """Sleep `delay` seconds but never past the deadline; False, without sleeping, once it has passed."""
        left = self.left()
        if left <= 0:
            return False
        self._sleep(min(delay, left))
        return True
