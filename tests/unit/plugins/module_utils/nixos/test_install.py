"""nixos_install's decisions: what the probe's facts mean, and the refusal rules."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common import errors, process, ssh
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import install as ni

TARGET = ssh.Target("mini1", "10.0.0.50")
DISK = "/dev/disk/by-id/nvme-X"


def facts(**values):
    base = {"os_id": "nixos", "variant_id": "installer", "pretty_name": "NixOS", "hostname": "nixos", "mem_kb": 8 << 20}
    return ni.Facts(**{**base, "disk_present": True, **values})


def test_probe_output_is_parsed():
    parsed = ni.parse_facts(
        'os_id=debian\nvariant_id=\npretty_name="Debian GNU/Linux 12"\nhostname=box\nmem_kb=1024\n'
        "disk=missing\nby_id=/dev/disk/by-id/a\nby_id=/dev/disk/by-id/b\nnoise\n"
    )
    assert (parsed.os_id, parsed.pretty_name, parsed.hostname, parsed.mem_kb) == (
        "debian",
        "Debian GNU/Linux 12",
        "box",
        1024,
    )
    assert not parsed.disk_present and parsed.by_id == ["/dev/disk/by-id/a", "/dev/disk/by-id/b"]
    assert not parsed.installer


def test_an_installer_is_installed():
    assert ni.decide(TARGET, facts(), DISK, False, False).action == "install"


def test_this_host_already_installed_is_left_alone_unless_reinstall():
    installed = facts(variant_id="", hostname="mini1")
    assert ni.decide(TARGET, installed, DISK, False, True).action == "installed"
    assert ni.decide(TARGET, installed, DISK, True, True).action == "install"


def test_the_same_name_without_the_pinned_key_is_not_this_host():
    with pytest.raises(errors.HostError, match="runs an installed NixOS"):
        ni.decide(TARGET, facts(variant_id="", hostname="mini1"), DISK, False, False)


def test_low_memory_warns_when_kexec_is_needed_only():
    debian = facts(os_id="debian", variant_id="", mem_kb=1 << 20)
    assert "1.5 GiB" in ni.decide(TARGET, debian, DISK, True, False).warnings[0]
    assert ni.decide(TARGET, facts(mem_kb=1 << 20), DISK, False, False).warnings == []


def test_a_missing_disk_lists_the_disks_there():
    with pytest.raises(errors.HostError, match="its disks by id: /dev/disk/by-id/other"):
        ni.decide(TARGET, facts(disk_present=False, by_id=["/dev/disk/by-id/other"]), DISK, False, False)


def test_argv_holds_paths_and_the_chosen_phases_only():
    options = {
        "nixos_anywhere": "nixos-anywhere",
        "flake": "/f",
        "phases": ["disko", "install"],
        "extra_files": "/t",
        "hardware_config": "/f/hw.nix",
        "extra_args": ["--build-on-remote"],
    }
    argv = ni.argv_for(options, ssh.Target("mini1", "10.0.0.50", identity_file="/k"))
    assert argv[argv.index("--phases") + 1] == "disko,install"
    assert argv[argv.index("--generate-hardware-config") + 1 : argv.index("--generate-hardware-config") + 3] == [
        "nixos-generate-config",
        "/f/hw.nix",
    ]
    assert argv[-1] == "--build-on-remote" and "-i" in argv and argv[argv.index("-i") + 1] == "/k"


def test_steps_are_collected_from_the_output(tmp_path):
    script = tmp_path / "na"
    script.write_text("#!/bin/sh\necho '### One ###'\necho noise\necho '### Two ###'\nexit 3\n")
    script.chmod(0o755)
    run = process.run_logged([str(script)], str(tmp_path / "log"), timeout=30)
    assert (run.rc, run.steps, run.tail[-1]) == (3, ["One", "Two"], "### Two ###")
    assert (tmp_path / "log").stat().st_mode & 0o777 == 0o600
