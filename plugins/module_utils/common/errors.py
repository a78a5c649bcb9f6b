# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error root of the collection: every layer's error is a NervError, so the module boundary
(common/boundary.py) and the controller plugins catch one type.

A NervError has a message and details: the fields a failed module returns beside msg (log_tail, exitstatus, ...).
"""

from __future__ import annotations

# What a secret becomes in any message, log or tail that leaves the collection
MASK = "********"


def mask(text, secrets) -> str:
    """text with every secret replaced by MASK, the longest first (a secret holding another is masked whole): the
    last guard before a message, a log line or a tail leaves."""
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class NervError(Exception):
    """A failure the collection names: message for msg, details (a dict) for the other keys of the failed result."""

    def __init__(self, message: str = "", **details):
        super().__init__(message)
        self.message = message
        self.details = details


class HostError(NervError):
    """A refusal or failure on a host or of an external tool."""


class Unreachable(HostError):
    """The host did not answer at all (refused, no route, timed out), as opposed to refusing us: check mode can
    plan without it (a VM the vms phase has not made yet, a machine not booted yet)."""

    why = "not up yet, or not reachable from here"


class Unpinned(HostError):
    """No key of the host is pinned in known_hosts, so strict SSH cannot log in to it yet: check mode plans without
    it (a VM the vms phase has not made, a host whose key the keys phase has not recorded), without connecting."""

    why = "its key is not pinned yet"
