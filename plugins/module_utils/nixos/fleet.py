# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evaluating the systems (and Home Manager homes) of a flake's hosts before a fleet deploy touches any of them.

One `nix eval` gives every selected host's store path, each under builtins.tryEval so that one broken host does
not hide the others; the hosts that failed are then evaluated one by one, without tryEval, for nix's own message.
Nothing is built: evaluation only.
"""

from __future__ import annotations

import json
import re
import shutil

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.deploy import NIX_FEATURES, STORE_PATH, flake_ref

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


def nix_string(value: str) -> str:
    """value as a Nix string literal (JSON's escapes are Nix's, and ${ is escaped)."""
    return json.dumps(value).replace("${", "\\${")


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


def single(ref: str, kind: str, name: str) -> str:
    """The expression of one entry without tryEval: it fails with nix's message when the entry does."""
    return EXPRESSION % (nix_string(json.dumps(ref)), entry(kind, name, guarded=False))


def eval_argv(nix: str, text: str) -> list:
    return [nix, *NIX_FEATURES, "eval", "--json", "--impure", "--expr", text]


def run_nix(nix: str, text: str, timeout: float):
    """(returncode, stdout, stderr) of `nix eval --json --expr text`."""
    done = run(eval_argv(nix, text), timeout, late=f"nix eval did not finish in {timeout:g} seconds")
    return done.rc, done.stdout, done.stderr


def nix_message(stderr: str) -> str:
    """nix's error, without the warnings it prints first (substituters not reachable, dirty trees)."""
    lines = [line for line in stderr.strip().splitlines() if not line.startswith(("warning:", "(use '--show-trace'"))]
    start = next((i for i, line in enumerate(lines) if line.startswith("error")), 0)
    return "\n".join(lines[start:][:MESSAGE_LINES]) or "nix eval failed without a message"


def check_selection(hosts: list, homes: list) -> None:
    """Refuse a selection nix could not name, before running nix."""
    for index, host in enumerate(hosts):
        if host.get("platform") not in PLATFORMS:
            choices = ", ".join(PLATFORMS)
            raise HostError(f"hosts[{index}].platform must be one of {choices}, not {host.get('platform')!r}")
        if not NAME.fullmatch(host.get("name") or ""):
            raise HostError(f"hosts[{index}].name {host.get('name')!r} is not a configuration name")
    for name in homes:
        if not NAME.fullmatch(name) or "@" not in name:
            raise HostError(f"homes: {name!r} is not a homeConfigurations name of the form user@host")


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
    """{"systems": {host: path}, "homes": {name: path}, "flake": ref}; HostError naming every entry that failed."""
    homes = list(homes or [])
    check_selection(hosts, homes)
    command = shutil.which(nix)
    if command is None:
        raise HostError(f"nix: command {nix!r} not found on PATH: install Nix (Debian package nix-bin) or set nix")
    ref = flake_ref(flake)
    platform = {h["name"]: h["platform"] for h in hosts}

    def message(kind: str, name: str) -> str:
        code, _out, err = run_nix(command, single(ref, kind, name), timeout)
        return nix_message(err) if code != 0 else "failed only when evaluated with the others"

    code, out, err = run_nix(command, expression(ref, hosts, homes), timeout)
    if code != 0:
        if not hosts and not homes:
            raise HostError(f"nix eval of {ref} failed: {nix_message(err)}")
        # an error tryEval cannot catch (abort, a missing attribute deep inside): find the entries one by one
        raw = {"systems": {h: {"ok": False} for h in platform}, "homes": {h: {"ok": False} for h in homes}}
        raw = _one_by_one(command, ref, hosts, homes, timeout, raw)
    else:
        raw = json.loads(out)
    systems, failed = outcome(raw.get("systems") or {}, platform.get, lambda n: message(platform[n], n))
    users, failed_homes = outcome(raw.get("homes") or {}, lambda n: "home", lambda n: message("home", n))
    failed.update({f"home {name}": why for name, why in failed_homes.items()})
    if failed:
        lines = "\n".join(f"- {name}: {why}" for name, why in sorted(failed.items()))
        raise HostError(
            f"{len(failed)} of {len(hosts) + len(homes)} evaluations of {ref} failed:\n{lines}",
            failures=failed,
            systems=systems,
            homes=users,
        )
    return {"flake": ref, "systems": systems, "homes": users}


def _one_by_one(command: str, ref: str, hosts: list, homes: list, timeout: float, raw: dict) -> dict:
    """raw with every entry evaluated on its own: ok with its path, or not ok (its message is read later)."""
    entries = [("systems", h["platform"], h["name"]) for h in hosts] + [("homes", "home", n) for n in homes]
    for section, kind, name in entries:
        code, out, _err = run_nix(command, EXPRESSION % (nix_string(json.dumps(ref)), entry(kind, name)), timeout)
        raw[section][name] = json.loads(out) if code == 0 else {"ok": False}
    return raw
