"""common/files.write_atomic: the one atomic writer (state records, ISO records, host keys, kubeconfigs)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_is_private_in_a_private_directory_made_for_it(tmp_path):
    path = tmp_path / "state" / "record.json"
    write_atomic(str(path), "{}\n")
    assert path.read_text() == "{}\n" and mode(path) == 0o600 and mode(path.parent) == 0o700


def test_a_file_is_replaced_whole_with_the_mode_asked_for(tmp_path):
    path = tmp_path / "key.pub"
    path.write_text("old and longer\n")
    write_atomic(str(path), b"new\n", mode=0o644)
    assert path.read_bytes() == b"new\n" and mode(path) == 0o644
    assert os.listdir(tmp_path) == ["key.pub"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("kept\n")
    with pytest.raises(TypeError):
        write_atomic(str(path), 12345)
    assert path.read_text() == "kept\n" and os.listdir(tmp_path) == ["record.json"]
