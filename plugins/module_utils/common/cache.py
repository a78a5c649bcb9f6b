# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the modules keep their state records and logs when not told: one place, the XDG cache directory."""

from __future__ import annotations

import os


def cache_path(name: str, environ=None) -> str:
    """$XDG_CACHE_HOME/nerv-homelab/<name>, or ~/.cache/nerv-homelab/<name> when XDG_CACHE_HOME is not set."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nerv-homelab", name)


def log_path(given: str | None, name: str) -> str:
    """given, or <name> in the cache directory; its directory made private (0700) when missing."""
    path = given or cache_path(name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    return path
