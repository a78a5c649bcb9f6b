"""Hosts for Home Manager deploys: network namespaces with a real sshd where the non-root user alice logs in, a
private /usr/local/bin holding a recording fake home-manager, and nix wrappers that reach a real nix daemon (the
host shares the test machine's store, as a multi-user Nix install would have it).

alice's home, the authorized keys and the daemon's socket live in a directory under /tmp that alice can reach
(pytest's own temporary directories are private to root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ._netns import Lan, Machine, keygen
from ._skips import require_commands

FAKE = Path(__file__).resolve().parent / "fixtures" / "fake_home_manager.py"
UID = 23456
USER = "alice"
# A flake without inputs whose home generation is a plain derivation (nixpkgs is not reachable here): its
# activate script links the profile as Home Manager's does and writes the one file the home manages.
FLAKE = """{
  outputs = { self }: let
    versions = @VERSIONS@;
    generation = host: version: derivation {
      name = "home-manager-generation";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" ''
        /bin/mkdir $out
        /bin/cat > $out/activate <<'EOF'
        #!/bin/sh
        set -e
        generation=$(/usr/bin/dirname "$(/bin/readlink -f "$0")")
        profiles="''${XDG_STATE_HOME:-$HOME/.local/state}/nix/profiles"
        /bin/mkdir -p "$profiles" "$HOME/.config"
        n=1
        while [ -e "$profiles/home-manager-$n-link" ]; do n=$((n + 1)); done
        /bin/ln -s "$generation" "$profiles/home-manager-$n-link"
        /bin/ln -sfn "home-manager-$n-link" "$profiles/home-manager"
        echo "version=${version}" > "$HOME/.config/app.conf"
        echo "activated $generation on ${host}"
        EOF
        /bin/chmod +x $out/activate
      '' ];
    };
  in {
    homeConfigurations = builtins.listToAttrs (map (host: {
      name = "alice@${host}";
      value.activationPackage = generation host versions.${host};
    }) (builtins.attrNames versions));
    # what the nerv.homelab.flake inventory reads
    nixosConfigurations = builtins.mapAttrs
      (host: v: { config.nixpkgs.hostPlatform.system = "x86_64-linux"; }) versions;
    deploy.nodes = builtins.mapAttrs (host: v: { hostname = (builtins.fromJSON ''@ADDRESSES@'').${host}; }) versions;
    @EXTRA@
  };
}
"""
NIX_WRAPPER = """#!/bin/sh
export NIX_REMOTE=daemon NIX_DAEMON_SOCKET_PATH={socket}
exec /usr/bin/{command} "$@"
"""


class HomeFleet:
    """Hosts (name -> address) on one LAN (lan), alice's home on each (a home directory of its own per host), and
    a flake with a home alice@<host> for each, which the nerv.homelab.flake inventory also reads."""

    def __init__(self, tmp_path: Path, hosts: dict, extra_outputs: str = ""):
        require_commands("sshd", "ssh", "ssh-keygen", "nix", "nix-daemon")
        self.tmp, self.hosts, self.extra = tmp_path, hosts, extra_outputs
        self.shared = Path(tempfile.mkdtemp(prefix="nerv-home-", dir="/tmp"))
        self.shared.chmod(0o755)
        self.record = self.shared / "record.jsonl"
        self.record.touch(mode=0o666)
        os.chown(self.record, UID, UID)
        self.client_key = keygen(tmp_path / "id_ed25519")
        self.authorized = self.shared / "authorized_keys"
        self.authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        self.authorized.chmod(0o644)
        self.known_hosts = tmp_path / "known_hosts"
        self.host_keys = {name: keygen(tmp_path / f"{name}_host_ed25519_key") for name in hosts}
        self.pin()
        self.flake = tmp_path / "flake"
        self.flake.mkdir()
        self.versions = dict.fromkeys(hosts, "1")
        self.write_flake()
        self.daemon = self._nix_daemon()
        try:
            self.lan = Lan(tmp_path, next(iter(hosts.values())).rsplit(".", 1)[0] + ".1", 24)
            local_bin = self._local_bin()
            for index, (name, address) in enumerate(hosts.items()):
                machine = Machine(host_key=self.host_keys[name], authorized_keys=self.authorized, hostname=name,
                                  etc_files=self._accounts(name), local_bin=local_bin)  # fmt: skip
                self.lan.add(f"58:47:ca:77:03:{index + 0x31:02x}", address, machine=machine)
        except BaseException:
            self.close()
            raise

    def home(self, host: str) -> Path:
        return self.shared / f"home-{host}"

    def _accounts(self, host: str) -> dict:
        """The host's private /etc passwd and group: the machine's own plus alice, with her home on this host."""
        home = self.home(host)
        home.mkdir(mode=0o755)
        os.chown(home, UID, UID)
        passwd = Path("/etc/passwd").read_text() + f"{USER}:x:{UID}:{UID}:Alice:{home}:/bin/sh\n"
        return {"passwd": passwd, "group": Path("/etc/group").read_text() + f"{USER}:x:{UID}:\n"}

    def _nix_daemon(self) -> subprocess.Popen:
        """A nix daemon on a socket of our own: alice's nix (and `nix-store --serve` for nix copy) goes through it."""
        self.socket = self.shared / "daemon" / "socket"
        env = dict(os.environ, NIX_DAEMON_SOCKET_PATH=str(self.socket))
        daemon = subprocess.Popen([shutil.which("nix-daemon")], env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10  # it makes the socket at once; a few ms
        while time.monotonic() < deadline:
            if self.socket.exists():
                (self.shared / "daemon").chmod(0o755)
                return daemon
            time.sleep(0.05)
        daemon.kill()
        raise RuntimeError(f"nix-daemon did not make {self.socket}")

    def _local_bin(self) -> Path:
        """What the hosts have in /usr/local/bin: home-manager (the recording fake) and nix wrappers for the daemon."""
        local = self.shared / "local-bin"
        local.mkdir(mode=0o755)
        for command in ("nix", "nix-store", "nix-env", "nix-build"):
            (local / command).write_text(NIX_WRAPPER.format(socket=self.socket, command=command))
        shutil.copy(FAKE, local / "fake_home_manager.py")
        (local / "home-manager").write_text(
            f"#!/bin/sh\nexport FAKE_HOME_MANAGER_RECORD={self.record}\n"
            f'exec /usr/bin/python3 {local}/fake_home_manager.py "$@"\n'
        )
        for path in local.iterdir():
            path.chmod(0o755)
        return local

    def pin(self, other: Path | None = None) -> None:
        """known_hosts pinning each host's key (or, with other, that key for every host)."""
        lines = []
        for name, address in self.hosts.items():
            public = " ".join(Path(f"{other or self.host_keys[name]}.pub").read_text().split()[:2])
            lines.append(f"{address} {public}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def version(self, value: str, host: str | None = None) -> None:
        """The home's version (what its activation writes) for host, or for every host."""
        for name in [host] if host else self.hosts:
            self.versions[name] = value
        self.write_flake()

    def write_flake(self) -> None:
        versions = "{ " + " ".join(f'{name} = "{value}";' for name, value in self.versions.items()) + " }"
        text = FLAKE.replace("@VERSIONS@", versions).replace("@ADDRESSES@", json.dumps(self.hosts))
        (self.flake / "flake.nix").write_text(text.replace("@EXTRA@", self.extra))

    def runs(self) -> list:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def profile(self, host: str) -> Path:
        return self.home(host) / ".local" / "state" / "nix" / "profiles" / "home-manager"

    def generation(self, host: str) -> str | None:
        """Where alice's profile on host points, read on the test machine (the hosts share its filesystem)."""
        return os.path.realpath(self.profile(host)) if os.path.lexists(self.profile(host)) else None

    def managed_file(self, host: str) -> str:
        return (self.home(host) / ".config" / "app.conf").read_text().strip()

    def close(self) -> None:
        if getattr(self, "lan", None):
            self.lan.close()
        self.daemon.terminate()
        try:
            self.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
        shutil.rmtree(self.shared, ignore_errors=True)
