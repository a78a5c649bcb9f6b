# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Home Manager profile of the deploy engine (deploy.run): one user's home on one host, switched over pinned SSH
as that user, with the same rules as a system deploy - evaluated first, switched only when the generation differs,
health-checked afterwards and rolled back to the previous generation when a check fails. There is no watchdog: a
home's switch does not cut the host's network.

What runs where:
- on the controller: `nix eval` of homeConfigurations."<configuration>".activationPackage (nothing is built), and
  `nix flake archive --to ssh://<user>@<address>` copying the flake's source and inputs to the host's store, with
  NIX_SSHOPTS pinning the host key (ssh://, not ssh-ng://: a user who is not trusted by the host's daemon can add
  the source over the legacy protocol, docs/home-manager.md);
- on the host, as the user, each over its own SSH connection with the pinned key: reading the Home Manager profile,
  `home-manager switch --flake <source>#<configuration>` (the host builds or substitutes the generation itself, as
  `home-manager switch` always does), the health checks, and on failure `<previous generation>/activate`.
"""

from __future__ import annotations

import re
import shlex

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError
from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target, ssh_run
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import health, nix
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.deploy import run_step

# A login name as useradd accepts it (and the Home Manager convention <user>@<host> needs no quoting of it).
USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
# The configuration goes inside a quoted Nix attribute name: no quote, backslash, interpolation or whitespace.
CONFIGURATION = re.compile(r'^[^"\\$\s]+$')

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


class Home:
    """One user's Home Manager home: its profile's generation is what runs, `<generation>/activate` goes back."""

    noun = "generation"
    each = True  # each check retried on its own until it passes, the first that never does ends them
    recovers = True

    def __init__(self, p: dict):
        self.p, self.link = p, None
        self.label = f"{p['user']}@{p['host']}"
        self.what = f"a Home Manager switch of {p['user']} on {p['host']}"
        self.log_name = f"home_manager/{p['user']}@{p['host']}.log"
        self.configuration = p.get("configuration") or f"{p['user']}@{p['host']}"

    def check(self) -> None:
        """Refuse options that cannot name one user's home on one host."""
        p = self.p
        if not is_dns_label(p["host"]):
            raise HostError(f"host {p['host']!r} is not a DNS label: give the host's name as the flake knows it")
        if not USER.fullmatch(p["user"]):
            raise HostError(f"user {p['user']!r} is not a login name: give the user the home belongs to (e.g. alice)")
        if not CONFIGURATION.fullmatch(self.configuration):
            raise HostError(
                f"configuration {self.configuration!r} cannot be a homeConfigurations attribute: leave out quotes, "
                "backslashes, $ and spaces (the default is <user>@<host>)"
            )
        if p.get("activation") is not None and not nix.STORE_PATH.fullmatch(p["activation"]):
            raise HostError(f"activation {p['activation']!r} is not a store path: give the evaluated activationPackage")
        if p["health_timeout"] <= 0:
            raise HostError(f"health_timeout {p['health_timeout']} must be a positive number of seconds")

    def result(self) -> dict:
        return {"configuration": self.configuration, "profile": self.link}

    def given(self) -> str | None:
        return self.p["activation"]

    def running(self, target: Target) -> str | None:
        """The generation the user's profile points at now (None: no profile yet), over pinned SSH as the user."""
        failure = f"cannot read {target.user}'s Home Manager profile on {target.host} at {target.address}"
        self.link, generation = parse_profile(ssh_run(target, self.p["known_hosts"], [PROFILE_SCRIPT], failure))
        return generation

    def wanted(self) -> str:
        if self.p["activation"]:
            return self.p["activation"]
        homes = nix.evaluate(self.p["nix"], self.p["flake"], [], [self.configuration], self.p["timeout"])["homes"]
        return homes[self.configuration]

    def watchdog(self, _before):
        return None

    def activate(self, target: Target, _want: str, log_file: str) -> dict:
        """Copy the flake to the host's store, then home-manager switch there."""
        p = self.p
        copied = nix.copy_flake(p["nix"], target, p["known_hosts"], nix.flake_ref(p["flake"]), "ssh", p["timeout"])
        command = switch_command(p, copied["source"], self.configuration)
        run_step("ssh", [shlex.join(command)], target, p["known_hosts"], log_file, p["timeout"])
        return {"copy": copied, "argv": command}

    def checks(self) -> list:
        return [health.PREDICATES["login"], *health.commands(self.p["health_checks"])]

    def differs(self, now: str | None, want: str) -> str:
        return f"home-manager switch finished but the profile points at {now}, not {want}"

    def roll_back(self, target: Target, before: str, log_file: str) -> list:
        """Activate the previous generation again (every Home Manager generation has an activate script)."""
        argv = [shlex.quote(f"{before}/activate")]
        run_step("ssh", argv, target, self.p["known_hosts"], log_file, self.p["timeout"], why="rollback")
        return argv


def switch_command(p: dict, source: str, configuration: str) -> list:
    """home-manager switch of the copied source, as run on the host."""
    return [p["home_manager"], "switch", "--flake", f"{source}#{configuration}", *(p.get("extra_args") or [])]


def parse_profile(output: str) -> tuple:
    """(profile link, generation) from PROFILE_SCRIPT's output; (None, None) when the user has no profile."""
    line = output.strip()
    if not line:
        return None, None
    profile, generation = line.rsplit(" ", 1) if " " in line else ("", line)
    if not nix.STORE_PATH.fullmatch(generation):
        raise HostError(f"the Home Manager profile {profile} points at {generation!r}, not at a store path")
    return profile, generation
