"""A fakepve cluster shaped like a site file: its nodes, storages, API token and NixOS template.

The fake is served in-process on its own event loop thread, on 127.0.0.1 with a port the system picks,
over TLS with a throwaway certificate that clients verify as their CA.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fakepve import FakePve, settle

from ._sites import REPO, site_schema

# hacking/ holds the emulators the tests, the demo and the molecule scenarios share
if str(REPO / "hacking") not in sys.path:
    sys.path.insert(0, str(REPO / "hacking"))
from fakepve_site import SiteFakePve, shape_cluster  # noqa: E402

HOST = "127.0.0.1"
ROOT = "root@pam"
CALL_TIMEOUT = 30
# Used only when plugins/module_utils/site/schema.py cannot be read; the schema is the reference.
FALLBACK_DEFAULTS = {
    "template": {"name": "nixos-base", "cores": 2, "memory": 2048, "disk": 20, "bios": "ovmf"},
    "proxmox": {"iso_storage": "local", "token_secret_env": "PROXMOX_TOKEN_SECRET"},
}


def load_site(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        site = yaml.safe_load(fh)
    if not isinstance(site, dict):
        raise ValueError(f"{path}: a site file is a YAML mapping")
    return site


def schema_default(section: str, key: str) -> Any:
    """The default the site schema gives section.key (template.cores, proxmox.iso_storage, ...)."""
    try:
        return site_schema()["properties"][section]["properties"][key]["default"]
    except (OSError, AttributeError, KeyError, ImportError):
        return FALLBACK_DEFAULTS[section][key]


@dataclass(frozen=True)
class SiteShape:
    """What of a site file the fake cluster mirrors."""

    nodes: tuple[str, ...]
    storage: str
    iso_storage: str
    bridge: str
    token_id: str
    token_secret_env: str
    template: dict[str, Any]

    @classmethod
    def from_site(cls, site: dict[str, Any]) -> SiteShape:
        pmx = site.get("proxmox")
        if not isinstance(pmx, dict):
            raise ValueError("the site has no proxmox section: nothing to build a fake cluster from")
        template = dict(site.get("template") or {})
        if "vmid" not in template or "node" not in template:
            raise ValueError("the site's template needs vmid and node")
        for key in ("name", "cores", "memory", "disk", "bios"):
            template.setdefault(key, schema_default("template", key))
        nodes = pmx.get("nodes") or sorted({h["node"] for h in site.get("hosts", []) if h.get("node")})
        nodes = tuple(dict.fromkeys([*nodes, template["node"]]))
        return cls(
            nodes=nodes,
            storage=pmx["storage"],
            iso_storage=pmx.get("iso_storage") or schema_default("proxmox", "iso_storage"),
            bridge=pmx["bridge"],
            token_id=pmx["token_id"],
            token_secret_env=pmx.get("token_secret_env") or schema_default("proxmox", "token_secret_env"),
            template=template,
        )

    def template_config(self) -> dict[str, Any]:
        """The create parameters of the template VM, as the template role would make it."""
        t = self.template
        config = {
            "vmid": t["vmid"],
            "name": t["name"],
            "cores": t["cores"],
            "memory": t["memory"],
            "ostype": "l26",
            "scsihw": "virtio-scsi-single",
            "scsi0": f"{self.storage}:{t['disk']}",
            "ide2": f"{self.storage}:cloudinit",
            "net0": f"virtio,bridge={self.bridge}",
            "agent": "1",
            "bios": t["bios"],
            "serial0": "socket",
        }
        if t["bios"] == "ovmf":
            config["efidisk0"] = f"{self.storage}:1,efitype=4m,pre-enrolled-keys=0"
        return config


class LoopThread:
    """An asyncio loop in a daemon thread, where the fake lives."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CALL_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class PveSite:
    """A running fake cluster built from a site file, with the site's API token."""

    site_path: Path
    site: dict[str, Any]
    shape: SiteShape
    pve: FakePve
    cafile: str
    token_secret: str
    root_password: str
    time_scale: float = 0
    _loop: LoopThread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.pve.url

    @property
    def host(self) -> str:
        return self.pve.host

    @property
    def port(self) -> int:
        return self.pve.port

    @property
    def token_id(self) -> str:
        return self.shape.token_id

    @property
    def template_vmid(self) -> int:
        return self.shape.template["vmid"]

    @property
    def env(self) -> dict[str, str]:
        """The environment a module reads the token secret from, as the site names it."""
        return {self.shape.token_secret_env: self.token_secret}

    def proxmox_env(self, secret: str | None = None) -> dict[str, str]:
        """The connection as a user sets it for the modules: PROXMOX_* variables (the secret, or another)."""
        return {
            "PROXMOX_URL": self.url,
            "PROXMOX_TOKEN_ID": self.token_id,
            "PROXMOX_TOKEN_SECRET": secret or self.token_secret,
            "PROXMOX_CA_PATH": self.cafile,
        }

    def site_for_fake(self) -> dict[str, Any]:
        """The site with proxmox.url and proxmox.ca_path pointing at this fake."""
        site = copy.deepcopy(self.site)
        site["proxmox"].update(url=self.url, ca_path=self.cafile, validate_certs=True)
        return site

    def write_site(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.site_for_fake(), sort_keys=False))
        return path

    def api(self, **kwargs: Any):
        """A proxmoxer client logged in with the site's token, verifying TLS against the fake's certificate."""
        from proxmoxer import ProxmoxAPI

        user, token = self.token_id.split("!", 1)
        options = dict(port=self.port, user=user, token_name=token, token_value=self.token_secret)
        options.update(verify_ssl=self.cafile, timeout=10)
        options.update(kwargs)
        return ProxmoxAPI(self.host, **options)

    def add_site_vms(self, agent: bool = True, status: str = "running") -> list[Any]:
        """The site's VM hosts as guests, as provisioning leaves them: tagged with their role, ipconfig0 set,
        the guest agent enabled and (agent=True) reporting lo, the host address and a CNI bridge."""
        added = []
        for host in self.site.get("hosts", []):
            if host.get("kind") != "vm":
                continue
            address, prefix = host["ip"].split("/")
            config = {
                "memory": 2048,
                "agent": "1",
                "tags": f"k8s-{host['role']};nerv",
                "net0": f"virtio=BC:24:11:00:00:{host['vmid'] % 256:02X},bridge={self.shape.bridge}",
                "ipconfig0": f"ip={host['ip']},gw={self.site['network']['gateway']}",
            }
            vm = self.pve.add_vm(host["vmid"], host["name"], node=host["node"], status=status, config=config)
            if agent and status == "running":
                vm.agent = {"interfaces": agent_interfaces(address, int(prefix))}
            added.append(vm)
        return added

    def reset(self) -> None:
        """Back to the state right after start: the site's nodes, storages, token and template, no
        requests, tasks, failures, network trouble or guests made by tests."""
        self._loop.call(self._reinit())
        self._populate()

    async def _reinit(self) -> None:
        await settle()
        pve = self.pve
        runner, host, port = pve.runner, pve.host, pve.port
        pve.__dict__.clear()
        FakePve.__init__(pve, user=ROOT, password=self.root_password, host=host, port=port)
        pve.runner = runner

    def _populate(self) -> None:
        pve = self.pve
        pve.time_scale = 0
        shape_cluster(pve, self.site, self.token_secret)
        self._make_template()
        pve.requests.clear()
        pve.time_scale = self.time_scale

    def _make_template(self) -> None:
        from proxmoxer import ProxmoxAPI

        root = ProxmoxAPI(self.host, port=self.port, user=ROOT, password=self.root_password, verify_ssl=self.cafile)
        node = root.nodes(self.shape.template["node"])
        vmid = self.template_vmid
        for upid in (node.qemu.post(**self.shape.template_config()), node.qemu(vmid).template.post()):
            status = node.tasks(upid).status.get()
            if status.get("exitstatus") != "OK":
                raise RuntimeError(f"fakepve could not build template {vmid}: {status}")

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call(settle())
            self._loop.call(self.pve.stop())
        finally:
            self._loop.close()
            self._loop = None


