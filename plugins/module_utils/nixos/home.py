# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switching one user's Home Manager configuration on one host, over pinned SSH as that user, with the same rules
as a system deploy: evaluated first, switched only when the generation differs, health-checked afterwards and
rolled back to the previous generation when a check fails.

What runs where:
- on the controller: `nix eval` of homeConfigurations."<configuration>".activationPackage (nothing is built), and
  `nix flake archive --to ssh://<user>@<address>` copying the flake's source and inputs to the host's store, with
  NIX_SSHOPTS pinning the host key;
- on the host, as the user, each over its own SSH connection with the pinned key: reading the Home Manager profile,
  `home-manager switch --flake <source>#<configuration>` (the host builds or substitutes the generation itself, as
  `home-manager switch` always does), the health checks, and on failure `<previous generation>/activate`.
"""

from __future__ import annotations

import json
import os
import re
import shlex

from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import log_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run, run_logged
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target, plan_unreachable, ssh_run
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.deploy import (
    NIX_FEATURES,
    STORE_PATH,
    eval_store_path,
    flake_ref,
    nix_sshopts,
)

# A login name as useradd accepts it (and the Home Manager convention <user>@<host> needs no quoting of it).
USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
# The configuration goes inside a quoted Nix attribute name: no quote, backslash, interpolation or whitespace.
CONFIGURATION = re.compile(r'^[^"\\$\s]+$')
HEALTH_RETRY = 2  # seconds between two attempts of a failing health check
OUTPUT_CHARS = 2000  # of a health check's output kept in the result

# The Home Manager profile the user has, found as Home Manager's activation does (modules/lib-bash/
# activation-init.sh, setupVars and migrateProfile): $XDG_STATE_HOME/nix/profiles (Nix 2.14 and later), else
# /nix/var/nix/profiles/per-user/<user>, else the pre-2.14 $XDG_STATE_HOME/home-manager/profiles, which the next
# activation migrates. Prints "<profile> <generation>", or nothing when the user has no profile yet.
PROFILE_SCRIPT = r"""
state="${XDG_STATE_HOME:-$HOME/.local/state}"
user="${USER:-$(id -un)}"
for profile in "$state/nix/profiles/home-manager" \
               "${NIX_STATE_DIR:-/nix/var/nix}/profiles/per-user/$user/home-manager" \
               "$state/home-manager/profiles/home-manager"; do
  if [ -L "$profile" ] || [ -e "$profile" ]; then
    printf '%s %s\n' "$profile" "$(readlink -f "$profile")"
    exit 0
  fi
done
"""


def check_options(p: dict) -> str:
    """The configuration name, after refusing options that cannot name one user's home on one host."""
    if not is_dns_label(p["host"]):
        raise HostError(f"host {p['host']!r} is not a DNS label: give the host's name as the flake knows it")
    if not USER.fullmatch(p["user"]):
        raise HostError(f"user {p['user']!r} is not a login name: give the user the home belongs to (e.g. alice)")
    configuration = p.get("configuration") or f"{p['user']}@{p['host']}"
    if not CONFIGURATION.fullmatch(configuration):
        raise HostError(
            f"configuration {configuration!r} cannot be a homeConfigurations attribute: leave out quotes, "
            "backslashes, $ and spaces (the default is <user>@<host>)"
        )
    if p.get("activation") is not None and not STORE_PATH.fullmatch(p["activation"]):
        raise HostError(f"activation {p['activation']!r} is not a store path: give the evaluated activationPackage")
    if not os.path.isfile(p["known_hosts"]):
        raise HostError(f"known_hosts {p['known_hosts']} does not exist: the host's key must be pinned first")
    if p["health_timeout"] <= 0:
        raise HostError(f"health_timeout {p['health_timeout']} must be a positive number of seconds")
    return configuration


def activation_attr(flake: str, configuration: str) -> str:
    return f'{flake_ref(flake)}#homeConfigurations."{configuration}".activationPackage.outPath'


