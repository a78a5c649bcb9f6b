# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layer's Nix toolkit: the flake reference rules, running nix, evaluating many systems and homes at once, and
copying a flake to a host's store. Every module of the layer and the flake inventory use these.

Evaluation: one `nix eval` gives every selected entry's store path, each under builtins.tryEval so that one broken
host does not hide the others; the entries that failed are then evaluated one by one, without tryEval, for nix's own
message. Nothing is built.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, NervError
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import Done, run
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target

# Nix 2.8 ships `nix build`, `nix eval` and flakes as experimental: every nix command turns them on for itself.
NIX_FEATURES = ["--extra-experimental-features", "nix-command flakes"]
STORE_PATH = re.compile(r"^/nix/store/[a-z0-9]{32}-[^/\s]+$")
# A flake reference with a scheme (path:, github:, git+https:, ...), as opposed to a local directory.
REFERENCE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
PLATFORMS = ("nixos", "darwin")
# Attribute names nix accepts unquoted would be enough for hosts; homes are "user@host", so every name is quoted.
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
MESSAGE_LINES = 15

# The attribute path of what each kind of entry deploys; nix-darwin's darwinSystem returns the system as `.system`.
ATTRS = {
    "nixos": ("nixosConfigurations", "config.system.build.toplevel"),
    "darwin": ("darwinConfigurations", "system"),
    "home": ("homeConfigurations", "activationPackage"),
}

# `?` first: a missing entry is a clear answer, and a missing attribute is not something tryEval could catch.
EXPRESSION = """
let
  flake = builtins.getFlake (builtins.fromJSON %s);
  pathOf = value: builtins.unsafeDiscardStringContext value.outPath;
  attempt = output: name: get:
    if !(flake ? ${output}) || !(builtins.hasAttr name flake.${output}) then { missing = true; }
    else let result = builtins.tryEval (pathOf (get flake.${output}.${name})); in
      { missing = false; ok = result.success; path = if result.success then result.value else null; };
in %s
"""


class NixError(NervError):
    """A failure of nix or of the input it was given: msg plus the fields a failed task returns (log_tail, ...)."""

    def __init__(self, message, **details):
        super().__init__(message, **{key: value for key, value in details.items() if value is not None})


# --- flake references ------------------------------------------------------------------------------------------


def local_dir(flake: str, base_dir: str | None = None) -> str | None:
    """The directory of a local flake (a directory, or path:<directory>; relative to base_dir, else the current
    directory), or None for a reference with another scheme (github:, git+https:)."""
    if flake.startswith("path:"):
        flake = flake[len("path:") :].split("?", 1)[0]
    elif REFERENCE.match(flake):
        return None
    return os.path.normpath(os.path.join(base_dir or os.getcwd(), os.path.expanduser(flake)))


def flake_ref(flake: str, base_dir: str | None = None) -> str:
    """A flake reference for nix: a local directory as path:<absolute dir>, so the flake need not be a git repository
    and untracked files (hosts.json, secrets/) count as nix sees them; a path: reference keeps its query; any other
    reference (github:, git+https:) stays as it is."""
    local = local_dir(flake, base_dir)
    if local is None:
        return flake
    query = flake.partition("?")[2] if flake.startswith("path:") else ""
    return f"path:{local}" + (f"?{query}" if query else "")


def nix_string(value: str) -> str:
    """value as a Nix string literal (JSON's escapes are Nix's, and ${ is escaped)."""
    return json.dumps(value).replace("${", "\\${")


# --- running nix -----------------------------------------------------------------------------------------------


def run_nix(nix: str, args: list, what: str, timeout: float, *, env=None, error=NixError) -> Done:
    """nix with flakes on and args, its output captured; error when nix is not there or runs longer than timeout."""
    command = shutil.which(nix)
    if command is None:
        fix = "install Nix (Debian package nix-bin) or set nix to its path"
        raise error(f"option nix: command {nix!r} not found on PATH: {fix}")
    late = f"{what} did not finish in {timeout:g} seconds"
    return run([command, *NIX_FEATURES, *args], timeout, env=env, error=error, late=late)


