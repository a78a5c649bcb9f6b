# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploying one host of a flake - NixOS with nixos-rebuild, macOS with nix-darwin's darwin-rebuild - over pinned
SSH, only when its system differs, with a health check after the switch and a rollback when it fails.

What runs where:
- NixOS: nixos-rebuild on the controller, `--target-host` (and `--build-host` for build_on=target), NIX_SSHOPTS
  pinning the host key (deploy.py).
- macOS: darwin-rebuild has no --target-host, so it runs on the Mac: the flake's source is copied there first
  (`nix flake archive --to ssh-ng://...`), the system too when it is built on the controller (`nix build`, then
  `nix copy --to ssh-ng://...`), and then `darwin-rebuild <action> --flake <source store path>#<host>` runs over
  pinned SSH.
"""

from __future__ import annotations

import json
import os
import shlex

from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import log_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run, run_logged
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target, plan_unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import deploy, fleet
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import magic_rollback as mr

DARWIN_ACTIONS = ("switch",)
# Only these activate a system now, so only they get a health check and a watchdog.
ACTIVATING = ("switch", "test")


def build_on(p: dict) -> str:
    """Where the system is built: given, else on the controller for NixOS and on the Mac for macOS (a Linux
    controller cannot build for darwin)."""
    return p.get("build_on") or ("target" if p["platform"] == "darwin" else "local")


def nixos_argv(p: dict, target: Target) -> list:
    argv = deploy.rebuild_argv({**p, "extra_args": []}, target)
    if build_on(p) == "target":
        argv += ["--build-host", f"{target.user}@{target.address}"]
    return argv + list(p.get("extra_args") or [])


def store_uri(target: Target) -> str:
    """The host's store over SSH (the port and key come from NIX_SSHOPTS)."""
    return f"ssh-ng://{target.user}@{target.address}"


def darwin_commands(p: dict, target: Target, source: str, want: str) -> list:
    """The commands of a darwin deploy, in order: (where, argv); where is "local" or "ssh" (argv's first item is
    then the remote command line)."""
    nix, ref = p["nix"], deploy.flake_ref(p["flake"])
    commands = [("local", [nix, *deploy.NIX_FEATURES, "flake", "archive", "--to", store_uri(target), ref])]
    if build_on(p) == "local":
        installable = f"{ref}#darwinConfigurations.{p['host']}.system"
        commands.append(("local", [nix, *deploy.NIX_FEATURES, "build", "--no-link", installable]))
        commands.append(("local", [nix, *deploy.NIX_FEATURES, "copy", "--to", store_uri(target), want]))
    remote = [p["darwin_rebuild"], p["action"], "--flake", f"{source}#{p['host']}", *(p.get("extra_args") or [])]
    return commands + [("ssh", [shlex.join(remote)])]


def flake_source(nix: str, ref: str, timeout: int) -> str:
    """The store path of the flake's source (what `--flake <path>#host` names on the Mac)."""
    argv = [nix, *deploy.NIX_FEATURES, "flake", "metadata", "--json", ref]
    done = run(argv, timeout, late=f"nix flake metadata of {ref} took longer than {timeout} s")
    try:
        path = json.loads(done.stdout).get("path") if done.rc == 0 else None
    except ValueError:
        path = None
    if not path or not deploy.STORE_PATH.fullmatch(path):
        raise HostError(f"cannot read the source store path of {ref}: {fleet.nix_message(done.stderr)}")
    return path


# A switch that breaks the host's network must not leave nixos-rebuild's ssh waiting forever: it gives up after
# 15 s without an answer, and the watchdog takes over.
KEEPALIVE = ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]


def step_name(where: str, argv: list) -> str:
    """How an error names the step: the remote command, or nix and its subcommand."""
    if where == "ssh":
        return argv[0].split()[0]
    if argv[1:2] != deploy.NIX_FEATURES[:1]:  # nixos-rebuild and its action
        return f"{os.path.basename(argv[0])} {argv[1]}"
    words = [a for a in argv[1:] if not a.startswith("-") and a != deploy.NIX_FEATURES[1]]
    return " ".join(["nix", *words[:2]] if words[:1] == ["flake"] else ["nix", *words[:1]])


