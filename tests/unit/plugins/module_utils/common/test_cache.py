"""cache_path: the one place modules keep state and logs by default."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import cache_path, log_path


def test_the_xdg_cache_directory_comes_first_then_the_home_cache():
    assert cache_path("a/b.log", {"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == "/x/nerv-homelab/a/b.log"
    assert cache_path("a/b.log", {"HOME": "/h"}) == "/h/.cache/nerv-homelab/a/b.log"


def test_a_default_log_lands_in_a_private_directory_of_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = log_path(None, "nixos_install/mini1.log")
    assert path == f"{tmp_path}/cache/nerv-homelab/nixos_install/mini1.log"
    assert (tmp_path / "cache" / "nerv-homelab" / "nixos_install").stat().st_mode & 0o777 == 0o700
    assert log_path(str(tmp_path / "given.log"), "ignored") == str(tmp_path / "given.log")
