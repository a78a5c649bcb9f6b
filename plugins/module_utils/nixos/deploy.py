# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one deploy engine: a profile of a flake - a NixOS or nix-darwin host's system (System, here), or one user's
Home Manager home (home.Home) - deployed to a host over pinned SSH only when what it runs differs from what the
flake gives, health-checked afterwards and rolled back when a check fails.

run() goes through the same stages for every profile: check the options; read what runs (check mode plans without
a host that does not answer or whose key is not pinned yet); work out what is wanted (given, or evaluated: nothing
is built); stop there in check mode or when nothing differs; arm the watchdog; activate; check health; confirm, or
roll back - by the controller when the host answers, else by the watchdog; return the result.

What runs where for a system:
- NixOS: nixos-rebuild on the controller, `--target-host` (and `--build-host` for build_on=target), NIX_SSHOPTS
  pinning the host key.
- macOS: darwin-rebuild has no --target-host, so it runs on the Mac: the flake's source is copied there first
  (`nix flake archive --to ssh-ng://...`), the system too when it is built on the controller (`nix build`, then
  `nix copy --to ssh-ng://...`), and then `darwin-rebuild <action> --flake <source store path>#<host>` runs over
  pinned SSH.
"""

from __future__ import annotations

import os
import shlex

from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import log_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unpinned, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run_logged
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import (
    Target,
    plan_unreachable,
    require_pinned,
    ssh_run,
)
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import health, nix
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.watchdog import COME_BACK_GRACE, Watchdog, wait_running

ACTIONS = ("switch", "boot", "test")
DARWIN_ACTIONS = ("switch",)
# Only these activate a system now, so only they get a health check, a watchdog and a rollback.
ACTIVATING = ("switch", "test")
# Where the running system and the next boot's system are.
CURRENT = {"switch": "/run/current-system", "test": "/run/current-system", "boot": "/nix/var/nix/profiles/system"}
# A switch that breaks the host's network must not leave an ssh waiting forever: it gives up after 15 s without an
# answer, and the watchdog takes over.
KEEPALIVE = ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]


def step_name(where: str, argv: list) -> str:
    """How an error names a step: the tool and its subcommand (nix flake archive, darwin-rebuild switch)."""
    words = shlex.split(argv[0]) if where == "ssh" else [a for a in argv if a not in nix.NIX_FEATURES]
    count = 2 if words[1:2] == ["flake"] else 1
    return " ".join([os.path.basename(words[0]), *(w for w in words[1 : 1 + count] if not w.startswith("-"))])


def run_step(where: str, argv: list, target: Target, known_hosts: str, log_file: str, timeout: int, why="") -> None:
    """One command of a deploy - on the controller ("local") or the host ("ssh": argv[0] is the remote command
    line) - its output appended to log_file; HostError with its tail when it fails."""
    ssh = target.ssh(known_hosts, strict=True)
    full = argv if where == "local" else [ssh[0], *KEEPALIVE, *ssh[1:], *argv]
    env = nix.nix_sshopts(target, known_hosts, KEEPALIVE)
    ran = run_logged(full, log_file, timeout, env=env, append=True, why=why)
    if ran.rc != 0:
        failure = f"{step_name(where, argv)} of {target.host} failed (exit {ran.rc}); see {log_file}"
        raise HostError(failure, tail=ran.tail, log_file=log_file)


class System:
    """A NixOS or nix-darwin host's system: nixos-rebuild or darwin-rebuild; the running system or the boot profile."""

    noun = "system"
    each = False  # every health round runs every check

    def __init__(self, p: dict):
        self.p = p
        self.label = p["host"]
        self.what = f"a deploy to {p['host']}"
        self.log_name = f"flake_deploy/{p['host']}.log"
        self.undoing = p.get("rollback_to") is not None
        # a failure after the activation began is rolled back (or said why not); a boot activates nothing
        self.recovers = p["action"] in ACTIVATING and not self.undoing

    def check(self) -> None:
        """Refuse bad input before anything runs."""
        p = self.p
        if not is_dns_label(p["host"]):
            raise HostError(f"host {p['host']!r} is not a DNS label: it must name {p['platform']}Configurations.<host>")
        if p["platform"] == "darwin" and p["action"] not in DARWIN_ACTIONS:
            raise HostError(f"action {p['action']} is for NixOS: darwin-rebuild deploys with action=switch")
        if p["system"] is not None and not nix.STORE_PATH.fullmatch(p["system"]):
            raise HostError(f"system {p['system']!r} is not a store path: give flake_eval's systems[<host>] or omit it")
        if self.undoing and not nix.STORE_PATH.fullmatch(p["rollback_to"]):
            raise HostError(f"rollback_to {p['rollback_to']!r} is not a system store path: give a deploy's 'before'")
        if p["rollback"] and self.recovers and p["confirm_timeout"] <= p["health_timeout"]:
            raise HostError(
                f"confirm_timeout ({p['confirm_timeout']} s) must exceed health_timeout ({p['health_timeout']} s): "
                "the watchdog would roll back while the health checks still run"
            )

    def result(self) -> dict:
        return {}

    def given(self) -> str | None:
        return None

    def running(self, target: Target) -> str:
        """The store path the host runs (or boots next, for boot), over pinned SSH."""
        failure = f"cannot read {target.host}'s system at {target.address}"
        now = ssh_run(target, self.p["known_hosts"], [f"readlink -f {CURRENT[self.p['action']]}"], failure).strip()
        if not nix.STORE_PATH.fullmatch(now):
            raise HostError(f"{self.label} runs {now!r}, not a Nix system: is it a NixOS or nix-darwin host?")
        return now

    def wanted(self) -> str:
        p = self.p
        if p["rollback_to"] or p["system"]:
            return p["rollback_to"] or p["system"]
        host = [{"name": p["host"], "platform": p["platform"]}]
        return nix.evaluate(p["nix"], p["flake"], host, timeout=p["timeout"])["systems"][p["host"]]

    def watchdog(self, before: str) -> Watchdog | None:
        p = self.p
        if not (p["rollback"] and self.recovers):
            return None
        return Watchdog(p["platform"], p["action"], before, p["confirm_timeout"], p["timeout"])

    def activate(self, target: Target, want: str, log_file: str) -> dict:
        """Build, copy and switch (or, with rollback_to, switch back); the commands that ran."""
        p = self.p
        if self.undoing:
            return {"argv": [self.roll_back(target, want, log_file)]}
        if p["platform"] == "nixos":
            argv = self.rebuild_argv(target)
            run_step("local", argv, target, p["known_hosts"], log_file, p["timeout"])
            return {"argv": [argv]}
        ref = nix.flake_ref(p["flake"])
        copied = nix.copy_flake(p["nix"], target, p["known_hosts"], ref, "ssh-ng", p["timeout"])
        commands = self.darwin_commands(target, copied["source"], want)
        for where, argv in commands:
            run_step(where, argv, target, p["known_hosts"], log_file, p["timeout"])
        return {"argv": [copied["argv"], *(argv for _where, argv in commands)]}

    def rebuild_argv(self, target: Target) -> list:
        p = self.p
        argv = [p["nixos_rebuild"], p["action"], "--flake", f"{nix.flake_ref(p['flake'])}#{p['host']}"]
        argv += ["--target-host", f"{target.user}@{target.address}"]
        if p["build_on"] == "target":
            argv += ["--build-host", f"{target.user}@{target.address}"]
        return argv + list(p.get("extra_args") or [])

    def darwin_commands(self, target: Target, source: str, want: str) -> list:
        """The commands after the copy of the flake, in order: (where, argv); where is "local" or "ssh" (argv's
        first item is then the remote command line). A Linux controller cannot build for darwin: by default the
        Mac builds."""
        p, store = self.p, f"ssh-ng://{target.user}@{target.address}"
        commands = []
        if p["build_on"] == "local":
            installable = f"{nix.flake_ref(p['flake'])}#darwinConfigurations.{p['host']}.system"
            commands.append(("local", [p["nix"], *nix.NIX_FEATURES, "build", "--no-link", installable]))
            commands.append(("local", [p["nix"], *nix.NIX_FEATURES, "copy", "--to", store, want]))
        remote = [p["darwin_rebuild"], p["action"], "--flake", f"{source}#{p['host']}", *(p.get("extra_args") or [])]
        return commands + [("ssh", [shlex.join(remote)])]

    def checks(self) -> list | None:
        """The health checks; None when reading what runs is the check (a boot, or undoing a deploy)."""
        if not self.recovers:
            return None
        checks = [health.PREDICATES["running system"]]
        if self.p["platform"] == "nixos" and self.p["failed_units"]:
            checks.append(health.PREDICATES["failed units"])
        return checks + health.commands(self.p["health_checks"])

    def differs(self, now: str, want: str) -> str:
        step = "the rollback" if self.undoing else f"{self.p['platform']} {self.p['action']}"
        return f"{step} finished but {self.label} {'boots' if self.p['action'] == 'boot' else 'runs'} {now}, not {want}"

    def roll_back(self, target: Target, before: str, log_file: str) -> list:
        """Back to the previous generation from the controller: nixos-rebuild --rollback, or darwin-rebuild
        --rollback on the Mac; after a test, which made no generation, the old system's switch-to-configuration test."""
        p = self.p
        if p["platform"] == "nixos" and p["action"] == "switch":
            argv = [p["nixos_rebuild"], "switch", "--rollback", "--target-host", f"{target.user}@{target.address}"]
            argv += list(p.get("extra_args") or [])
            run_step("local", argv, target, p["known_hosts"], log_file, p["timeout"], why="rollback")
            return argv
        if p["platform"] == "darwin":
            argv = [shlex.join([p["darwin_rebuild"], "switch", "--rollback"])]
        else:
            argv = [f"{shlex.quote(before)}/bin/switch-to-configuration test"]
        run_step("ssh", argv, target, p["known_hosts"], log_file, p["timeout"], why="rollback")
        return argv


