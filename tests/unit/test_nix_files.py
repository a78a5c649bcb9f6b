"""The NixOS flake in nix/: every file parses, and the pure parts evaluate offline with the expected content.

nixpkgs cannot be fetched here, so nothing builds a NixOS system. What these tests do evaluate, with Nix itself:
the builtins-only library (nix/lib: site data checks, the disk layout, the install script text), the flake's
wiring (its `outputs` function with a stub `nixpkgs.lib.nixosSystem` that returns its arguments), and the two
NixOS modules as plain functions with stub arguments: that reads each module's own definitions, it does not run
the NixOS module system or check option names against nixpkgs. The install script also runs under bash against
stub commands (a PATH holding only stubs and harmless tools), so its guard is exercised, not only read.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess

import pytest
from nix_helpers import NIX_DIR, REPO, nix_eval, nix_eval_error, nix_string, run_nix

from ansible_collections.nerv.homelab.plugins.module_utils.site import formats as site_formats

TOPLEVEL = "/nix/store/00000000000000000000000000000000-nixos-system-nixos-base-25.05"
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIONiBCZ3Gzwswu2P4FaiIFyItRg6xHsj8zkpWv6CysAa example-admin-replace-me"
DESTRUCTIVE = (
    "wipefs",
    "sgdisk",
    "parted",
    "mkfs.fat",
    "mkfs.ext4",
    "pvcreate",
    "vgcreate",
    "lvcreate",
    "nixos-install",
)
DESTRUCTIVE_TEXT = re.compile(
    r"^\s*(wipefs -a|sgdisk --zap-all|parted\b.*mklabel|mkfs\.|pvcreate|vgcreate|lvcreate|nixos-install)", re.M
)

# Minimal stand-ins for the nixpkgs lib functions the modules call. mkOverride/mkIf build the same tagged
# attribute sets nixpkgs' lib.mkOverride/lib.mkIf build, so the evaluated definitions look as the module
# system would receive them.
STUB_ARGS = f"""
let
  lib = rec {{
    mkOverride = priority: content: {{ _type = "override"; inherit priority content; }};
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    mkIf = condition: content: {{ _type = "if"; inherit condition content; }};
    getBin = p: p;
  }};
  nerv = import ./nix/lib;
  site = nerv.site (builtins.fromJSON (builtins.readFile ./nix/site.json));
  layout = nerv.partitions;
  pkgs = {{
    util-linux = "util-linux"; gptfdisk = "gptfdisk"; lvm2 = "lvm2"; dosfstools = "dosfstools";
    e2fsprogs = "e2fsprogs"; coreutils = "coreutils"; gnugrep = "gnugrep"; cloud-utils = "cloud-utils";
    gawk = "gawk"; gnused = "gnused";
  }};
  config = {{ system.build.nixos-install = "nixos-install"; nix.package = "nix"; systemd.package = "systemd"; }};
  baseSystem.config = {{ system.build.toplevel = "{TOPLEVEL}"; boot.loader.grub.device = site.disk; }};
