"""The layer's Nix toolkit: the flake reference rules, the evaluation's expression and its parsing, nix's messages,
the ssh options nix gets and the flake copy. The expression is also run by the real nix here (an input-less flake),
since a string that looks right is not yet an expression that evaluates."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import Done
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import nix

NEW = "/nix/store/" + "b" * 32 + "-nixos-system-pi-new"
SOURCE = "/nix/store/" + "c" * 32 + "-source"
FLAKE = """{ outputs = { self }: let d = n: derivation { name = n; system = "x86_64-linux"; builder = "/bin/sh"; };
  in {
    nixosConfigurations.pi.config.system.build.toplevel = d "pi";
    nixosConfigurations."odd.name".config.system.build.toplevel = throw "odd is broken";
    darwinConfigurations.mac.system = d "mac";
    homeConfigurations."me@pi".activationPackage = d "home";
  }; }
"""


@pytest.mark.parametrize(
    ("flake", "ref", "local"),
    [
        (".", "path:/srv/inv", "/srv/inv"),
        ("../nix", "path:/srv/nix", "/srv/nix"),
        ("/abs/fleet", "path:/abs/fleet", "/abs/fleet"),
        ("/abs/fleet/", "path:/abs/fleet", "/abs/fleet"),
        ("path:sub", "path:/srv/inv/sub", "/srv/inv/sub"),
        ("path:/abs/fleet", "path:/abs/fleet", "/abs/fleet"),
        ("path:/abs/fleet?narHash=sha256-x", "path:/abs/fleet?narHash=sha256-x", "/abs/fleet"),
        ("github:example/fleet", "github:example/fleet", None),
        ("git+https://example.org/fleet.git", "git+https://example.org/fleet.git", None),
    ],
)
def test_local_directories_become_path_refs_and_remote_refs_stay(flake, ref, local):
    assert nix.flake_ref(flake, "/srv/inv") == ref
    assert nix.local_dir(flake, "/srv/inv") == local


def test_a_relative_directory_is_taken_from_the_current_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert nix.flake_ref("fleet") == f"path:{tmp_path / 'fleet'}"


def test_expression_names_each_entry_quoted_with_its_attribute():
    text = nix.expression("path:/f", [{"name": "pi", "platform": "nixos"}, {"name": "mac", "platform": "darwin"}],
                          ["me@pi"])  # fmt: skip
    assert 'builtins.getFlake (builtins.fromJSON "\\"path:/f\\"")' in text
    assert 'attempt "nixosConfigurations" "pi" (c: c.config.system.build.toplevel)' in text
    assert 'attempt "darwinConfigurations" "mac" (c: c.system)' in text
    assert '"me@pi" = attempt "homeConfigurations" "me@pi" (c: c.activationPackage)' in text
    assert "builtins.tryEval" in text
    single = nix.single("path:/f", "home", "me@pi")
    assert single.rstrip().endswith('pathOf flake.homeConfigurations."me@pi".activationPackage')


def test_nix_strings_cannot_interpolate():
    assert nix.nix_string("a${b}") == '"a\\${b}"'


def test_selection_is_checked_before_nix_runs():
    with pytest.raises(nix.NixError, match=r"hosts\[0\].platform must be one of nixos, darwin"):
        nix.check_selection([{"name": "pi", "platform": "linux"}], [])
    with pytest.raises(nix.NixError, match="not a configuration name"):
        nix.check_selection([{"name": "a b", "platform": "nixos"}], [])
    with pytest.raises(nix.NixError, match="not a homeConfigurations name"):
        nix.check_selection([], ["me pi"])
    nix.check_selection([], ["alice"])  # a home named without its host, as Home Manager allows


def test_outcome_separates_paths_missing_and_failed():
    raw = {"pi": {"missing": False, "ok": True, "path": NEW}, "gone": {"missing": True}}
    raw.update(odd={"missing": False, "ok": False, "path": None}, weird={"missing": False, "ok": True, "path": "x"})
    paths, failures = nix.outcome(raw, lambda n: "nixos", lambda n: f"error: {n} broke")
    assert paths == {"pi": NEW}
    assert failures == {"gone": 'the flake has no nixosConfigurations."gone"', "odd": "error: odd broke",
                        "weird": "nixosConfigurations.weird evaluates to 'x', not a store path"}  # fmt: skip


def test_nix_message_drops_warnings():
    stderr = "warning: Git tree is dirty\nerror: attribute 'x' missing\n       at /f.nix:1\n(use '--show-trace' x)\n"
    assert nix.nix_message(stderr) == "error: attribute 'x' missing\n       at /f.nix:1"


def test_a_missing_nix_names_the_option(tmp_path):
    with pytest.raises(nix.NixError, match="option nix: command .*not-a-nix.* not found on PATH"):
        nix.run_nix(str(tmp_path / "not-a-nix"), ["eval"], "nix eval", 10)


def test_nix_ssh_options_pin_the_host_key():
    options = nix.nix_sshopts(Target("mini1", "10.0.0.31", 2222, "alice", "/k"), "/kh", ("-o", "X=1"))["NIX_SSHOPTS"]
    assert "UserKnownHostsFile=/kh" in options and "StrictHostKeyChecking=yes" in options
    assert options.endswith("-i /k -p 2222 -o X=1") and "alice@" not in options


def test_the_flake_is_copied_over_the_scheme_asked_for(monkeypatch):
    seen = {}

    def run_nix(nix_command, args, what, timeout, env=None):
        seen.update(args=args, env=env)
        return Done(0, json.dumps({"path": SOURCE, "inputs": {}}), "")

    monkeypatch.setattr(nix, "run_nix", run_nix)
    target = Target("mini1", "10.0.0.31", user="alice")
    copied = nix.copy_flake("nix", target, "/kh", "path:/srv/fleet", "ssh", 60)
    assert copied["argv"][-5:] == ["archive", "--json", "--to", "ssh://alice@10.0.0.31", "path:/srv/fleet"]
    assert copied["source"] == SOURCE and "UserKnownHostsFile=/kh" in seen["env"]["NIX_SSHOPTS"]
    monkeypatch.setattr(nix, "run_nix", lambda *a, **k: Done(1, "", "error: cannot connect to 'alice@mini1'"))
    with pytest.raises(HostError, match=r"cannot copy the flake to alice@mini1 \(exit 1\): error: cannot connect"):
        nix.copy_flake("nix", target, "/kh", "path:/srv/fleet", "ssh-ng", 60)


def test_one_entry_that_fails_is_named_with_its_attribute(monkeypatch):
    answers = iter([Done(0, json.dumps({"systems": {}, "homes": {"me@pi": {"missing": True}}}), "")])
    monkeypatch.setattr(nix, "run_nix", lambda *a, **k: next(answers))
    with pytest.raises(nix.NixError) as raised:
        nix.evaluate("nix", "/srv/fleet", [], ["me@pi"])
    assert str(raised.value).startswith('cannot evaluate homeConfigurations."me@pi" of path:/srv/fleet: the flake')
    assert raised.value.details["failures"] == {"home me@pi": 'the flake has no homeConfigurations."me@pi"'}


def test_the_expression_evaluates_with_the_real_nix(tmp_path):
    command = shutil.which("nix")
    if command is None:
        pytest.skip("needs nix (Debian package nix-bin) to evaluate the expression: not found on PATH")
    (tmp_path / "flake.nix").write_text(FLAKE)
    hosts = [{"name": "pi", "platform": "nixos"}, {"name": "odd.name", "platform": "nixos"},
             {"name": "mac", "platform": "darwin"}, {"name": "nope", "platform": "nixos"}]  # fmt: skip
    argv = [command, *nix.NIX_FEATURES, *nix.eval_args(nix.expression(f"path:{tmp_path}", hosts, ["me@pi"]))]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120)
    raw = json.loads(done.stdout)
    assert raw["systems"]["pi"]["ok"] and raw["systems"]["pi"]["path"].endswith("-pi")
    assert raw["systems"]["odd.name"] == {"missing": False, "ok": False, "path": None}
    assert raw["systems"]["nope"] == {"missing": True}
    assert raw["homes"]["me@pi"]["path"].endswith("-home")
