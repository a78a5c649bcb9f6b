# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Installing NixOS on a host with nixos-anywhere, safely: probe first, refuse what would wipe a system by
surprise, run it with its progress parsed, then check that the host came back as itself.

Only paths go into argv (the identity file, the --extra-files tree): never a key or a secret.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import tempfile
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import log_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.known_hosts import pinned_keys
from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run, run_logged
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target, plan_unreachable, ssh_run
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline

BY_ID = re.compile(r"^/dev/disk/by-id/[A-Za-z0-9._:+@-]+$")
PHASES = ("kexec", "disko", "install", "reboot")
KEXEC_MIN_KB = 1536 * 1024  # nixos-anywhere's kexec image needs about 1.5 GB of RAM

# Read-only facts of the target, one key=value per line; $1 is the declared disk.
PROBE_SCRIPT = r"""
[ -r /etc/os-release ] && . /etc/os-release
echo "os_id=${ID:-unknown}"
echo "variant_id=${VARIANT_ID:-}"
echo "pretty_name=${PRETTY_NAME:-${ID:-unknown}}"
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
if [ -b "$1" ]; then echo "disk=present"; else echo "disk=missing"; fi
for d in /dev/disk/by-id/*; do [ -e "$d" ] && echo "by_id=$d"; done
exit 0
"""


@dataclass
class Facts:
    os_id: str = "unknown"
    variant_id: str = ""
    pretty_name: str = ""
    hostname: str = ""
    mem_kb: int = 0
    disk_present: bool = False
    by_id: list = field(default_factory=list)

    @property
    def installer(self) -> bool:
        """A NixOS installer (the ISO or nixos-anywhere's kexec image): nothing on disk is running."""
        return self.os_id == "nixos" and self.variant_id == "installer"


def parse_facts(text: str) -> Facts:
    facts = Facts()
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "by_id":
            facts.by_id.append(value)
        elif key == "mem_kb":
            facts.mem_kb = int(value) if value.isdigit() else 0
        elif key == "disk":
            facts.disk_present = value == "present"
        elif key in ("os_id", "variant_id", "pretty_name", "hostname"):
            setattr(facts, key, value.strip().strip('"'))
    return facts


def check_inputs(host: str, flake: str, disk: str | None, phases: list, identity_file: str, extra_files: str | None):
    """Bad input fails here, before the target is contacted."""
    if not is_dns_label(host):
        raise HostError(f"host {host!r} is not a DNS label: it must name nixosConfigurations.<host> of the flake")
    if not os.path.isfile(os.path.join(flake, "flake.nix")):
        raise HostError(f"flake {flake} has no flake.nix: give the directory of the site's flake")
    if disk is not None and not BY_ID.fullmatch(disk):
        raise HostError(
            f"disk {disk!r} of {host} is not a /dev/disk/by-id/... path: name the disk to wipe by its stable id "
            "(ls -l /dev/disk/by-id on the machine), never /dev/sdX or /dev/nvmeXnY"
        )
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        raise HostError(f"phases must be a non-empty list of {', '.join(PHASES)}; got {', '.join(phases) or 'none'}")
    if identity_file and not os.path.isfile(identity_file):
        raise HostError(f"identity_file {identity_file} does not exist")
    if extra_files is not None:
        check_extra_files(extra_files)


def check_extra_files(root: str) -> None:
    """The tree nixos-anywhere copies: the private host key 0600, no directory or file writable by others."""
    key = os.path.join(root, "etc", "ssh", "ssh_host_ed25519_key")
    if not os.path.isfile(key):
        raise HostError(
            f"extra_files {root} has no etc/ssh/ssh_host_ed25519_key: prepare it with nerv.homelab.host_keys"
        )
    if os.stat(key).st_mode & 0o077:
        raise HostError(f"{key} is readable by others: it must be mode 0600")
    for directory, _dirs, files in os.walk(root):
        for path in [directory, *(os.path.join(directory, f) for f in files)]:
            if os.lstat(path).st_mode & 0o022:
                raise HostError(f"{path} in extra_files is writable by group or others")