in {{ inherit lib site layout pkgs config baseSystem; modulesPath = "/stub/nixos/modules"; }}
"""


# ---------------------------------------------------------------------------------------------------- parse


def test_the_flake_has_its_files():
    names = {p.relative_to(NIX_DIR).as_posix() for p in NIX_DIR.rglob("*") if p.is_file()}
    expected = {
        "flake.nix",
        "site.json",
        "lib/default.nix",
        "lib/site.nix",
        "lib/ssh-keys.nix",
        "lib/partitions.nix",
        "lib/install-script.nix",
        "modules/base.nix",
        "modules/installer.nix",
        "modules/growroot.nix",
    }
    assert expected <= names, f"missing from nix/: {sorted(expected - names)}"


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in NIX_DIR.rglob("*.nix")))
def test_every_nix_file_parses(nix_instantiate, path):
    proc = run_nix(nix_instantiate, "--parse", path)
    assert proc.returncode == 0, f"{path} does not parse:\n{proc.stderr}"


# ---------------------------------------------------------------------------------------------------- flake


def test_flake_inputs_are_nixpkgs_disko_and_sops_nix(nix_instantiate):
    inputs = nix_eval(nix_instantiate, "(import ./nix/flake.nix).inputs")
    assert set(inputs) == {"nixpkgs", "disko", "sops-nix"}
    assert re.fullmatch(r"github:NixOS/nixpkgs/nixos-\d\d\.\d\d", inputs["nixpkgs"]["url"]), inputs
    # One nixpkgs for everything: disko and sops-nix follow the flake's pin.
    follows = {"nixpkgs": {"follows": "nixpkgs"}}
    assert inputs["disko"] == {"url": "github:nix-community/disko", "inputs": follows}
    assert inputs["sops-nix"] == {"url": "github:Mic92/sops-nix", "inputs": follows}


def test_flake_wires_both_configurations(nix_instantiate):
    expr = """
    let
      flake = import ./nix/flake.nix;
      self = flake.outputs {
        inherit self; nixpkgs = { lib.nixosSystem = args: args; }; disko = { }; sops-nix = { };
      };
      describe = c: {
        files = map baseNameOf (builtins.filter builtins.isPath c.modules);
        inline = builtins.filter (m: !(builtins.isPath m)) c.modules;
        special = builtins.attrNames c.specialArgs;
        site = c.specialArgs.site;
      };
      cfgs = self.nixosConfigurations;
    in {
      base = describe cfgs.base;
      installer = describe cfgs.installer;
      installerGetsBase = cfgs.installer.specialArgs.baseSystem == cfgs.base;
      outputs = builtins.attrNames self;
      packages = builtins.attrNames self.packages.x86_64-linux;
    }
    """
    out = nix_eval(nix_instantiate, expr)
    assert out["base"]["files"] == ["base.nix"]
    assert out["installer"]["files"] == ["installer.nix"]
    assert out["base"]["inline"] == out["installer"]["inline"] == [{"nixpkgs": {"hostPlatform": "x86_64-linux"}}]
    assert out["base"]["special"] == ["layout", "site"]
    assert out["installer"]["special"] == ["baseSystem", "layout", "site"]
    assert out["installerGetsBase"] is True
    assert out["base"]["site"]["adminSshKeys"] == [GOOD_KEY]
    assert {"nixosConfigurations", "nixosModules", "packages", "lib"} <= set(out["outputs"])
    assert set(out["packages"]) == {"iso", "base", "default"}


def test_flake_iso_package_is_the_installer_iso_image():
    text = (NIX_DIR / "flake.nix").read_text()
    assert "iso = self.nixosConfigurations.installer.config.system.build.isoImage;" in text
    assert "builtins.fromJSON (builtins.readFile ./site.json)" in text


# ---------------------------------------------------------------------------------------------------- site data


def test_example_site_evaluates(nix_instantiate):
    site = nix_eval(
        nix_instantiate, "import ./nix/lib/site.nix (builtins.fromJSON (builtins.readFile ./nix/site.json))"
    )
    assert site == {
        "hostname": "nixos-base",
        "disk": "/dev/sda",
        "diskExplicit": True,
        "adminSshKeys": [GOOD_KEY],
        "nfs": None,
    }
    raw = json.loads((NIX_DIR / "site.json").read_text())
    for key in raw["admin_ssh_keys"]:
        assert site_formats.check_ssh_public_key(key) is None, "the Python site validator must accept the example"


def test_site_defaults_disk_and_says_it_was_not_named(nix_instantiate):
    site = nix_eval(nix_instantiate, f"import ./nix/lib/site.nix {{ admin_ssh_keys = [ {nix_string(GOOD_KEY)} ]; }}")
    assert site == {
        "hostname": "nixos-base",
        "disk": "/dev/sda",
        "diskExplicit": False,
        "adminSshKeys": [GOOD_KEY],
        "nfs": None,
    }


ED_BODY = GOOD_KEY.split()[1]
RSA_LABEL_ED_BODY = f"ssh-rsa {ED_BODY} me@x"


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ({"hostname": "t"}, "admin_ssh_keys is missing"),
        ({"admin_ssh_keys": []}, "admin_ssh_keys is empty"),
        ({"admin_ssh_keys": GOOD_KEY}, "admin_ssh_keys must be a list"),
        ({"admin_ssh_keys": ["AAAAC3NzaC1lZDI1NTE5"]}, "admin_ssh_keys[0] is not an SSH public key line"),
        ({"admin_ssh_keys": [GOOD_KEY, "ssh-dss AAAAB3NzaC1kc3M= x"]}, "admin_ssh_keys[1] has key type 'ssh-dss'"),
        ({"admin_ssh_keys": [RSA_LABEL_ED_BODY]}, "admin_ssh_keys[0] has a key body that is not a ssh-rsa key"),
        ({"admin_ssh_keys": ["ssh-ed25519 AAAA$$$$ x"]}, "admin_ssh_keys[0] has a key body that is not valid base64"),
        ({"admin_ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA x"]}, "expected 68"),
        ({"admin_ssh_keys": [GOOD_KEY + "\n" + GOOD_KEY]}, "spans more than one line"),
        ({"admin_ssh_keys": [GOOD_KEY], "hostname": "Bad_Name"}, "hostname must be a DNS label"),
        ({"admin_ssh_keys": [GOOD_KEY], "disk": "sda"}, "disk must be a block device path"),
        ({"admin_ssh_keys": [GOOD_KEY], "disk": "/dev/sda; rm -rf /"}, "disk must be a block device path"),
        ({"admin_ssh_keys": [GOOD_KEY], "disks": "/dev/sda"}, "unknown key 'disks'"),
    ],
)
def test_bad_site_data_fails_with_a_clear_message(nix_instantiate, tmp_path, site, message):
    path = tmp_path / "site.json"
    path.write_text(json.dumps(site))
    err = nix_eval_error(
        nix_instantiate, f"import ./nix/lib/site.nix (builtins.fromJSON (builtins.readFile {nix_string(str(path))}))"
    )
    assert "site.json: " in err
    assert message in err


def test_bad_site_json_stops_the_flake(nix_instantiate, tmp_path):
    """The flake reads site.json through the checks: a bad key fails evaluation of any configuration."""
    flake = tmp_path / "nix"
    shutil.copytree(NIX_DIR, flake, symlinks=True, ignore=shutil.ignore_patterns("result*"))
    (flake / "site.json").write_text(json.dumps({"admin_ssh_keys": ["ssh-ed25519 nope"]}))
    expr = f"""
    let self = (import {nix_string(str(flake / "flake.nix"))}).outputs
      {{ inherit self; nixpkgs = {{ lib.nixosSystem = args: args; }}; disko = {{ }}; sops-nix = {{ }}; }};
    in self.nixosConfigurations.base.specialArgs.site
    """
    assert "site.json: admin_ssh_keys[0]" in nix_eval_error(nix_instantiate, expr)


def test_key_prefixes_agree_with_the_python_site_validator(nix_instantiate):
    """The Nix table of base64 prefixes is what each key type's blob really starts with, for every Python type."""
    prefixes = nix_eval(nix_instantiate, "(import ./nix/lib/ssh-keys.nix).prefixes")
    assert set(prefixes) == set(site_formats.SSH_KEY_TYPES)
    for key_type, prefix in prefixes.items():
        head = struct.pack(">I", len(key_type)) + key_type.encode()
        decided = len(head) * 8 // 6
        assert prefix == base64.b64encode(head + b"\0\0\0")[:decided].decode(), key_type