def wanted_generation(nix: str, flake: str, configuration: str, timeout: int = 600) -> str:
    """The store path of the configuration's activationPackage (the generation), by evaluation only."""
    what = f'homeConfigurations."{configuration}" of {flake}'
    return eval_store_path(nix, activation_attr(flake, configuration), what, timeout)


def parse_profile(output: str) -> tuple:
    """(profile link, generation) from PROFILE_SCRIPT's output; (None, None) when the user has no profile."""
    line = output.strip()
    if not line:
        return None, None
    profile, generation = line.rsplit(" ", 1) if " " in line else ("", line)
    if not STORE_PATH.fullmatch(generation):
        raise HostError(f"the Home Manager profile {profile} points at {generation!r}, not at a store path")
    return profile, generation


def running_generation(target: Target, known_hosts: str) -> tuple:
    """(profile, generation) the user has on the host now, over pinned SSH as the user."""
    failure = f"cannot read {target.user}'s Home Manager profile on {target.host} at {target.address}"
    return parse_profile(ssh_run(target, known_hosts, [PROFILE_SCRIPT], failure))


def archive_argv(nix: str, flake: str, target: Target) -> list:
    return [nix, *NIX_FEATURES, "flake", "archive", "--json", "--to", f"ssh://{target.user}@{target.address}",
            flake_ref(flake)]  # fmt: skip


def copy_source(argv: list, target: Target, known_hosts: str, timeout: int) -> dict:
    """Copy the flake's source and inputs to the host's store; {argv, source, inputs} of what was copied."""
    late = f"copying the flake to {target.host} took longer than {timeout} s"
    done = run(argv, timeout, env=nix_sshopts(target, known_hosts), late=late)
    try:
        archived = json.loads(done.stdout) if done.rc == 0 else {}
    except ValueError:
        archived = {}
    if not STORE_PATH.fullmatch(str(archived.get("path", ""))):
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        raise HostError(f"cannot copy the flake to {target.user}@{target.host} (exit {done.rc}): {tail}")
    return {"argv": argv, "source": archived["path"], "inputs": archived.get("inputs") or {}}


def switch_command(p: dict, source: str, configuration: str) -> list:
    """home-manager switch of the copied source, as run on the host."""
    return [p["home_manager"], "switch", "--flake", f"{source}#{configuration}", *(p.get("extra_args") or [])]


def switch(command: list, target: Target, known_hosts: str, log_file: str, timeout: int):
    """Run home-manager on the host over pinned SSH, its output streamed to log_file; the Run, whatever its rc."""
    return run_logged(target.ssh(known_hosts, strict=True) + [shlex.join(command)], log_file, timeout)


def probe(target: Target, known_hosts: str, command: str, timeout: float) -> dict:
    """One attempt of a health check over a new SSH connection: its exit code and output."""
    argv = target.ssh(known_hosts, strict=True) + [command]
    try:
        done = run(argv, max(timeout, 1), late=f"no answer within {max(timeout, 1):.0f} s")
    except HostError as exc:  # no answer in time, or no ssh to ask with: the check did not pass
        return {"rc": None, "output": exc.message}
    return {"rc": done.rc, "output": (done.stdout + done.stderr).strip()[-OUTPUT_CHARS:]}


def health(target: Target, known_hosts: str, checks: list, timeout: float, deadline=None) -> list:
    """Each check (after `true`: the user can still log in) retried until it exits 0, all within timeout seconds.

    Stops at the first check that never passed: the outcomes so far, that one last with ok false."""
    deadline = deadline or Deadline(timeout)
    outcomes = []
    for command in ["true", *checks]:
        attempts = 0
        while True:
            attempts += 1
            outcome = probe(target, known_hosts, command, deadline.left())
            if outcome["rc"] == 0 or not deadline.pause(HEALTH_RETRY):
                break
        outcomes.append({"check": command, "ok": outcome["rc"] == 0, "attempts": attempts, **outcome})
        if outcome["rc"] != 0:
            break
    return outcomes


