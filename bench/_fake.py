"""The fake cluster the benchmark inventories: a FakePve served on a thread of the bench's own process.

Running fakepve in-process makes its request log (``pve.requests``) the exact count of what each
``ansible-inventory`` run asked for: it is cleared before a run and read after it.
"""

import asyncio
import ipaddress
import threading

from fakepve import FakePve, settle

HOST = "127.0.0.1"
NODES = ("pve1", "pve2", "pve3")
TOKEN_USER = "root@pam"
TOKEN_NAME = "bench"
TOKEN_ID = f"{TOKEN_USER}!{TOKEN_NAME}"
FIRST_VMID = 1000
# Guest addresses come from the benchmarking range (RFC 2544): data in API answers, never contacted.
ADDRESSES = ipaddress.ip_network("198.18.0.0/15")
START_TIMEOUT = 30


def guest_name(vmid):
    return f"bench-{vmid}"


def guest_address(index):
    return str(ADDRESSES[index + 1])


def expected_hosts(count):
    """{guest name: its agent address, or None for a stopped guest}, as both inventories should report it."""
    return {guest_name(FIRST_VMID + i): (guest_address(i) if i % 2 == 0 else None) for i in range(count)}


def populate(pve, count):
    """count VMs spread round-robin over three nodes: even ones running with a guest agent, odd ones stopped.

    A running VM has ``agent: 1`` in its config and its agent reports ``lo`` and ``eth0`` with one IPv4
    address. A stopped VM has no agent configured: the layout that costs community.proxmox the fewest
    requests (it asks the agent of every agent-enabled VM, running or not).
    """
    for node in NODES:
        pve.add_node(node)
    for i in range(count):
        vmid = FIRST_VMID + i
        running = i % 2 == 0
        config = {
            "cores": 2,
            "memory": 2048,
            "ostype": "l26",
            "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=32G",
            "net0": f"virtio=BC:24:11:{i >> 16 & 255:02X}:{i >> 8 & 255:02X}:{i & 255:02X},bridge=vmbr0",
            "tags": "bench",
        }
        if running:
            config["agent"] = "1"
        vm = pve.add_vm(
            vmid,
            guest_name(vmid),
            node=NODES[i % len(NODES)],
            status="running" if running else "stopped",
            config=config,
        )
        if running:
            vm.agent = {
                "interfaces": [
                    {
                        "name": "lo",
                        "hardware-address": "00:00:00:00:00:00",
                        "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}],
                    },
                    {
                        "name": "eth0",
                        "hardware-address": config["net0"].split(",")[0].split("=")[1].lower(),
                        "ip-addresses": [{"ip-address": guest_address(i), "ip-address-type": "ipv4", "prefix": 15}],
                    },
                ]
            }


class Serving:
    """A FakePve with count VMs and an API token, on its own event loop in a daemon thread.

    latency is real seconds added to every response: fakepve counts it in PVE seconds scaled by
    time_scale, and time_scale 0 would drop it, so the fake runs at time_scale 1 (no task runs here).
    """

    def __init__(self, count, latency, certfile, keyfile, secret):
        self.pve = pve = FakePve(host=HOST, port=0)
        pve.time_scale = 1.0
        pve.max_requests = 10**7
        pve.apitokens[TOKEN_ID] = secret
        if latency:
            pve.slow_network(latency)
        populate(pve, count)
        self.count = count
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"fakepve-{count}", daemon=True)
        self.thread.start()
        try:
            self._call(pve.start(certfile, keyfile))
        except BaseException:
            self._halt()
            raise

    @property
    def url(self):
        return self.pve.url

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(START_TIMEOUT)

    def _halt(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(START_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()

    def reset_log(self):
        async def clear():
            self.pve.requests.clear()

        self._call(clear())

    def log(self):
        """A copy of the requests seen since the last reset, as (method, path, body)."""

        async def copy():
            return list(self.pve.requests)

        return self._call(copy())

    def stop(self):
        try:
            self._call(settle())
            self._call(self.pve.stop())
        finally:
            self._halt()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