@pytest.mark.parametrize(
    "key",
    [
        GOOD_KEY,
        RSA_LABEL_ED_BODY,
        "ssh-rsa " + base64.b64encode(struct.pack(">I", 7) + b"ssh-rsa" + b"\1" * 40).decode() + " r@x",
        "ecdsa-sha2-nistp256 " + base64.b64encode(struct.pack(">I", 19) + b"ecdsa-sha2-nistp256" + b"\2" * 30).decode(),
        "ssh-ed25519",
        'from="10.0.0.1" ' + GOOD_KEY,
    ],
)
def test_nix_and_python_agree_on_keys(nix_instantiate, key):
    nix_ok = nix_eval(nix_instantiate, f"(import ./nix/lib/ssh-keys.nix).isValid {nix_string(key)}")
    assert nix_ok is (site_formats.check_ssh_public_key(key) is None)


# ---------------------------------------------------------------------------------------------------- layout


def test_partition_layout_is_bios_boot_esp_lvm_in_order(nix_instantiate):
    layout = nix_eval(nix_instantiate, "import ./nix/lib/partitions.nix")
    parts = [(p["number"], p["name"], p["size"], p["typecode"], p["format"]) for p in layout["partitions"]]
    assert parts == [
        (1, "nerv-bios", "1M", "EF02", None),
        (2, "nerv-esp", "512M", "EF00", "vfat"),
        (3, "nerv-lvm", None, "8E00", "lvm"),
    ]
    assert layout["lvm"]["vg"] == "nerv"
    assert layout["lvm"]["lvs"] == [
        {"name": "root", "size": "100%FREE", "format": "ext4", "label": "nerv-root", "mountpoint": "/", "options": []}
    ]
    assert layout["sgdiskArgs"] == (
        ["-n", "1:0:+1M", "-t", "1:EF02", "-c", "1:nerv-bios"]
        + ["-n", "2:0:+512M", "-t", "2:EF00", "-c", "2:nerv-esp"]
        + ["-n", "3:0:0", "-t", "3:8E00", "-c", "3:nerv-lvm"]
    )
    assert layout["fileSystems"] == {
        "/": {"device": "/dev/disk/by-label/nerv-root", "fsType": "ext4", "options": []},
        "/boot": {"device": "/dev/disk/by-label/NERV-ESP", "fsType": "vfat", "options": ["fmask=0077", "dmask=0077"]},
    }
    assert layout["marker"] == "/nerv-installed"


