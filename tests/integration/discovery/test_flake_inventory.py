"""nerv.homelab.flake through the real ansible-inventory and Debian's real nix, on a flake without inputs.

A flake without inputs evaluates offline (nixpkgs is not reachable here), so its configurations are attrsets shaped
like what nixpkgs.lib.nixosSystem and nix-darwin return - the plugin reads no more of them than that.
A `nix` wrapper first on PATH records every call and then runs the real nix, so the cache tests can count them.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from .._ansible import AnsibleCli, plain
from .._skips import require_commands

FLAKE = """
{
  outputs = { self }: {
    nixosConfigurations.pi = { config.nixpkgs.hostPlatform.system = "aarch64-linux"; };
    nixosConfigurations.box = {
      config.nixpkgs.hostPlatform.system = "x86_64-linux";
      # what an enabled home service of nixosModules.homeServices declares
      config.nerv.healthChecks = [ "systemctl is-active bind.service" ];
    };
    darwinConfigurations.mac = { config.nixpkgs.hostPlatform.system = "aarch64-darwin"; };
    deploy.nodes.pi = { hostname = "10.77.0.31"; sshUser = "admin"; };
    deploy.nodes.mac = { hostname = "mac.lan"; };
    nerv.tags.pi = [ "edge" "dns" ];
    nerv.tags.box = [ "edge" ];
  };
}
"""


@pytest.fixture
def nix_calls(tmp_path):
    """A recording nix wrapper's bin directory and its log; the wrapper execs the real nix."""
    real = require_commands("nix")["nix"]
    bin_dir, log = tmp_path / "bin", tmp_path / "nix-calls.log"
    bin_dir.mkdir()
    wrapper = bin_dir / "nix"
    # one line per call (the expression spans lines): the subcommand
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir, log