def probe(target: Target, known_hosts: str, disk: str | None, timeout: int = 60) -> Facts:
    """Facts of the target over SSH (the installer's host key is learnt into known_hosts, a scratch file)."""
    command = ["sh", "-s", "--", shlex.quote(disk or "/nonexistent")]
    failure = f"cannot reach {target.host} at {target.address}:{target.port} over SSH"
    return parse_facts(
        ssh_run(target, known_hosts, command, failure, strict=False, timeout=timeout, stdin=PROBE_SCRIPT)
    )


def scan_host_key(target: Target, timeout: int = 10) -> str | None:
    """'ssh-ed25519 AAAA...' the target presents now (ssh-keyscan), or None."""
    argv = ["ssh-keyscan", "-T", str(timeout), "-t", "ed25519", "-p", str(target.port), target.address]
    try:
        done = run(argv, timeout + 5)
    except HostError:  # no answer in time, or no ssh-keyscan: no key seen
        return None
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#") and fields[1] == "ssh-ed25519":
            return f"{fields[1]} {fields[2]}"
    return None


def normal_key(line: str | None) -> str | None:
    return " ".join(str(line).split()[:2]) if line else None


@dataclass
class Plan:
    action: str  # install | installed
    reason: str
    warnings: list = field(default_factory=list)


def decide(target: Target, facts: Facts, disk: str | None, reinstall: bool, is_pinned: bool) -> Plan:
    """What to do with what the probe found; raises when installing would wipe a system nobody asked to replace."""
    this_host = facts.os_id == "nixos" and facts.hostname == target.host and is_pinned
    if facts.installer:
        plan = Plan("install", f"{target.host} runs a NixOS installer")
    elif this_host and not reinstall:
        return Plan("installed", f"{target.host} already runs NixOS as {facts.hostname} with its pinned host key")
    elif reinstall:
        plan = Plan("install", f"reinstall asked for {target.host}, which runs {facts.pretty_name} ({facts.hostname})")
    else:
        raise HostError(
            f"{target.host} at {target.address} runs an installed {facts.pretty_name} "
            f"(hostname {facts.hostname or '?'}), "
            f"not a NixOS installer: installing would wipe {disk or 'its disk'}. Boot it from the installer, or set "
            f"reinstall: true for {target.host} to replace that system",
            facts=facts.__dict__,
        )
    if disk and not facts.disk_present:
        raise HostError(
            f"disk {disk} is not on {target.host}; its disks by id: {', '.join(facts.by_id) or 'none'}",
            facts=facts.__dict__,
        )
    if not facts.installer and facts.mem_kb and facts.mem_kb < KEXEC_MIN_KB:
        plan.warnings.append(
            f"{target.host} has {facts.mem_kb // 1024} MiB of RAM: nixos-anywhere's kexec step needs about 1.5 GiB; "
            "boot it from the installer ISO instead if the kexec fails"
        )
    return plan


def argv_for(options: dict, target: Target) -> list:
    """The nixos-anywhere command line: paths only, never a secret.

    The installer's host keys are ephemeral (the kexec image makes new ones), so they cannot be pinned: host key
    checking is off for nixos-anywhere and the installed host is verified against its pinned key afterwards."""
    argv = [options["nixos_anywhere"], "--flake", f"{options['flake']}#{target.host}"]
    argv += ["--target-host", f"{target.user}@{target.address}", "--ssh-port", str(target.port)]
    if target.identity_file:
        argv += ["-i", target.identity_file]
    argv += ["--ssh-option", "UserKnownHostsFile=/dev/null", "--ssh-option", "StrictHostKeyChecking=no"]
    argv += ["--phases", ",".join(options["phases"])]
    if options.get("extra_files"):
        argv += ["--extra-files", options["extra_files"]]
    if options.get("hardware_config"):
        argv += ["--generate-hardware-config", "nixos-generate-config", options["hardware_config"]]
    return argv + list(options.get("extra_args") or [])