def agent_interfaces(address: str, prefix: int) -> list[dict[str, Any]]:
    """What qemu-guest-agent's network-get-interfaces reports on a K3s node: lo, the NIC, the CNI bridge."""

    def nic(name: str, mac: str, ip: str, length: int) -> dict[str, Any]:
        entry = {"ip-address": ip, "ip-address-type": "ipv4", "prefix": length}
        return {"name": name, "hardware-address": mac, "ip-addresses": [entry]}

    return [
        nic("lo", "00:00:00:00:00:00", "127.0.0.1", 8),
        nic("cni0", "0a:58:0a:2a:00:01", "10.42.0.1", 24),
        nic("ens18", "bc:24:11:00:00:01", address, prefix),
    ]


def start_pve_site(site_path: Path, cafile: str, keyfile: str, time_scale: float = 0) -> PveSite:
    """Serve a fake cluster shaped like the site file; stop() it when done."""
    site = load_site(site_path)
    shape = SiteShape.from_site(site)
    password = secrets.token_urlsafe(16)
    pve = SiteFakePve(user=ROOT, password=password, host=HOST, port=0)
    loop = LoopThread(f"pve-site-{site_path.parent.name}")
    pve_site = PveSite(site_path, site, shape, pve, cafile, str(uuid.uuid4()), password, time_scale, loop)
    try:
        loop.call(pve.start(cafile, keyfile))
        pve_site._populate()
    except BaseException:
        pve_site.stop()
        raise
    return pve_site