def run(module, profile_class) -> dict:
    """nerv.homelab.flake_deploy and nerv.homelab.home_manager: the stages of a deploy of one profile."""
    p = module.params
    profile = profile_class(p)
    profile.check()
    target = Target.from_params(p)
    result = {"deployed": False, "rolled_back": False, "health": [], **profile.result()}
    try:
        require_pinned(p["known_hosts"], target)
        before = profile.running(target)
    except (Unreachable, Unpinned) as exc:
        plan_unreachable(module, exc, profile.what)
        return {**result, "changed": True, "before": None, "after": profile.given()}
    want = profile.wanted()
    result.update(changed=before != want, before=before, after=want, **profile.result())
    result["diff"] = {"before": f"{before or '(none)'}\n", "after": f"{want}\n"}
    if before == want or module.check_mode:
        return result
    log_file = log_path(p["log_file"], profile.log_name)
    os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    return Deploy(profile, target, before, want, log_file).run(result)


class Deploy:
    """One deploy that changes the host: arm, activate, check, then confirm or roll back."""

    def __init__(self, profile, target: Target, before: str | None, want: str, log_file: str):
        self.profile, self.target, self.before, self.want, self.log_file = profile, target, before, want, log_file
        self.p, self.kh = profile.p, profile.p["known_hosts"]
        self.watchdog = profile.watchdog(before)

    def run(self, result: dict) -> dict:
        result = {**result, "log_file": self.log_file}
        if self.watchdog:
            self.watchdog.arm(self.target, self.kh)
        try:
            result.update(self.profile.activate(self.target, self.want, self.log_file))
        except HostError as exc:
            return self.failed(result, exc.message, exc.details)
        checks = self.profile.checks()
        if not any(check.name == "running system" for check in checks or []):
            now = self.profile.running(self.target)
            if now != self.want:
                return self.failed(result, self.profile.differs(now, self.want))
        if checks is None:
            return {**result, "deployed": True}
        found = health.wait_healthy(self.target, self.kh, checks, self.want, self.p["health_timeout"],
                                    each=self.profile.each)  # fmt: skip
        result["health"] = found.checks
        if not found.healthy:
            return self.failed(result, health.failing(found.checks), after_health=True)
        self.confirm()
        return {**result, "deployed": True}

    def confirm(self) -> None:
        if self.watchdog:
            self.watchdog.disarm(self.target, self.kh)

    def now(self) -> tuple:
        """(answered, what the host runs now)."""
        try:
            return True, self.profile.running(self.target)
        except Unreachable:
            return False, None

    def failed(self, result: dict, reason: str, details: dict | None = None, after_health: bool = False):
        """Something went wrong after the activation began (reason): roll back, or say why not; always fails."""
        details = {**{k: v for k, v in result.items() if k != "diff"}, **(details or {})}
        label, before, noun = self.profile.label, self.before, self.profile.noun
        if not self.profile.recovers:
            raise HostError(reason, **details)
        answered, now = self.now()
        # with the watchdog armed, the old system back after the health checks is the watchdog's doing
        if answered and now == before and not (after_health and self.watchdog):
            self.confirm()
            raise HostError(f"{reason}; {label} still runs {before}: nothing to roll back", **details)
        if before is None:
            raise HostError(f"{reason}; this was the first activation: there is no previous {noun} to roll back to",
                            **details)  # fmt: skip
        if not self.p["rollback"]:
            raise HostError(f"{reason}; rollback is off: {label} is left at {now or 'unknown: no answer'}", **details)
        if answered and now != before:
            self.confirm()
            by, grace = "the controller", self.p["health_timeout"]
            try:
                details["rollback_argv"] = self.profile.roll_back(self.target, before, self.log_file)
            except HostError as exc:
                raise HostError(f"{reason}; rolling back by the controller failed: {exc}", **details) from None
        elif self.watchdog:
            by, grace = "the host's watchdog", self.p["confirm_timeout"] + COME_BACK_GRACE
        else:
            raise HostError(f"{reason}; {label} does not answer, so it was not rolled back", **details)
        back = wait_running(lambda: self.profile.running(self.target), before, grace)
        if back != before:
            raise HostError(f"{label}: {reason}; rolling back by {by} did not bring back {before} within {grace} s "
                            f"(it runs {back or 'unknown: no answer'})", **details)  # fmt: skip
        details.update(rolled_back=True, rolled_back_by="controller" if by == "the controller" else "watchdog")
        raise HostError(f"{label} was rolled back to the previous {noun} {before} by {by}: {reason}", **details)