def wait_for_ssh(target: Target, timeout: int, interval: float = 2.0) -> None:
    """Until TCP port 22 of the target accepts connections again (after the reboot), or HostError."""
    deadline = Deadline(timeout)
    while True:
        try:
            socket.create_connection((target.address, target.port), timeout=3).close()
            return
        except OSError as exc:
            last = exc.strerror or str(exc)
        if not deadline.pause(interval):
            raise HostError(
                f"{target.host} did not come back at {target.address}:{target.port} within {timeout} s ({last})"
            )


def verify(target: Target, pinned_key: str | None, known_hosts: str | None) -> str:
    """After the install: the host presents the pinned key and answers with its own hostname; its hostname."""
    presented = normal_key(scan_host_key(target))
    if pinned_key and presented != normal_key(pinned_key):
        raise HostError(
            f"{target.host} at {target.address} now presents host key {presented or '(none)'} but the pinned key is "
            f"{normal_key(pinned_key)}: this is not the host that was installed, or its key was not carried over. "
            "Nothing more was done; do not trust this machine until you know why"
        )
    strict = bool(known_hosts and pinned_key)
    failure = f"{target.host} came back but SSH as {target.user} failed"
    hostname = ssh_run(target, known_hosts or "/dev/null", ["hostname"], failure, strict=strict, timeout=60).strip()
    if hostname != target.host:
        raise HostError(f"{target.address} came back as {hostname!r}, not {target.host}: check the flake's host")
    return hostname


def execute(module) -> dict:
    """nerv.homelab.nixos_install: probe, decide (refusals), run nixos-anywhere, check the pinned key after."""
    p = module.params
    check_inputs(p["host"], p["flake"], p["disk"], p["phases"], p["identity_file"] or "", p["extra_files"])
    target = Target.from_params(p)
    after = Target.from_params(p, p["address_after"] or p["address"])
    pinned = p["host_key"] or pinned_keys(p["known_hosts"]).get(after.address)
    argv = argv_for(p, target)
    with tempfile.TemporaryDirectory(prefix="nerv-install.") as scratch:
        try:
            facts = probe(target, os.path.join(scratch, "known_hosts"), p["disk"])
        except Unreachable as exc:
            plan_unreachable(module, exc, f"the install of {p['host']}")
            return {"changed": True, "action": "install", "reason": str(exc), "argv": argv, "facts": {}}
        is_pinned = bool(pinned) and normal_key(scan_host_key(target)) == normal_key(pinned)
        plan = decide(target, facts, p["disk"], p["reinstall"], is_pinned)
        for warning in plan.warnings:
            module.warn(warning)
        result = {"changed": plan.action == "install", "action": plan.action, "reason": plan.reason, "argv": argv,
                  "facts": facts.__dict__}  # fmt: skip
        if plan.action == "installed" or module.check_mode:
            return result
        return {**result, **_install(p, argv, after, pinned)}


def _install(p, argv, after, pinned) -> dict:
    log_file = log_path(p["log_file"], f"nixos_install/{p['host']}.log")
    ran = run_logged(argv, log_file, p["timeout"])
    if ran.rc != 0:
        last = ran.steps[-1] if ran.steps else "(before the first step)"
        raise HostError(
            f"nixos-anywhere failed for {p['host']} (exit {ran.rc}) during step: {last}; see {log_file}. "
            "Re-running continues from the installer",
            steps=ran.steps,
            tail=ran.tail,
            log_file=log_file,
        )
    if "reboot" in p["phases"]:
        wait_for_ssh(after, p["wait_timeout"])
        hostname = verify(after, pinned, p["known_hosts"])
    else:
        hostname = None
    return {"steps": ran.steps, "log_file": log_file, "hostname": hostname}
