# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checksums of files too big for memory (ISOs are gigabytes)."""

from __future__ import annotations

import hashlib

CHUNK = 1024 * 1024


def sha256_file(path: str, chunk: int = CHUNK) -> str:
    """The sha256 hex digest of a file, read chunk by chunk: memory stays at one chunk whatever the size."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
