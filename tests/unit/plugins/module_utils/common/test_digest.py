"""sha256 of files too big for memory: read chunk by chunk, never whole."""

from __future__ import annotations

import hashlib
import io

from ansible_collections.nerv.homelab.plugins.module_utils.common import digest


class CountingFile(io.FileIO):
    reads: list = []

    def read(self, size=-1):
        CountingFile.reads.append(size)
        return super().read(size)


def test_the_checksum_is_computed_chunk_by_chunk(tmp_path, monkeypatch):
    data = bytes(range(256)) * 4099
    path = tmp_path / "big.iso"
    path.write_bytes(data)
    CountingFile.reads = []
    monkeypatch.setattr(digest, "open", CountingFile, raising=False)
    assert digest.sha256_file(str(path), chunk=4096) == hashlib.sha256(data).hexdigest()
    assert CountingFile.reads and set(CountingFile.reads) == {4096}, "read in whole at some point"
    assert len(CountingFile.reads) == len(data) // 4096 + 2  # full chunks, the rest, the empty end


def test_an_empty_file_has_the_empty_digest(tmp_path):
    path = tmp_path / "empty.iso"
    path.write_bytes(b"")
    assert digest.sha256_file(str(path)) == hashlib.sha256(b"").hexdigest()