@pytest.fixture
def fleet(tmp_path, nix_calls):
    """A flake directory with a cached flake.yml; returns (dir, cli, log)."""
    directory = tmp_path / "fleet"
    directory.mkdir()
    (directory / "flake.nix").write_text(FLAKE)
    (directory / "flake.yml").write_text(
        textwrap.dedent(f"""\
            plugin: nerv.homelab.flake
            cache: true
            cache_plugin: ansible.builtin.jsonfile
            cache_connection: {tmp_path / "cache"}
            """)
    )
    bin_dir, log = nix_calls
    cli = AnsibleCli(tmp_path, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    return directory, cli, log


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_the_wrapper_records_each_call(nix_calls):
    bin_dir, log = nix_calls
    assert subprocess.run([bin_dir / "nix", "--version"], capture_output=True, check=False).returncode == 0
    assert calls(log) == ["--version"]


def listing_of(cli, directory, name="flake.yml"):
    done = cli.inventory("-i", str(directory / name), "--list")
    assert done.rc == 0, done.describe()
    return plain(json.loads(done.stdout))


def test_list_has_every_host_with_its_vars_and_groups(fleet):
    directory, cli, log = fleet
    listing = listing_of(cli, directory)
    hostvars = listing["_meta"]["hostvars"]
    ref = f"path:{directory}"
    assert hostvars["pi"] == {
        "ansible_host": "10.77.0.31",
        "ansible_user": "admin",
        "nerv_flake": ref,
        "nerv_flake_attr": "nixosConfigurations.pi",
        "nerv_flake_platform": "nixos",
        "nerv_flake_system": "aarch64-linux",
    }
    assert hostvars["box"]["ansible_host"] == "box"
    assert hostvars["box"]["nerv_health_checks"] == ["systemctl is-active bind.service"], "the configuration's own"
    assert "ansible_user" not in hostvars["box"]
    assert (hostvars["mac"]["ansible_host"], hostvars["mac"]["nerv_flake_platform"]) == ("mac.lan", "darwin")

    def members(group):
        return sorted(listing.get(group, {}).get("hosts", []))

    assert members("nixos") == ["box", "pi"]
    assert members("darwin") == ["mac"]
    assert members("system_aarch64_linux") == ["pi"]
    assert members("system_x86_64_linux") == ["box"]
    assert members("system_aarch64_darwin") == ["mac"]
    assert members("tag_edge") == ["box", "pi"]
    assert members("tag_dns") == ["pi"]
    assert len(calls(log)) == 1, "one evaluation for the whole fleet"


def test_graph_lists_the_fleet(fleet):
    directory, cli, _log = fleet
    done = cli.inventory("-i", str(directory / "flake.yml"), "--graph")
    assert done.rc == 0, done.describe()
    lines = [line.strip(" |-") for line in done.stdout.splitlines()]
    for group, hosts in {"@nixos:": ["box", "pi"], "@darwin:": ["mac"], "@tag_dns:": ["pi"]}.items():
        start = lines.index(group)
        assert sorted(lines[start + 1 : start + 1 + len(hosts)]) == hosts, done.stdout


def test_second_run_uses_the_cache_and_a_changed_file_evaluates_again(fleet):
    directory, cli, log = fleet
    listing_of(cli, directory)
    listing_of(cli, directory)
    assert len(calls(log)) == 1, f"no file changed: the cached evaluation serves, yet nix ran: {calls(log)}"
    (directory / "flake.nix").write_text(FLAKE.replace('nerv.tags.box = [ "edge" ];', 'nerv.tags.box = [ "core" ];'))
    listing = listing_of(cli, directory)
    assert len(calls(log)) == 2, "flake.nix changed: a new evaluation"
    assert listing["tag_core"]["hosts"] == ["box"]
    (directory / "flake.lock").write_text('{"nodes": {"root": {}}, "root": "root", "version": 7}\n')
    listing_of(cli, directory)
    assert len(calls(log)) == 3, "flake.lock changed: a new evaluation"


def test_constructed_options_apply(fleet):
    directory, cli, _log = fleet
    (directory / "keyed.flake.yml").write_text(
        "plugin: nerv.homelab.flake\n"
        "keyed_groups:\n  - key: nerv_flake_platform\n    prefix: platform\n"
        "compose:\n  nerv_arch: nerv_flake_system.split('-')[0]\n"
    )
    listing = listing_of(cli, directory, "keyed.flake.yml")
    assert sorted(listing["platform_nixos"]["hosts"]) == ["box", "pi"]
    assert listing["_meta"]["hostvars"]["pi"]["nerv_arch"] == "aarch64"


def test_evaluation_failure_shows_nix_stderr(fleet):
    directory, cli, _log = fleet
    (directory / "flake.nix").write_text(FLAKE.replace("nerv.tags.box", 'nerv.tags.box = throw "broken-canary"; x'))
    done = cli.inventory("-i", str(directory / "flake.yml"), "--list")
    assert "nerv.homelab.flake: option flake: nix eval of" in done.stderr, done.describe()
    assert "broken-canary" in done.stderr, "nix's own error is shown"
    assert '"nixos"' not in done.stdout


def test_a_flake_without_configurations_is_refused(fleet):
    directory, cli, _log = fleet
    (directory / "flake.nix").write_text("{ outputs = { self }: { packages = { }; }; }\n")
    done = cli.inventory("-i", str(directory / "flake.yml"), "--list")
    assert "neither nixosConfigurations nor darwinConfigurations" in done.stderr, done.describe()


def test_missing_nix_and_missing_flake_name_the_option(fleet, tmp_path):
    directory, cli, _log = fleet
    (directory / "nonix.flake.yml").write_text(f"plugin: nerv.homelab.flake\nnix: {tmp_path / 'no-such-nix'}\n")
    done = cli.inventory("-i", str(directory / "nonix.flake.yml"), "--list")
    assert "option nix: command" in done.stderr and "not found on PATH" in done.stderr, done.describe()
    (directory / "elsewhere.flake.yml").write_text("plugin: nerv.homelab.flake\nflake: ../nowhere\n")
    done = cli.inventory("-i", str(directory / "elsewhere.flake.yml"), "--list")
    assert f"option flake: {tmp_path / 'nowhere'} has no flake.nix" in done.stderr, done.describe()
