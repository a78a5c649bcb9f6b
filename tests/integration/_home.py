"""A host for Home Manager deploys: a network namespace with a real sshd where the non-root user alice logs in, a
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
  outputs = { self }: {
    homeConfigurations."alice@@HOST@".activationPackage = derivation {
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
        echo "version=@VERSION@" > "$HOME/.config/app.conf"
        echo "activated $generation"
        EOF
        /bin/chmod +x $out/activate
      '' ];
    };
  };
}
"""
NIX_WRAPPER = """#!/bin/sh
export NIX_REMOTE=daemon NIX_DAEMON_SOCKET_PATH={socket}
exec /usr/bin/{command} "$@"
"""


class HomeHost:
    """One host on its own LAN (lan), alice's home on it, and a flake with alice's home for it."""

    def __init__(self, tmp_path: Path, address: str, hostname: str = "mini1"):
        require_commands("sshd", "ssh", "ssh-keygen", "nix", "nix-daemon")
        self.tmp, self.address, self.hostname = tmp_path, address, hostname
        self.shared = Path(tempfile.mkdtemp(prefix="nerv-home-", dir="/tmp"))
        self.shared.chmod(0o755)
        self.home = self._alice_dir("home")
        self.record = self.shared / "record.jsonl"
        self.record.touch(mode=0o666)
        os.chown(self.record, UID, UID)
        self.client_key = keygen(tmp_path / "id_ed25519")
        authorized = self.shared / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        authorized.chmod(0o644)
        self.host_key = keygen(tmp_path / "ssh_host_ed25519_key")
        self.known_hosts = tmp_path / "known_hosts"
        self.pin(self.host_key)
        self.flake = tmp_path / "flake"
        self.flake.mkdir()
        self.version("1")
        self.daemon = self._nix_daemon()
        self.lan = Lan(tmp_path, address.rsplit(".", 1)[0] + ".1", 24)
        machine = Machine(
            host_key=self.host_key,
            authorized_keys=authorized,
            hostname=hostname,
            etc_files=self._accounts(),
            local_bin=self._local_bin(),
        )
        self.lan.add("58:47:ca:77:00:31", address, machine=machine)

    def _alice_dir(self, name: str) -> Path:
        path = self.shared / name
        path.mkdir(mode=0o755)
        os.chown(path, UID, UID)
        return path

    def _accounts(self) -> dict:
        """The private /etc's passwd and group: the machine's own plus alice."""
        passwd = Path("/etc/passwd").read_text() + f"{USER}:x:{UID}:{UID}:Alice:{self.home}:/bin/sh\n"
        return {"passwd": passwd, "group": Path("/etc/group").read_text() + f"{USER}:x:{UID}:\n"}

    def _nix_daemon(self) -> subprocess.Popen:
        """A nix daemon on a socket of our own: alice's nix (and `nix-store --serve` for nix copy) goes through it."""
        self.socket = self.shared / "daemon" / "socket"
        env = dict(os.environ, NIX_DAEMON_SOCKET_PATH=str(self.socket))
        daemon = subprocess.Popen([shutil.which("nix-daemon")], env=env, stderr=subprocess.DEVNULL)
        for _ in range(200):  # it makes the socket at once; a few ms
            if self.socket.exists():
                (self.shared / "daemon").chmod(0o755)
                return daemon
            time.sleep(0.05)
        daemon.kill()
        raise RuntimeError(f"nix-daemon did not make {self.socket}")

    def _local_bin(self) -> Path:
        """What the host has in /usr/local/bin: home-manager (the recording fake) and nix wrappers for the daemon."""
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

    def pin(self, key: Path) -> None:
        public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        self.known_hosts.write_text(f"{self.address} {public}\n")

    def version(self, value: str) -> None:
        (self.flake / "flake.nix").write_text(FLAKE.replace("@VERSION@", value).replace("@HOST@", self.hostname))

    def runs(self) -> list:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def profile(self) -> Path:
        return self.home / ".local" / "state" / "nix" / "profiles" / "home-manager"

    def generation(self) -> str | None:
        """Where alice's profile points, read on the test machine (the host shares its filesystem)."""
        return os.path.realpath(self.profile()) if os.path.lexists(self.profile()) else None

    def managed_file(self) -> str:
        return (self.home / ".config" / "app.conf").read_text().strip()

    def close(self) -> None:
        self.lan.close()
        self.daemon.terminate()
        try:
            self.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
        shutil.rmtree(self.shared, ignore_errors=True)