# ---------------------------------------------------------------------------------------------------- install script


def install_script(nix_instantiate, **args: str) -> str:
    args = {"systemToplevel": TOPLEVEL, "bootDisk": "/dev/sda", **args}
    attrs = " ".join(f"{k} = {nix_string(v)};" for k, v in args.items())
    return nix_eval(nix_instantiate, f"import ./nix/lib/install-script.nix {{ {attrs} }}")


def test_install_script_guards_before_anything_destructive(nix_instantiate):
    text = install_script(nix_instantiate)
    first_destructive = DESTRUCTIVE_TEXT.search(text)
    assert first_destructive is not None
    cut = first_destructive.start()
    assert first_destructive.group(1) == "wipefs -a"
    for guard in (
        "vgs --noheadings -o vg_name 'nerv'",  # a nerv volume group
        "[ -e '/mnt/nerv-installed' ]",  # the marker on the root LV
        'lsblk -nro PARTLABEL "$disk"',  # nerv-* partition labels
        'already_installed "$disk already holds a nerv install',
        'blkid -p "$disk"',  # someone else's data
        "candidate disks (${candidates[*]}) and none named",
    ):
        at = text.find(guard)
        assert 0 <= at < cut, f"{guard!r} must come before {first_destructive.group(1)!r}"
    for destructive in ("sgdisk --zap-all", "mkfs.fat", "mkfs.ext4", "pvcreate", "nixos-install --no-root-passwd"):
        assert text.find(destructive) > cut


