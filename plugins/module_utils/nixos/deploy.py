# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploying a host's NixOS configuration to a running NixOS with nixos-rebuild, over pinned SSH only.

The system the flake would build is known from evaluation alone (its store path), so a host already running it
is left alone without building or copying anything.
"""

from __future__ import annotations

import os
import re
import shlex

from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import log_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unpinned, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run, run_logged
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import (
    Target,
    plan_unreachable,
    require_pinned,
    ssh_run,
)

ACTIONS = ("switch", "boot", "test")
STORE_PATH = re.compile(r"^/nix/store/[a-z0-9]{32}-[^/\s]+$")
NIX_FEATURES = ["--extra-experimental-features", "nix-command flakes"]
# Where the running system and the next boot's system are.
CURRENT = {"switch": "/run/current-system", "test": "/run/current-system", "boot": "/nix/var/nix/profiles/system"}


# A flake reference with a scheme (path:, github:, git+https:, ...), as opposed to a local directory.
REFERENCE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def flake_ref(flake: str) -> str:
    """A local directory as path:<absolute dir>, so the flake need not be a git repository and untracked files
    (hosts.json, secrets/) count; a reference with a scheme (the flake inventory's nerv_flake) as it is."""
    if REFERENCE.match(flake):
        return flake
    return f"path:{os.path.abspath(os.path.expanduser(flake))}"


def eval_store_path(nix: str, attr: str, what: str, timeout: int = 600) -> str:
    """The store path attr (an installable ending in .outPath) evaluates to, by evaluation only; what names it in
    errors (nixosConfigurations.<host> of <flake>)."""
    argv = [nix, *NIX_FEATURES, "eval", "--raw", attr]
    done = run(argv, timeout, late=f"evaluating {what} took longer than {timeout} s")
    path = done.stdout.strip()
    if done.rc != 0 or not STORE_PATH.fullmatch(path):
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        raise HostError(f"cannot evaluate {what}: {tail or path!r}")
    return path


def wanted_system(nix: str, flake: str, host: str, timeout: int = 600) -> str:
    """The store path of the host's system, by evaluation only (nothing is built)."""
    attr = f"{flake_ref(flake)}#nixosConfigurations.{host}.config.system.build.toplevel.outPath"
    return eval_store_path(nix, attr, f"nixosConfigurations.{host} of {flake}", timeout)


def ssh_options(target: Target, known_hosts: str) -> list:
    """The ssh options every connection uses: the pinned known_hosts, strictly, and the identity."""
    argv = target.ssh(known_hosts, strict=True)
    return argv[1 : argv.index("-p")] + ["-p", str(target.port)]


def nix_sshopts(target: Target, known_hosts: str, extra: tuple = ()) -> dict:
    """The environment for the ssh that nix and nixos-rebuild start themselves: NIX_SSHOPTS with the pinned
    known_hosts, strictly, the identity and port, and any extra ssh options."""
    options = ssh_options(target, known_hosts) + list(extra)
    return dict(os.environ, NIX_SSHOPTS=" ".join(shlex.quote(o) for o in options))


def running_system(target: Target, known_hosts: str, action: str) -> str:
    """The store path the host runs (or boots next, for boot), over pinned SSH."""
    failure = f"cannot read {target.host}'s system at {target.address}"
    return ssh_run(target, known_hosts, [f"readlink -f {CURRENT[action]}"], failure).strip()


def rebuild_argv(options: dict, target: Target) -> list:
    argv = [options["nixos_rebuild"], options["action"], "--flake", f"{flake_ref(options['flake'])}#{target.host}"]
    argv += ["--target-host", f"{target.user}@{target.address}"]
    return argv + list(options.get("extra_args") or [])


def rollback_argv(options: dict, target: Target) -> list:
    """Back to the previous generation: the one before the deploy being undone (only run when that deploy switched)."""
    argv = [options["nixos_rebuild"], "switch", "--rollback", "--target-host", f"{target.user}@{target.address}"]
    return argv + list(options.get("extra_args") or [])


def rebuild(argv: list, target: Target, known_hosts: str, log_file: str, timeout: int):
    """Run nixos-rebuild with NIX_SSHOPTS pinning the host key (nixos-rebuild passes them to every ssh)."""
    run = run_logged(argv, log_file, timeout, env=nix_sshopts(target, known_hosts))
    if run.rc != 0:
        raise HostError(
            f"nixos-rebuild {argv[1]} of {target.host} failed (exit {run.rc}); see {log_file}",
            tail=run.tail,
            log_file=log_file,
        )
    return run


def execute(module) -> dict:
    """nerv.homelab.nixos_deploy: nixos-rebuild over pinned SSH, only when the evaluated system differs."""
    p = module.params
    if not is_dns_label(p["host"]):
        raise HostError(f"host {p['host']!r} is not a DNS label: it must name nixosConfigurations.<host>")
    target = Target.from_params(p)
    flake = p["flake"]
    if p["rollback_to"] is not None and not STORE_PATH.fullmatch(p["rollback_to"]):
        raise HostError(f"rollback_to {p['rollback_to']!r} is not a system store path: give a deploy's 'before'")
    argv = rollback_argv(p, target) if p["rollback_to"] else rebuild_argv({**p, "flake": flake}, target)
    try:
        require_pinned(p["known_hosts"], target)
        before = running_system(target, p["known_hosts"], p["action"])
    except (Unreachable, Unpinned) as exc:
        plan_unreachable(module, exc, f"a deploy to {p['host']}")
        return {"changed": True, "before": None, "after": None, "argv": argv}
    want = p["rollback_to"] or wanted_system(p["nix"], flake, p["host"])
    result = {"changed": before != want, "before": before, "after": want, "argv": argv}
    result["diff"] = {"before": f"{before}\n", "after": f"{want}\n"}
    if before == want or module.check_mode:
        return result
    log_file = log_path(p["log_file"], f"nixos_deploy/{p['host']}.log")
    rebuild(argv, target, p["known_hosts"], log_file, p["timeout"])
    now = running_system(target, p["known_hosts"], p["action"])
    if now != want:
        undo = "rolled back, " if p["rollback_to"] else ""
        raise HostError(f"nixos-rebuild {undo}finished but {p['host']} runs {now}, not {want}", log_file=log_file)
    return {**result, "log_file": log_file}
