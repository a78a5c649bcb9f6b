"""A Proxmox emulator (fakepve) shaped like a nerv.homelab site, with a stand-in for the NixOS installer.

For the demo and the molecule scenarios - never a real machine:

    python hacking/fakepve_site.py inventory/demo/site.yml --state-dir DIR [--host 127.0.0.1 --port 0] --daemon
    python hacking/fakepve_site.py --stop --state-dir DIR

It serves fakepve with the site's nodes, storages and API token (the secret from the environment variable the
site names), and plays the guests' part: a VM the template pipeline started (tag nerv-phase-installing)
powers off a few seconds later, as the real unattended installer does once NixOS is installed; a started
clone of the site (tag nerv-site-<site>) gets a guest agent reporting its cloud-init address and an SSH host
key a moment after it boots. In DIR it
writes site.yml (the site pointed at the fake: url and ca_path), ca.pem, installer.iso (a small file standing
in for the ISO Nix cannot build here) and, with --daemon, pid and fakepve.log. --daemon returns once the fake
answers and stops it after --lifetime seconds at the latest.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

import yaml
from fakepve import FakePve, settle
from fakepve.certs import make_cert

INSTALL_SECONDS = 3
GIB = 1024**3


class SiteFake:
    """fakepve on its own event loop in a daemon thread, shaped like the site."""

    def __init__(
        self,
        site: dict,
        secret: str,
        state_dir: Path,
        host: str | None = None,
        port: int | None = None,
        boot_seconds: float = 2,
    ):
        url_host, url_port = site["proxmox"]["url"].split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.pve = pve = FakePve(host=host or url_host, port=int(url_port) if port is None else port)
        pve.nodes = {name: {"online": True} for name in site["proxmox"]["nodes"]}
        iso_storage = site["proxmox"].get("iso_storage", "local")
        pve.storages = {
            site["proxmox"]["storage"]: {"type": "lvmthin", "active": 1, "content": "images,rootdir", "files": set()},
            iso_storage: {"type": "dir", "active": 1, "content": "iso,vztmpl,backup,snippets", "files": set()},
        }
        pve.storages[site["proxmox"]["storage"]].update(vgname="pve", thinpool="data")
        pve.storages[iso_storage].update(path="/var/lib/vz", avail=50 * GIB)
        pve.apitokens[site["proxmox"]["token_id"]] = secret
        self.boot_seconds = boot_seconds
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="fakepve-site", daemon=True).start()
        certfile, keyfile, _der = make_cert(str(state_dir), hosts=(pve.host,))
        self.cafile = certfile
        self.call(pve.start(certfile, keyfile))
        asyncio.run_coroutine_threadsafe(self.play_installer(), self.loop)

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def play_installer(self) -> None:
        """The guests' part: the installer powers its VM off; a started clone's agent comes up a moment later."""
        seen: dict = {}
        while True:
            await asyncio.sleep(1)
            for vm in list(self.pve.vms):
                tags = str(vm.config.get("tags", ""))
                if vm.status != "running":
                    seen.pop(vm.vmid, None)
                    continue
                seen[vm.vmid] = seen.get(vm.vmid, 0) + 1
                if "nerv-phase-installing" in tags and seen[vm.vmid] >= INSTALL_SECONDS:
                    print(f"fakepve-site: installer VM {vm.vmid} powers off (simulated install done)", flush=True)
                    vm.status = vm.qmpstatus = "stopped"
                elif "nerv-site-" in tags and vm.agent is None and seen[vm.vmid] >= self.boot_seconds:
                    vm.agent = guest_agent(vm)

    def stop(self) -> None:
        self.call(settle())
        self.call(self.pve.stop())


def guest_agent(vm) -> dict:
    """What a booted clone's guest agent reports: its cloud-init address, and a host key made at first boot."""
    address = "192.0.2.10/24"
    for part in str(vm.config.get("ipconfig0", "")).split(","):
        if part.startswith("ip="):
            address = part[3:]
    ip, prefix = address.split("/")
    nic = {"ip-address": ip, "ip-address-type": "ipv4", "prefix": int(prefix)}
    lo = {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}
    key = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + secrets.token_bytes(32)).decode()
    return {
        "interfaces": [
            {"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [lo]},
            {"name": "ens18", "hardware-address": "bc:24:11:00:00:01", "ip-addresses": [nic]},
        ],
        "files": {"/etc/ssh/ssh_host_ed25519_key.pub": f"ssh-ed25519 {key} root@{vm.name}\n"},
    }


def write_state(site: dict, fake: SiteFake, state_dir: Path) -> None:
    site = dict(site, proxmox=dict(site["proxmox"], url=fake.pve.url, ca_path=fake.cafile, validate_certs=True))
    (state_dir / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    with (state_dir / "installer.iso").open("wb") as out:
        out.write(b"NERV.HOMELAB STAND-IN: not a bootable image; the real ISO comes from nix/ (docs/nix.md)\n")
        out.write(secrets.token_bytes(256 * 1024))


def start(args) -> SiteFake:
    site = yaml.safe_load(Path(args.site).read_text())
    if args.fit_fake:
        for host in site.get("hosts", []):
            if host.get("kind") == "vm":
                host.update(node=site["template"]["node"], disk=site["template"]["disk"])
    variable = site["proxmox"].get("token_secret_env", "PROXMOX_TOKEN_SECRET")
    secret = os.environ.get(variable)
    if not secret:
        sys.exit(f"fakepve_site: set {variable}, the token secret the site names")
    fake = SiteFake(site, secret, args.state_dir, args.host, args.port)
    write_state(site, fake, args.state_dir)
    return fake


def daemon(args) -> int:
    """Fork; the child serves, the parent returns once the child is ready (or failed)."""
    ready_read, ready_write = os.pipe()
    if os.fork():
        os.close(ready_write)
        answer = os.read(ready_read, 200).decode()
        print(answer or "fakepve_site: the server did not start; see fakepve.log in the state dir")
        return 0 if answer.startswith("https://") else 1
    os.close(ready_read)
    os.setsid()
    log = os.open(args.state_dir / "fakepve.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    for target, source in ((0, null), (1, log), (2, log)):
        os.dup2(source, target)
    try:
        fake = start(args)
        (args.state_dir / "pid").write_text(str(os.getpid()))
        os.write(ready_write, fake.pve.url.encode())
    finally:
        os.close(ready_write)
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(0))
    try:
        time.sleep(args.lifetime)
    finally:
        fake.stop()
    os._exit(0)


def stop(args) -> int:
    pid_file = args.state_dir / "pid"
    if not pid_file.exists():
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    pid_file.unlink()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", help="the site file to shape the fake like")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", help="address to serve on (default: the site URL's)")
    parser.add_argument("--port", type=int, help="port (default: the site URL's; 0: any free one)")
    parser.add_argument("--daemon", action="store_true", help="serve in the background; return once ready")
    parser.add_argument("--lifetime", type=int, default=1800, help="seconds a daemon serves at most")
    parser.add_argument("--stop", action="store_true", help="stop the daemon of --state-dir")
    parser.add_argument(
        "--fit-fake",
        action="store_true",
        help="in the site written to DIR, place every VM host on the template's node and give it the template's"
        " disk size: the fake's storages are local (a clone cannot land on another node), and fakepve does not"
        " apply a QEMU disk resize to the config (a resize would be sent again on every run)",
    )
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    if args.stop:
        return stop(args)
    if not args.site:
        parser.error("give the site file")
    return daemon(args) if args.daemon else 0


if __name__ == "__main__":
    sys.exit(main())