def nix_message(stderr: str) -> str:
    """nix's error, without the warnings it prints first (substituters not reachable, dirty trees)."""
    lines = [line for line in stderr.strip().splitlines() if not line.startswith(("warning:", "(use '--show-trace'"))]
    start = next((i for i, line in enumerate(lines) if line.startswith("error")), 0)
    return "\n".join(lines[start:][:MESSAGE_LINES]) or "nix failed without a message"


def nix_sshopts(target: Target, known_hosts: str, extra: tuple = ()) -> dict:
    """The environment for the ssh that nix and nixos-rebuild start themselves: NIX_SSHOPTS with the pinned
    known_hosts, strictly, the identity and port, and any extra ssh options."""
    argv = target.ssh(known_hosts, strict=True)
    options = argv[1 : argv.index("-p")] + ["-p", str(target.port), *extra]
    return dict(os.environ, NIX_SSHOPTS=" ".join(shlex.quote(o) for o in options))


def copy_flake(nix: str, target: Target, known_hosts: str, ref: str, scheme: str, timeout: float) -> dict:
    """Copy the flake's source and inputs to the host's store (`nix flake archive --to <scheme>://user@address`):
    {argv, source, inputs}. scheme is ssh-ng for a system (root and the daemon), ssh for a user's home."""
    argv = ["flake", "archive", "--json", "--to", f"{scheme}://{target.user}@{target.address}", ref]
    done = run_nix(nix, argv, f"copying the flake to {target.host}", timeout, env=nix_sshopts(target, known_hosts))
    try:
        archived = json.loads(done.stdout) if done.rc == 0 else {}
    except ValueError:
        archived = {}
    if not STORE_PATH.fullmatch(str(archived.get("path", ""))):
        raise HostError(
            f"cannot copy the flake to {target.user}@{target.host} (exit {done.rc}): {nix_message(done.stderr)}"
        )
    return {"argv": [nix, *NIX_FEATURES, *argv], "source": archived["path"], "inputs": archived.get("inputs") or {}}


# --- evaluation ------------------------------------------------------------------------------------------------


def entry(kind: str, name: str, guarded: bool = True) -> str:
    """The Nix expression for one entry: an attempt (guarded), or the bare value (for nix's error message)."""
    output, attr = ATTRS[kind]
    if guarded:
        return f"attempt {nix_string(output)} {nix_string(name)} (c: c.{attr})"
    return f"pathOf flake.{output}.{nix_string(name)}.{attr}"


def expression(ref: str, hosts: list, homes: list) -> str:
    """One expression: {systems = {<host> = attempt; ...}; homes = {<user@host> = attempt; ...};}."""
    systems = " ".join(f"{nix_string(h['name'])} = {entry(h['platform'], h['name'])};" for h in hosts)
    users = " ".join(f"{nix_string(name)} = {entry('home', name)};" for name in homes)
    return EXPRESSION % (nix_string(json.dumps(ref)), f"{{ systems = {{ {systems} }}; homes = {{ {users} }}; }}")


def single(ref: str, kind: str, name: str, guarded: bool = False) -> str:
    """The expression of one entry; without tryEval (unguarded) it fails with nix's message when the entry does."""
    return EXPRESSION % (nix_string(json.dumps(ref)), entry(kind, name, guarded))


def eval_args(text: str) -> list:
    return ["eval", "--json", "--impure", "--expr", text]


def check_selection(hosts: list, homes: list) -> None:
    """Refuse a selection nix could not name, before running nix."""
    for index, host in enumerate(hosts):
        if host.get("platform") not in PLATFORMS:
            choices = ", ".join(PLATFORMS)
            raise NixError(f"hosts[{index}].platform must be one of {choices}, not {host.get('platform')!r}")
        if not NAME.fullmatch(host.get("name") or ""):
            raise NixError(f"hosts[{index}].name {host.get('name')!r} is not a configuration name")
    for name in homes:
        if not NAME.fullmatch(name):
            raise NixError(f"homes: {name!r} is not a homeConfigurations name")


