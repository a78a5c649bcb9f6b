"""A Proxmox emulator (fakepve) shaped like a nerv.homelab site, with a stand-in for the NixOS installer.

For the demo, the tests and the molecule scenarios - never a real machine:

    python hacking/fakepve_site.py inventory/demo/site.yml --state-dir DIR [--host 127.0.0.1 --port 0] --daemon
    python hacking/fakepve_site.py --stop --state-dir DIR

It serves fakepve with the site's nodes, storages and API token (the secret from the environment variable the
site names) as a cluster the site was written for: the site's resource pool exists, every node has Proxmox's
default storages (local, local-lvm), and the site's own VM storage is shared (Ceph RBD) when the site clones VMs
onto nodes other than the template's, which Proxmox does only from shared storage. fakepve lacks the QEMU disk
resize; SiteFakePve adds it, after qemu-server. It plays the guests' part: a VM the template pipeline started (tag
nerv-phase-installing) powers off a few seconds later, as the real unattended installer does once NixOS is
installed; a started clone of the site (tag nerv-site-<site>) gets a guest agent reporting its cloud-init address
and an SSH host key a moment after it boots. In DIR it writes site.yml (the site pointed at the fake: url and
ca_path), fakepve.crt (the certificate it serves, which is its own CA: the ca_path), installer.iso (a small file
standing in for the ISO Nix cannot build here) and, with --daemon, pid and fakepve.log. --daemon returns once the
fake answers and stops it after --lifetime seconds at the latest.
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
from fakepve.lxc import format_size, parse_size
from fakepve.model import PveError, TaskError
from fakepve.qemu import is_cdrom, join_drive, split_drive

INSTALL_SECONDS = 3
GIB = 1024**3
# What every Proxmox VE node has after installation: the directory storage `local` and the LVM-thin `local-lvm`.
PVE_DEFAULT_STORAGES = {
    "local": {"type": "dir", "path": "/var/lib/vz", "content": "iso,vztmpl,backup,snippets"},
    "local-lvm": {"type": "lvmthin", "vgname": "pve", "thinpool": "data", "content": "images,rootdir"},
}


def site_storages(site: dict) -> dict:
    """storage.cfg of a cluster the site was written for: Proxmox's defaults, the site's ISO storage as a directory,
    and its VM storage as shared Ceph RBD when the site puts VMs on nodes other than the template's (Proxmox clones
    across nodes only from shared storage), as node-local LVM-thin otherwise. A default storage keeps its own kind:
    a site that clones local-lvm onto another node gets Proxmox's refusal, as it would on a real cluster."""
    storages = {name: dict(spec, active=1, files=set()) for name, spec in PVE_DEFAULT_STORAGES.items()}
    storages["local"]["avail"] = 50 * GIB
    pmx, template = site["proxmox"], site.get("template") or {}
    iso = pmx.get("iso_storage", "local")
    if iso not in storages:
        storages[iso] = {"type": "dir", "path": f"/mnt/pve/{iso}", "active": 1, "avail": 50 * GIB, "files": set(),
                         "content": "iso,vztmpl,backup,snippets", "shared": 1}  # fmt: skip
    vm_storage = pmx["storage"]
    if vm_storage not in storages:
        nodes = {h.get("node") for h in site.get("hosts", []) if h.get("kind") == "vm"} - {template.get("node")}
        if nodes:
            storages[vm_storage] = {"type": "rbd", "pool": vm_storage, "content": "images,rootdir", "shared": 1}
        else:
            storages[vm_storage] = {"type": "lvmthin", "vgname": vm_storage, "thinpool": "data"}
            storages[vm_storage]["content"] = "images,rootdir"
        storages[vm_storage].update(active=1, files=set())
    return storages


def shape_cluster(pve: FakePve, site: dict, secret: str) -> None:
    """The site's nodes (and the template's), storages, resource pool and API token on a fresh fake."""
    template_node = (site.get("template") or {}).get("node")
    nodes = site["proxmox"].get("nodes") or sorted({h["node"] for h in site.get("hosts", []) if h.get("node")})
    nodes = [*nodes, *([template_node] if template_node else [])]
    pve.nodes = {name: {"online": True} for name in dict.fromkeys(nodes)}
    pve.storages = site_storages(site)
    if site["proxmox"].get("pool"):
        pve.pools[site["proxmox"]["pool"]] = set()  # the resource pool the site names, made by its admin
    pve.apitokens[site["proxmox"]["token_id"]] = secret


class SiteFakePve(FakePve):
    """fakepve plus the QEMU call a site's run makes that fakepve 0.5 lacks: PUT /nodes/{node}/qemu/{vmid}/resize.

    Follows qemu-server 9.2.6 src/PVE/API2/Qemu.pm (resize_vm): a task of type resize; in it, the disk must exist and
    not be a CD-ROM, the size is absolute or, with a leading +, added to the current one; a smaller size fails
    ("shrinking disks is not supported"), the same size changes nothing, a larger one is written to the drive."""

    def _routes_nerv_qemu_resize(self):
        return [("PUT", "/nodes/{node}/qemu/{vmid}/resize", self._qm_resize)]

    async def _qm_resize(self, v, user):
        vm = self.find(v["node"], v["vmid"])
        disk, text = v["disk"], str(v["size"])

        async def body():
            try:
                self._check_lock(vm)
            except PveError as error:
                raise TaskError(error.message) from error
            if not vm.config.get(disk):
                raise TaskError(f"disk '{disk}' does not exist")
            volume, props = split_drive(vm.config[disk])
            if is_cdrom(volume, props):
                raise TaskError("you can't resize a cdrom")
            size = parse_size(props.get("size", "0")) or 0
            wanted = parse_size(text.lstrip("+")) + (size if text.startswith("+") else 0)
            if wanted < size:
                raise TaskError("shrinking disks is not supported")
            if wanted != size:
                vm.config[disk] = join_drive(volume, dict(props, size=format_size(wanted)))

        return await self.task(vm.node, "resize", vm.vmid, user, body, vm=vm)


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
        self.pve = pve = SiteFakePve(host=host or url_host, port=int(url_port) if port is None else port)
        shape_cluster(pve, site, secret)
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
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    if args.stop:
        return stop(args)
    if not args.site:
        parser.error("give the site file")
    return daemon(args) if args.daemon else 0


if __name__ == "__main__":
    sys.exit(main())
