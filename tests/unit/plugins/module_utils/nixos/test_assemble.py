"""nixos/assemble.py: a site's flake directory in one pass, written only where it differs."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.assemble import run


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "nix"
    (root / "lib").mkdir(parents=True)
    (root / "secrets").mkdir()
    (root / "flake.nix").write_text("{ }\n")
    (root / "lib" / "default.nix").write_text("{ }\n")
    (root / "hosts.json").write_text('{"example": true}\n')
    (root / "secrets" / "README.md").write_text("notes\n")
    (root / ".hidden").write_text("x\n")
    return root


def params(src, dest, **extra):
    return {"src": str(src), "dest": str(dest), "exclude": ["hosts.json", "secrets"], "files": {}, "copy": [], **extra}


def test_first_run_writes_the_tree_and_the_sites_files_then_nothing(src, tmp_path):
    dest, token = tmp_path / "flake", tmp_path / "k3s.sops.yaml"
    token.write_text("sops: encrypted\n")
    p = params(
        src, dest, files={"hosts.json": '{"hosts": []}\n'}, copy=[{"src": str(token), "dest": "secrets/k3s.sops.yaml"}]
    )
    first = run(p, check_mode=False)
    assert first["changed"] and first["written"] == [
        "flake.nix",
        "hosts.json",
        "lib/default.nix",
        "secrets/k3s.sops.yaml",
    ]
    assert (dest / "hosts.json").read_text() == '{"hosts": []}\n', "the site's hosts, not the flake's example"
    assert not (dest / ".hidden").exists() and not (dest / "secrets" / "README.md").exists()
    assert stat.S_IMODE(os.stat(dest / "secrets" / "k3s.sops.yaml").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest / "flake.nix").st_mode) == 0o644
    again = run(p, check_mode=False)
    assert not again["changed"] and again["written"] == [] and again["removed"] == []


def test_a_changed_file_is_written_and_a_dropped_one_removed_check_mode_only_says_so(src, tmp_path):
    dest = tmp_path / "flake"
    run(params(src, dest), check_mode=False)
    (dest / "result").write_text("a build link stays\n")
    (src / "lib" / "default.nix").write_text("{ changed = true; }\n")
    (src / "lib" / "old.nix").write_text("{ }\n")
    run(params(src, dest), check_mode=False)
    (src / "lib" / "old.nix").unlink()
    planned = run(params(src, dest), check_mode=True)
    assert planned["changed"] and planned["removed"] == ["lib/old.nix"] and (dest / "lib" / "old.nix").exists()
    done = run(params(src, dest), check_mode=False)
    assert done["removed"] == ["lib/old.nix"] and not (dest / "lib" / "old.nix").exists()
    assert (dest / "result").exists() and (dest / "lib" / "default.nix").read_text() == "{ changed = true; }\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"files": {"../escape.json": "{}"}}, "files: '../escape.json' must be a path inside dest"),
        ({"files": {"/etc/x": "{}"}}, "files: '/etc/x' must be a path inside dest"),
        ({"copy": [{"src": "/nonexistent/k3s.sops.yaml", "dest": "secrets/k3s.sops.yaml"}]}, "does not exist"),
        ({"dest": "relative/flake"}, "dest: 'relative/flake' is relative"),
        ({"src": "/nonexistent/nix"}, "src: /nonexistent/nix is not a directory"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(src, tmp_path, extra, message):
    dest = tmp_path / "flake"
    with pytest.raises(HostError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run({**params(src, dest), **extra}, check_mode=False)
    assert not dest.exists()