def activate(target: Target, known_hosts: str, generation: str, log_file: str, timeout: int):
    """Activate a generation again (every Home Manager generation has an activate script), appending to log_file."""
    argv = target.ssh(known_hosts, strict=True) + [shlex.quote(f"{generation}/activate")]
    try:
        return run_logged(argv, log_file, timeout, append=True, why="rollback").rc
    except HostError:  # stopped past its timeout, said in the log
        return None


def undo(p: dict, target: Target, state: dict, reason: str):
    """The switch went wrong (reason): back to state['before'] when rollback is on and there is one; always fails."""
    before, log_file = state["before"], state["log_file"]
    now = running_generation(target, p["known_hosts"])[1]
    if now == before:
        raise HostError(f"{reason}; the profile still points at {before}: nothing to roll back", **state)
    if before is None:
        raise HostError(f"{reason}; this was the first activation: there is no previous generation to roll back to",
                        **state)  # fmt: skip
    if not p["rollback"]:
        raise HostError(f"{reason}; rollback is off: the profile stays at {now}", **state)
    rc = activate(target, p["known_hosts"], before, log_file, p["timeout"])
    back = running_generation(target, p["known_hosts"])[1]
    if rc != 0 or back != before:
        raise HostError(f"{reason}; rolling back to {before} failed (exit {rc}), the profile points at {back}; "
                        f"see {log_file}", **state)  # fmt: skip
    raise HostError(f"{reason}; rolled back to the previous generation {before}", **{**state, "rolled_back": True})


def failing(outcomes: list) -> dict | None:
    return next((o for o in outcomes if not o["ok"]), None)


def apply(p: dict, target: Target, configuration: str, result: dict) -> dict:
    """Copy, switch, check; undo on any failure after the switch started."""
    log_file = log_path(p["log_file"], f"home_manager/{p['user']}@{p['host']}.log")
    result = {**result, "log_file": log_file}
    copied = copy_source(archive_argv(p["nix"], p["flake"], target), target, p["known_hosts"], p["timeout"])
    command = switch_command(p, copied["source"], configuration)
    result.update(copy=copied, argv=command)
    run = switch(command, target, p["known_hosts"], log_file, p["timeout"])
    if run.rc != 0:
        undo(p, target, {**result, "tail": run.tail}, f"home-manager switch failed (exit {run.rc}); see {log_file}")
    now = running_generation(target, p["known_hosts"])[1]
    if now != result["after"]:
        undo(p, target, result, f"home-manager switch finished but the profile points at {now}, not {result['after']}")
    result["health"] = health(target, p["known_hosts"], p["health_checks"], p["health_timeout"])
    bad = failing(result["health"])
    if bad:
        how = "did not answer" if bad["rc"] is None else f"failed (exit {bad['rc']})"
        reason = f"health check {bad['check']!r} {how} after the switch: {bad['output']}"
        undo(p, target, result, reason)
    return result


def execute(module) -> dict:
    """nerv.homelab.home_manager: home-manager switch for one user on one host, only when the generation differs."""
    p = module.params
    configuration = check_options(p)
    target = Target.from_params(p)
    result = {"configuration": configuration, "rolled_back": False, "health": []}
    try:
        profile, before = running_generation(target, p["known_hosts"])
    except Unreachable as exc:
        plan_unreachable(module, exc, f"a Home Manager switch of {p['user']} on {p['host']}")
        return {**result, "changed": True, "before": None, "after": p["activation"], "profile": None}
    want = p["activation"] or wanted_generation(p["nix"], p["flake"], configuration)
    result.update(changed=before != want, before=before, after=want, profile=profile)
    result["diff"] = {"before": f"{before or '(no generation)'}\n", "after": f"{want}\n"}
    if before == want or module.check_mode:
        return result
    return apply(p, target, configuration, result)