def outcome(raw: dict, kind_of, messages) -> tuple:
    """({name: store path}, {name: failure}) of one section of the evaluation's JSON; messages(name) gives nix's
    error for an entry whose evaluation failed."""
    paths, failures = {}, {}
    for name, attempt in raw.items():
        output = ATTRS[kind_of(name)][0]
        if attempt.get("missing"):
            failures[name] = f"the flake has no {output}.{json.dumps(name)}"
        elif attempt.get("ok") and STORE_PATH.fullmatch(attempt.get("path") or ""):
            paths[name] = attempt["path"]
        elif attempt.get("ok"):
            failures[name] = f"{output}.{name} evaluates to {attempt.get('path')!r}, not a store path"
        else:
            failures[name] = messages(name)
    return paths, failures


def evaluate(nix: str, flake: str, hosts: list, homes: list | None = None, timeout: float = 600) -> dict:
    """{"systems": {host: path}, "homes": {name: path}, "flake": ref}; NixError naming every entry that failed."""
    homes = list(homes or [])
    check_selection(hosts, homes)
    ref = flake_ref(flake)
    platform = {h["name"]: h["platform"] for h in hosts}

    def message(kind: str, name: str) -> str:
        done = run_nix(nix, eval_args(single(ref, kind, name)), f"nix eval of {name}", timeout)
        return nix_message(done.stderr) if done.rc != 0 else "failed only when evaluated with the others"

    done = run_nix(nix, eval_args(expression(ref, hosts, homes)), f"nix eval of {ref}", timeout)
    if done.rc != 0:
        if not hosts and not homes:
            raise NixError(f"nix eval of {ref} failed: {nix_message(done.stderr)}")
        # an error tryEval cannot catch (abort, a missing attribute deep inside): find the entries one by one
        raw = _one_by_one(nix, ref, hosts, homes, timeout)
    else:
        raw = json.loads(done.stdout)
    systems, failed = outcome(raw.get("systems") or {}, platform.get, lambda n: message(platform[n], n))
    users, failed_homes = outcome(raw.get("homes") or {}, lambda n: "home", lambda n: message("home", n))
    failed.update({f"home {name}": why for name, why in failed_homes.items()})
    if failed:
        raise NixError(_failure(ref, hosts, homes, failed), failures=failed, systems=systems, homes=users)
    return {"flake": ref, "systems": systems, "homes": users}


def _failure(ref: str, hosts: list, homes: list, failed: dict) -> str:
    """One entry asked for: what it is and why; several: every failure, one a line."""
    if len(hosts) + len(homes) == 1:
        kind, name = ("home", homes[0]) if homes else (hosts[0]["platform"], hosts[0]["name"])
        return f"cannot evaluate {ATTRS[kind][0]}.{json.dumps(name)} of {ref}: {next(iter(failed.values()))}"
    lines = "\n".join(f"- {name}: {why}" for name, why in sorted(failed.items()))
    return f"{len(failed)} of {len(hosts) + len(homes)} evaluations of {ref} failed:\n{lines}"


def _one_by_one(nix: str, ref: str, hosts: list, homes: list, timeout: float) -> dict:
    """Every entry evaluated on its own: ok with its path, or not ok (its message is read later)."""
    raw = {"systems": {}, "homes": {}}
    entries = [("systems", h["platform"], h["name"]) for h in hosts] + [("homes", "home", n) for n in homes]
    for section, kind, name in entries:
        done = run_nix(nix, eval_args(single(ref, kind, name, guarded=True)), f"nix eval of {name}", timeout)
        raw[section][name] = json.loads(done.stdout) if done.rc == 0 else {"ok": False}
    return raw
