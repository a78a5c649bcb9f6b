# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file so that a reader never sees half of it: the one atomic writer of the collection."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, data, mode: int = 0o600) -> None:
    """Write data to path atomically (temp file in the same directory, fsync, rename), created with mode; a missing
    directory is made private (0700). The temp file is hidden, so a half-written one is never an inventory source."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".nerv-", dir=directory)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