def run_step(where: str, argv: list, target: Target, known_hosts: str, log_file: str, timeout: int) -> None:
    """One command of a deploy, its output appended to log_file; HostError with its tail when it fails."""
    ssh = target.ssh(known_hosts, strict=True)
    full = argv if where == "local" else [ssh[0], *KEEPALIVE, *ssh[1:], *argv]
    env = deploy.nix_sshopts(target, known_hosts, KEEPALIVE)
    ran = run_logged(full, log_file, timeout, env=env, append=True)
    if ran.rc != 0:
        failure = f"{step_name(where, argv)} for {target.host} failed (exit {ran.rc}); see {log_file}"
        raise HostError(failure, tail=ran.tail, log_file=log_file)


def activate(p: dict, target: Target, want: str, log_file: str) -> list:
    """Build, copy and switch; the commands that ran (argv lists)."""
    kh = p["known_hosts"]
    if p["platform"] == "nixos":
        argv = nixos_argv(p, target)
        run_step("local", argv, target, kh, log_file, p["timeout"])
        return [argv]
    source = flake_source(p["nix"], deploy.flake_ref(p["flake"]), p["timeout"])
    commands = darwin_commands(p, target, source, want)
    for where, argv in commands:
        run_step(where, argv, target, kh, log_file, p["timeout"])
    return [argv for _where, argv in commands]


def rollback_now(p: dict, target: Target, log_file: str, before: str) -> list:
    """Back to the previous generation from the controller: nixos-rebuild --rollback, or darwin-rebuild --rollback
    on the Mac; after a test, which made no generation, the old system's switch-to-configuration test."""
    kh = p["known_hosts"]
    if p["platform"] == "nixos" and p["action"] == "switch":
        argv = deploy.rollback_argv(p, target)
        run_step("local", argv, target, kh, log_file, p["timeout"])
        return argv
    if p["platform"] == "darwin":
        argv = [shlex.join([p["darwin_rebuild"], "switch", "--rollback"])]
    else:
        argv = [mr.undo_command("nixos", "test", before)]
    run_step("ssh", argv, target, kh, log_file, p["timeout"])
    return argv


def check_options(p: dict) -> None:
    """Refuse bad input before anything runs."""
    if not is_dns_label(p["host"]):
        raise HostError(f"host {p['host']!r} is not a DNS label: it must name {p['platform']}Configurations.<host>")
    if not os.path.isfile(p["known_hosts"]):
        raise HostError(f"known_hosts {p['known_hosts']} does not exist: the host's key must be pinned first")
    if p["platform"] == "darwin" and p["action"] not in DARWIN_ACTIONS:
        raise HostError(f"action {p['action']} is for NixOS: darwin-rebuild deploys with action=switch")
    if p["system"] is not None and not deploy.STORE_PATH.fullmatch(p["system"]):
        raise HostError(f"system {p['system']!r} is not a store path: give flake_eval's systems[<host>] or omit it")
    if p["rollback"] and p["action"] in ACTIVATING and p["confirm_timeout"] <= p["health_timeout"]:
        raise HostError(
            f"confirm_timeout ({p['confirm_timeout']} s) must exceed health_timeout ({p['health_timeout']} s): "
            "the watchdog would roll back while the health checks still run"
        )


def wanted(p: dict) -> str:
    if p["system"]:
        return p["system"]
    host = [{"name": p["host"], "platform": p["platform"]}]
    return fleet.evaluate(p["nix"], p["flake"], host, timeout=p["timeout"])["systems"][p["host"]]