def test_install_script_installs_the_built_in_system_then_powers_off(nix_instantiate):
    text = install_script(nix_instantiate)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "set -euo pipefail"
    assert lines[-1] == "systemctl poweroff"
    install = f"nixos-install --no-root-passwd --no-channel-copy --root '/mnt' --system '{TOPLEVEL}'"
    assert install in lines
    sgdisk = [line for line in lines if line.startswith("sgdisk '-n'")]
    assert len(sgdisk) == 1 and "'1:EF02'" in sgdisk[0] and "'2:EF00'" in sgdisk[0] and "'3:8E00'" in sgdisk[0]
    order = [
        'sgdisk --zap-all "$disk"',
        "mkfs.fat -F 32 -n 'NERV-ESP' \"$esp\"",
        "vgcreate 'nerv' \"$pv\"",
        "lvcreate -y -l '100%FREE' -n 'root' 'nerv'",
        "mkfs.ext4 -F -L 'nerv-root' '/dev/nerv/root'",
        "mount '/dev/nerv/root' '/mnt'",
        install,
        "rm -f '/mnt'/etc/ssh/ssh_host_* '/mnt/etc/machine-id' '/mnt/var/lib/systemd/random-seed'",
        "umount -R '/mnt'",
    ]
    # The last line is the final poweroff (already_installed has its own, earlier one).
    positions = [lines.index(line) for line in order] + [len(lines) - 1]
    assert positions == sorted(positions)
    marker = next(i for i, line in enumerate(lines) if line.endswith("> '/mnt/nerv-installed'"))
    assert lines.index(install) < marker < lines.index("umount -R '/mnt'")