def execute(module) -> dict:
    """nerv.homelab.flake_deploy."""
    p = dict(module.params)
    check_options(p)
    target = Target.from_params(p)
    try:
        before = deploy.running_system(target, p["known_hosts"], p["action"])
    except Unreachable as exc:
        plan_unreachable(module, exc, f"a deploy to {p['host']}")
        return {"changed": True, "before": None, "after": None, "deployed": False, "rolled_back": False}
    if not deploy.STORE_PATH.fullmatch(before):
        raise HostError(f"{p['host']} runs {before!r}, not a Nix system: is it a NixOS or nix-darwin host?")
    want = wanted(p)
    result = {"changed": before != want, "before": before, "after": want, "deployed": False, "rolled_back": False,
              "health": [], "diff": {"before": f"{before}\n", "after": f"{want}\n"}}  # fmt: skip
    if before == want or module.check_mode:
        return result
    log_file = log_path(p["log_file"], f"flake_deploy/{p['host']}.log")
    os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    return Deploy(p, target, before, want, log_file).run(result)


class Deploy:
    """One deploy that changes the host: arm, activate, check, then confirm or roll back."""

    def __init__(self, p, target, before, want, log_file):
        self.p, self.target, self.before, self.want, self.log_file = p, target, before, want, log_file
        self.kh = p["known_hosts"]
        self.watchdog = None
        if p["rollback"] and p["action"] in ACTIVATING:
            limit = p["timeout"]
            self.watchdog = mr.Watchdog(p["platform"], p["action"], before, p["confirm_timeout"], limit)

    def run(self, result: dict) -> dict:
        result = {**result, "log_file": self.log_file}
        if self.watchdog:
            self.watchdog.arm(self.target, self.kh)
        try:
            result["argv"] = activate(self.p, self.target, self.want, self.log_file)
        except HostError as exc:
            return self.after_failed_activation(result, exc)
        if self.p["action"] not in ACTIVATING:
            return self.verify_boot(result)
        health = mr.wait_healthy(self.target, self.kh, self.p["platform"], self.want,
                                 self.p["health_checks"], self.p["health_timeout"])  # fmt: skip
        result["health"] = health.checks
        if health.healthy:
            if self.watchdog:
                self.watchdog.disarm(self.target, self.kh)
            return {**result, "deployed": True}
        return self.unhealthy(result, health, f"the health check failed: {mr.failing(health.checks)}")

    def verify_boot(self, result: dict) -> dict:
        now = deploy.running_system(self.target, self.kh, "boot")
        if now != self.want:
            raise HostError(f"nixos-rebuild boot finished but {self.p['host']} boots {now}, not {self.want}",
                            log_file=self.log_file)  # fmt: skip
        return {**result, "deployed": True}

    def after_failed_activation(self, result: dict, error: HostError):
        """The switch failed: if the host still runs the old system nothing is to undo; otherwise it is unhealthy."""
        try:
            now = mr.run_check(self.target, self.kh, "readlink -f /run/current-system")["output"]
        except Unreachable:
            now = None
        if now == self.before or self.p["action"] not in ACTIVATING:
            if self.watchdog:
                self.watchdog.disarm(self.target, self.kh)
            raise error
        health = mr.Health(False, now is not None, now, [])
        return self.unhealthy(result, health, f"{error}")

    def unhealthy(self, result: dict, health, reason: str):
        """Roll back (or, with rollback off, say the host was left as it is) and fail."""
        host, details = self.p["host"], {**result}
        details.pop("diff", None)
        if not self.watchdog:
            raise HostError(f"{host} was deployed but {reason}; rollback is off, it runs {self.want}", **details)
        if health.answered and health.running != self.before:
            self.watchdog.disarm(self.target, self.kh)
            details["rollback_argv"] = rollback_now(self.p, self.target, self.log_file, self.before)
            by = "the controller"
        else:
            by = "the host's watchdog"  # it did not answer (or the watchdog already acted): wait for the watchdog
        grace = self.p["confirm_timeout"] + mr.COME_BACK_GRACE if by != "the controller" else self.p["health_timeout"]
        now = mr.wait_running(self.target, self.kh, self.before, grace)
        if now != self.before:
            runs = now or "unknown: no answer"
            raise HostError(f"{host} was deployed but {reason}; rolling back by {by} did not bring back "
                            f"{self.before} within {grace} s (it runs {runs})", **details)  # fmt: skip
        details.update(rolled_back=True, rolled_back_by="controller" if by == "the controller" else "watchdog")
        raise HostError(f"{host} was rolled back to {self.before} by {by}: {reason}", **details)