def test_install_script_passes_shellcheck(nix_instantiate, tmp_path):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("needs shellcheck (Debian package shellcheck): not found on PATH")
    script = tmp_path / "install.sh"
    script.write_text(install_script(nix_instantiate))
    proc = subprocess.run([shellcheck, "-s", "bash", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


STUB = r"""#!{bash}
name=${{0##*/}}
echo "$name $*" >> "$STUB_LOG"
case "$name" in
  lsblk)
    case "$*" in
      *NAME,TYPE,RO*) printf '%s\n' "$FAKE_DISKS" ;;
      *PARTLABEL*) [ -z "${{FAKE_PARTLABELS:-}}" ] || printf '%s\n' "$FAKE_PARTLABELS" ;;
      *PKNAME*) [ -z "${{FAKE_LIVE_PARENT:-}}" ] || echo "$FAKE_LIVE_PARENT" ;;
      *"-nro NAME"*) echo disk ;;
    esac ;;
  findmnt) [ -n "${{FAKE_LIVE:-}}" ] || exit 1; echo "$FAKE_LIVE" ;;
  vgs) exit "${{FAKE_VGS_RC:-5}}" ;;
  blkid) exit "${{FAKE_BLKID_RC:-2}}" ;;
  mount) exit "${{FAKE_MOUNT_RC:-0}}" ;;
  nixos-install)
    [ -z "${{FAKE_INSTALL_FAIL:-}}" ] || exit 1
    mkdir -p "$MNT/etc/ssh" "$MNT/var/lib/systemd"
    touch "$MNT/etc/ssh/ssh_host_ed25519_key" "$MNT/etc/ssh/ssh_host_ed25519_key.pub" "$MNT/etc/machine-id"
    touch "$MNT/var/lib/systemd/random-seed" ;;
esac
exit 0
"""
STUBBED = [
    *("lsblk", "findmnt", "vgs", "vgchange", "blkid", "mount", "umount", "wipefs", "sgdisk", "parted", "udevadm"),
    *("mkfs.fat", "mkfs.ext4", "pvcreate", "vgcreate", "lvcreate", "nixos-install", "systemctl", "sync"),
]
# Real tools the script may use; everything else is missing, so no real disk command can ever run.
HARMLESS = ["head", "readlink", "grep", "wc", "mkdir", "rm", "date"]


@pytest.fixture
def run_install(nix_instantiate, tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("needs bash to run the install script against stubs")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = tmp_path / "stub"
    stub.write_text(STUB.format(bash=bash))
    stub.chmod(0o755)
    for name in STUBBED:
        (bin_dir / name).symlink_to(stub)
    for name in HARMLESS:
        real = shutil.which(name)
        assert real, f"{name} is needed to run the install script"
        (bin_dir / name).symlink_to(real)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cmdline = tmp_path / "cmdline"
    disk_file = tmp_path / "disk"
    script = tmp_path / "install.sh"
    script.write_text(
        install_script(nix_instantiate, diskFile=str(disk_file), cmdlineFile=str(cmdline), mountPoint=str(mnt))
    )
    log = tmp_path / "calls.log"

    def run(disks=("/dev/sda disk 0",), kernel="BOOT_IMAGE=/boot/bzImage quiet", disk_file_text=None, **fake):
        cmdline.write_text(kernel + "\n")
        if disk_file_text is not None:
            disk_file.write_text(disk_file_text)
        log.write_text("")
        env = {
            "PATH": str(bin_dir),
            "STUB_LOG": str(log),
            "MNT": str(mnt),
            "FAKE_DISKS": "\n".join(disks),
            **{k: str(v) for k, v in fake.items()},
        }
        proc = subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
        calls = [line.split(" ", 1) + [""] for line in log.read_text().splitlines()]
        return proc, [(c[0], c[1]) for c in calls], mnt

    return run


def destructive_calls(calls):
    return [c for c in calls if c[0] in DESTRUCTIVE]


def test_fresh_disk_is_installed_and_the_vm_powers_off(run_install):
    proc, calls, mnt = run_install()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = [c[0] for c in calls]
    assert ("wipefs", "-a /dev/sda") in calls
    assert ("sgdisk", "--zap-all /dev/sda") in calls
    assert ("mkfs.fat", "-F 32 -n NERV-ESP /dev/sda2") in calls
    assert ("pvcreate", "-ff -y /dev/sda3") in calls
    assert ("nixos-install", f"--no-root-passwd --no-channel-copy --root {mnt} --system {TOPLEVEL}") in calls
    assert names.index("sgdisk") < names.index("nixos-install") < names.index("systemctl")
    assert calls[-1] == ("systemctl", "poweroff")
    assert (mnt / "nerv-installed").read_text().startswith("installed ")
    assert TOPLEVEL in (mnt / "nerv-installed").read_text()
    assert sorted(p.name for p in (mnt / "etc/ssh").iterdir()) == [], "host keys must not survive into the template"
    assert not (mnt / "etc/machine-id").exists()
    assert not (mnt / "var/lib/systemd/random-seed").exists()


def test_a_disk_other_than_the_one_grub_is_built_for_is_refused(run_install):
    proc, calls, _root = run_install(disks=("/dev/nvme0n1 disk 0",), kernel="nerv.disk=/dev/nvme0n1")
    # The base system's GRUB is built for /dev/sda: a different disk is refused before anything is written.
    assert proc.returncode == 1
    assert "installs GRUB on /dev/sda, not /dev/nvme0n1" in proc.stdout
    assert destructive_calls(calls) == []


@pytest.mark.parametrize(
    ("fake", "reason"),
    [
        ({"FAKE_VGS_RC": 0}, "volume group nerv exists"),
        ({"FAKE_PARTLABELS": "\nnerv-bios\nnerv-esp\nnerv-lvm"}, "partitions labelled nerv-*"),
    ],
)
def test_a_disk_holding_a_nerv_install_is_left_alone(run_install, fake, reason):
    proc, calls, mnt = run_install(**fake)
    assert proc.returncode == 0
    assert "already holds a nerv install" in proc.stdout and reason in proc.stdout
    assert destructive_calls(calls) == []
    assert calls[-1] == ("systemctl", "poweroff")
    assert not (mnt / "nerv-installed").exists()


def test_the_marker_on_the_root_lv_is_quoted_and_the_disk_left_alone(run_install, tmp_path):
    (tmp_path / "mnt" / "nerv-installed").write_text("installed 2026-01-01T00:00:00Z on /dev/sda: /nix/store/x")
    proc, calls, _root = run_install(FAKE_VGS_RC=0)
    assert proc.returncode == 0
    assert "nerv-root holds /nerv-installed: installed 2026-01-01T00:00:00Z on /dev/sda" in proc.stdout
    assert ("mount", f"-o ro,noload /dev/nerv/root {tmp_path / 'mnt'}") in calls, "the probe mounts read-only"
    assert destructive_calls(calls) == []
    assert calls[-1] == ("systemctl", "poweroff")


def test_two_disks_and_none_named_is_refused(run_install):
    proc, calls, _root = run_install(disks=("/dev/sda disk 0", "/dev/sdb disk 0"))
    assert proc.returncode == 1
    assert "REFUSED: 2 candidate disks (/dev/sda /dev/sdb) and none named" in proc.stdout
    assert destructive_calls(calls) == []
    assert ("systemctl", "poweroff") not in calls, "a refusal keeps the VM up so the journal can be read"


@pytest.mark.parametrize(
    "how",
    [{"kernel": "quiet nerv.disk=/dev/sda"}, {"disk_file_text": "/dev/sda\n"}],
)
def test_two_disks_and_one_named_installs_on_the_named_one(run_install, how):
    proc, calls, _root = run_install(disks=("/dev/sda disk 0", "/dev/sdb disk 0"), **how)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    touched = {arg for name, args in destructive_calls(calls) for arg in args.split()}
    assert "/dev/sda" in touched and not any(a.startswith("/dev/sdb") for a in touched)


def test_the_live_medium_and_read_only_or_ram_disks_are_not_candidates(run_install):
    disks = ("/dev/sda disk 0", "/dev/sdb disk 0", "/dev/sdc disk 1", "/dev/zram0 disk 0", "/dev/sr0 rom 1")
    proc, calls, _root = run_install(disks=disks, FAKE_LIVE="/dev/sdb1", FAKE_LIVE_PARENT="/dev/sdb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "candidate disks: /dev/sda\n" in proc.stdout


def test_a_missing_disk_is_refused(run_install):
    proc, calls, _root = run_install(disks=("/dev/vda disk 0",))
    assert proc.returncode == 1
    assert "/dev/sda is not a writable whole disk of this VM (candidates: /dev/vda)" in proc.stdout
    assert destructive_calls(calls) == []


def test_foreign_data_is_refused_unless_wipe_is_asked(run_install):
    proc, calls, _root = run_install(FAKE_BLKID_RC=0)
    assert proc.returncode == 1
    assert "not a nerv install: boot with nerv.wipe=1" in proc.stdout
    assert destructive_calls(calls) == []
    proc, calls, _root = run_install(FAKE_BLKID_RC=0, kernel="nerv.wipe=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("sgdisk", "--zap-all /dev/sda") in calls


def test_a_failed_install_does_not_power_off_or_write_the_marker(run_install):
    proc, calls, mnt = run_install(FAKE_INSTALL_FAIL=1)
    assert proc.returncode != 0
    assert ("systemctl", "poweroff") not in calls
    assert not (mnt / "nerv-installed").exists()


# ---------------------------------------------------------------------------------------------------- modules


@pytest.fixture(scope="module")
def modules(nix_instantiate):
    expr = f"""
    let
      args = {STUB_ARGS};
      base = import ./nix/modules/base.nix args;
      installer = import ./nix/modules/installer.nix args;
      growroot = import ./nix/modules/growroot.nix args;
    in {{
      # the NFS module is data (modules/nfs.nix applied to site.nfs), the others are files
      base = base // {{ imports = map (i: if builtins.isAttrs i then i else toString i) base.imports; }};
      inherit installer growroot;
      expectedScript = import ./nix/lib/install-script.nix {{
        systemToplevel = "{TOPLEVEL}"; bootDisk = "/dev/sda";
      }};
    }}
    """
    return nix_eval(nix_instantiate, expr)


def test_base_module_sets_cloud_init_agent_and_keys_only_sshd(modules):
    base = modules["base"]
    assert base["services"]["cloud-init"] == {"enable": True, "network": {"enable": True}}
    assert base["networking"]["useNetworkd"] is True and base["networking"]["useDHCP"] is False
    assert base["services"]["qemuGuest"] == {"enable": True}
    assert base["services"]["openssh"] == {
        "enable": True,
        "settings": {
            "PasswordAuthentication": False,
            "KbdInteractiveAuthentication": False,
            "PermitRootLogin": "prohibit-password",
        },
    }
    assert base["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"] == [GOOD_KEY]
    assert "hostKeys" not in base["services"]["openssh"]
    assert base["networking"]["hostName"] == {"_type": "override", "priority": 1000, "content": "nixos-base"}


def test_base_module_boots_on_bios_and_uefi_from_labelled_file_systems(modules):
    base = modules["base"]
    assert base["boot"]["loader"]["grub"] == {
        "enable": True,
        "device": "/dev/sda",
        "efiSupport": True,
        "efiInstallAsRemovable": True,
    }
    assert base["boot"]["loader"]["efi"] == {"canTouchEfiVariables": False, "efiSysMountPoint": "/boot"}
    assert {fs["device"] for fs in base["fileSystems"].values()} == {
        "/dev/disk/by-label/nerv-root",
        "/dev/disk/by-label/NERV-ESP",
    }
    assert base["imports"][0] == "/stub/nixos/modules/profiles/qemu-guest.nix"
    assert base["imports"][1].endswith("/nix/modules/growroot.nix")
    assert base["imports"][2] == {}, "no NFS mount in a site without nfs"
    assert "fileSystems" not in base["imports"][2]


# The host modules name the ed25519 key a host already holds (nixos-anywhere --extra-files, or the clone's first
# boot) for sshd and sops-nix; tests/unit/test_nix_hosts.py checks that naming that path is all they do.
HOST_KEY_READERS = {"modules/host.nix", "modules/sops.nix"}


def test_no_file_bakes_or_generates_ssh_host_keys():
    for path in NIX_DIR.rglob("*.nix"):
        text = path.read_text()
        assert "ssh-keygen" not in text, path
        if path.relative_to(NIX_DIR).as_posix() in HOST_KEY_READERS:
            continue
        assert "hostKeys" not in text.replace("services.openssh.hostKeys keeps its default", ""), path
        assert "ssh_host_" not in text or path.name == "install-script.nix", path


def test_installer_module_builds_the_iso_with_the_install_service(modules):
    inst = modules["installer"]
    assert inst["imports"] == ["/stub/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix"]
    assert inst["isoImage"]["storeContents"] == [TOPLEVEL]
    assert inst["services"]["qemuGuest"] == {"enable": True}
    assert inst["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"] == [GOOD_KEY]
    settings = inst["services"]["openssh"]["settings"]
    assert settings["PasswordAuthentication"]["content"] is False
    assert settings["KbdInteractiveAuthentication"]["content"] is False
    assert settings["PermitRootLogin"]["content"] == "prohibit-password"
    assert inst["nix"]["settings"]["substituters"]["content"] == []
    assert inst["environment"]["etc"]["nerv/disk"] == {
        "_type": "if",
        "condition": True,
        "content": {"text": "/dev/sda\n"},
    }
    unit = inst["systemd"]["services"]["nerv-install"]
    assert unit["wantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["after"] and "network-online.target" in unit["wants"]
    assert unit["serviceConfig"]["Type"] == "oneshot"
    assert unit["unitConfig"]["ConditionKernelCommandLine"] == "!nerv.noinstall"
    assert unit["restartIfChanged"] is False
    assert unit["script"] == modules["expectedScript"]
    for tool in ("nixos-install", "nix", "gptfdisk", "lvm2", "dosfstools", "e2fsprogs", "util-linux", "systemd"):
        assert tool in unit["path"], tool


def test_growroot_grows_the_lvm_partition_pv_lv_and_file_system(modules):
    unit = modules["growroot"]["systemd"]["services"]["nerv-growroot"]
    script = unit["script"]
    steps = ['growpart "$disk" 3', 'pvresize "$pv"', "lvextend -l +100%FREE /dev/nerv/root", "resize2fs /dev/nerv/root"]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), script
    assert "/dev/disk/by-partlabel/nerv-lvm" in script
    assert unit["wantedBy"] == ["multi-user.target"]


def test_docs_describe_the_outputs_and_limits():
    text = (REPO / "docs" / "nix.md").read_text()
    for needle in (
        "nix build ./nix#nixosConfigurations.installer.config.system.build.isoImage",
        "nerv.disk=",
        "nerv.wipe=1",
        "/nerv-installed",
        "site.json",
        "tests/unit/test_nix_files.py",
    ):
        assert needle in text, needle
