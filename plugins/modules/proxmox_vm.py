#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_vm
short_description: One VM of a site on Proxmox VE - cloned from a template, configured, started, stopped or removed
version_added: 0.1.0
description:
  - Clones the VM from a template when its vmid is free, then sets only the config keys that differ (CPU, memory,
    tags, description, start at boot, cloud-init), grows the C(scsi0) disk, and starts or stops it.
  - Every VM it makes carries the tag C(nerv-site-<site>). A VM at the vmid without that tag is refused and never
    touched; one with the tag and the same O(name) is adopted and converged, so an interrupted run picks up where
    it stopped without making a second VM.
  - With O(state=started) it waits until the guest agent reports an address and reads the VM's ed25519 SSH host key
    through the agent.
  - A second run with the same options sends no write request to Proxmox.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.proxmox_auth
options:
  name:
    description: Name of the VM (a DNS name).
    type: str
    required: true
  vmid:
    description:
      - The VM's id, from the site file. Never taken from C(/cluster/nextid), which races with parallel clones.
    type: int
    required: true
  node:
    description: Node the VM is cloned to. An existing VM is managed on the node it is on.
    type: str
    required: true
  state:
    description:
      - V(present) makes and configures the VM; V(started) also starts it and waits for its address; V(stopped)
        shuts it down; V(absent) removes it (only a VM with this site's tag).
    type: str
    choices: [present, started, stopped, absent]
    default: present
  site:
    description:
      - Name of the site. The VM is tagged C(nerv-site-<site>); a VM at the vmid without that tag is never touched.
    type: str
    required: true
  template:
    description:
      - Name or vmid of the template to clone when the VM does not exist yet. A name must match exactly one
        template; give the vmid when several versions share a name.
    type: str
  full:
    description: Full clone (V(true)) or linked clone (V(false)).
    type: bool
    default: true
  storage:
    description: Storage of a full clone's disks (default the template's). Not for linked clones.
    type: str
  pool:
    description: Resource pool the clone joins.
    type: str
  cores:
    description: CPU cores.
    type: int
  memory:
    description: Memory in MiB.
    type: int
  disk:
    description:
      - Size of the C(scsi0) disk in GiB. A larger size grows the disk; a smaller one is refused, disks are never
        shrunk.
    type: int
  tags:
    description:
      - Tags of the VM (the site tag C(nerv-site-<site>) is always added). Other tags are removed when this is set.
      - When not set, the VM keeps its tags, less the template pipeline's (C(nerv-template), C(nerv-build-*),
        C(nerv-phase-*)).
    type: list
    elements: str
  description:
    description: Description (notes) of the VM.
    type: str
  onboot:
    description: Start the VM when its node boots.
    type: bool
  ciuser:
    description: Cloud-init user name.
    type: str
  sshkeys:
    description: Cloud-init SSH public keys, one per item.
    type: list
    elements: str
  ipconfig0:
    description: Cloud-init network of the first NIC, e.g. C(ip=10.0.0.11/24,gw=10.0.0.1) or C(ip=dhcp).
    type: str
  nameserver:
    description: Cloud-init DNS servers, separated by spaces.
    type: str
  searchdomain:
    description: Cloud-init DNS search domain.
    type: str
  cidr:
    description:
      - Networks to prefer when picking RV(address) among the addresses the guest agent reports. With O(cidr),
        the module waits for an address inside one of them (up to O(wait_timeout)), then falls back to the best
        other address with a warning.
    type: list
    elements: str
  wait_timeout:
    description: Seconds to wait for the guest agent to report an address with O(state=started).
    type: int
    default: 300
  force:
    description:
      - With O(state=absent), stop a running VM and clear its protection before removing it. With O(state=stopped),
        stop the VM at once instead of a guest shutdown.
    type: bool
    default: false
  lock_timeout:
    description: Seconds to wait for a locked template or VM (backup, clone, migrate, ...) before failing.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Reports the actions (RV(actions)) and config changes a run would make, and writes nothing.
  diff_mode:
    support: full
    description: Shows the changed config keys and the status before and after.
  platform:
    support: full
    platforms: posix
    description: Runs wherever proxmoxer is installed; normally the controller.
notes:
  - The clone is configured right after its task ends. If a run is killed between the two, the new VM lacks the
    site tag and a re-run refuses it; delete it (or tag it C(nerv-site-<site>)) and run again.
  - Config keys Proxmox cannot change on a running VM (e.g. O(cores), cloud-init) become pending; they take effect
    at its next start, and the module warns.
seealso:
  - module: nerv.homelab.proxmox_template_build
"""

EXAMPLES = r"""
- name: Clone, configure and start cp1, waiting for its address
  nerv.homelab.proxmox_vm:
    name: cp1
    vmid: 101
    node: pve1
    site: demo
    state: started
    template: nixos-base
    storage: local-lvm
    cores: 2
    memory: 4096
    disk: 32
    tags: [k8s-control-plane]
    onboot: true
    ciuser: admin
    sshkeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINU9pb4AcSwRvvlx7xnotXk8P/jB2vMcsoOo2WrkuQWN admin1@laptop
    ipconfig0: ip=10.77.0.11/24,gw=10.77.0.1
    nameserver: 10.77.0.1
    searchdomain: demo.lab.example
    cidr: [10.77.0.0/24]
  register: vm
  delegate_to: localhost

- name: Remove worker2, even if it runs
  nerv.homelab.proxmox_vm:
    name: worker2
    vmid: 103
    node: pve2
    site: demo
    state: absent
    force: true
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The VM's vmid.
  returned: success
  type: int
  sample: 101
node:
  description: The node the VM is on.
  returned: success
  type: str
  sample: pve1
status:
  description: C(running), C(stopped) or C(absent) after the run (in check mode, what it would be).
  returned: success
  type: str
  sample: running
actions:
  description:
    - What this run did (in check mode, would do), in order - C(clone), C(config), C(resize), C(start), C(stop),
      C(unprotect), C(delete).
  returned: success
  type: list
  elements: str
  sample: [clone, config, resize, start]
changed_keys:
  description: The options whose Proxmox config changed (C(disk) for a resize).
  returned: success
  type: list
  elements: str
  sample: [cores, memory, tags, sshkeys, ipconfig0, disk]
addresses:
  description:
    - The addresses the guest agent reports (no loopback, link-local); empty unless O(state=started).
  returned: success
  type: list
  elements: str
  sample: [10.77.0.11, 10.42.0.1]
address:
  description: The address picked from RV(addresses) (see O(cidr)); null unless O(state=started).
  returned: success
  type: str
  sample: 10.77.0.11
host_key:
  description:
    - The VM's SSH host key C(ssh-ed25519 AAAA...), read through the guest agent from
      C(/etc/ssh/ssh_host_ed25519_key.pub) with O(state=started); null (with a warning) when it cannot be read.
  returned: success
  type: str
  sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv8o3b1Jm1cX0fC9JY3g9v0Y8cTn1v3Cz5pK2r8l0aB
"""

import contextlib
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils import _proxmox_vm as pvm
from ansible_collections.nerv.homelab.plugins.module_utils._proxmox_tasks import poll_delays
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import (
    ProxmoxClient,
    ProxmoxError,
    proxmox_argument_spec,
    run_module,
    settings_from_params,
)

LOCK_POLL = 0.5


def argument_spec() -> dict:
    spec = proxmox_argument_spec()
    spec.update(
        name={"type": "str", "required": True},
        vmid={"type": "int", "required": True},
        node={"type": "str", "required": True},
        state={"type": "str", "default": "present", "choices": ["present", "started", "stopped", "absent"]},
        site={"type": "str", "required": True},
        template={"type": "str"},
        full={"type": "bool", "default": True},
        storage={"type": "str"},
        pool={"type": "str"},
        cores={"type": "int"},
        memory={"type": "int"},
        disk={"type": "int"},
        tags={"type": "list", "elements": "str"},
        description={"type": "str"},
        onboot={"type": "bool"},
        ciuser={"type": "str"},
        sshkeys={"type": "list", "elements": "str", "no_log": False},
        ipconfig0={"type": "str"},
        nameserver={"type": "str"},
        searchdomain={"type": "str"},
        cidr={"type": "list", "elements": "str"},
        wait_timeout={"type": "int", "default": 300},
        force={"type": "bool", "default": False},
        lock_timeout={"type": "int", "default": 60},
    )
    return spec


class Vm:
    """One VM's run: read, plan, act. Every write waits for its task and survives locks up to lock_timeout."""

    def __init__(self, module, client):
        self.module, self.client, self.params = module, client, module.params
        self.vmid, self.name = self.params["vmid"], self.params["name"]
        self.node = self.params["node"]
        self.warnings = []

    @property
    def path(self):
        return f"/nodes/{self.node}/qemu/{self.vmid}"

    def label(self):
        return f"VM {self.name} (vmid {self.vmid})"

    # ------------------------------------------------------------ reading

    def effective_config(self):
        """The config with pending changes applied: what the VM will run with, so a pending change is not sent
        twice. Also whether anything is pending."""
        config = dict(self.client.get(self.path + "/config") or {})
        pending = self.client.get(self.path + "/pending") or []
        waiting = []
        for item in pending:
            key = item.get("key")
            if item.get("delete"):
                config.pop(key, None)
                waiting.append(key)
            elif "pending" in item:
                config[key] = item["pending"]
                waiting.append(key)
        return config, waiting

    def status(self):
        return (self.client.get(self.path + "/status/current") or {}).get("status")

    # ------------------------------------------------------------ locks

    def wait_unlocked(self, path, what):
        """The config at path once it has no lock, or a ProxmoxError naming the lock after lock_timeout."""
        deadline = time.monotonic() + self.params["lock_timeout"]
        while True:
            config = self.client.get(path + "/config") or {}
            lock = pvm.lock_of(config)
            if not lock:
                return config
            if time.monotonic() >= deadline:
                raise ProxmoxError(self.lock_message(what, path, f"lock {lock!r}"))
            time.sleep(LOCK_POLL)

    def lock_message(self, what, path, lock):
        vmid = path.rstrip("/").rsplit("/", 1)[1]
        return (
            f"{what} is locked ({lock}) and stayed locked for lock_timeout={self.params['lock_timeout']} s: wait "
            f"until the backup/clone/migration holding it ends and run again, raise lock_timeout, or clear a stale "
            f"lock on the node with 'qm unlock {vmid}'"
        )

    def patiently(self, what, path, call):
        """call(), retried while Proxmox answers that the VM is locked, up to lock_timeout."""
        deadline = time.monotonic() + self.params["lock_timeout"]
        while True:
            try:
                return call()
            except ProxmoxError as exc:
                if not pvm.is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise pvm.retold(exc, self.lock_message(what, path, exc.message)) from None
            time.sleep(LOCK_POLL)

    def task(self, upid):
        if isinstance(upid, str) and upid.startswith("UPID:"):
            return self.client.wait_task(upid)
        return None

    # ------------------------------------------------------------ actions

    def clone(self, template):
        tnode, tvmid = template["node"], template["vmid"]
        source = f"/nodes/{tnode}/qemu/{tvmid}"
        data = pvm.clone_request(self.params, template)

        what = f"template {template.get('name')!r} (vmid {tvmid})"
        self.wait_unlocked(source, what)
        try:
            self.patiently(what, source, lambda: self.task(self.client.post(source + "/clone", **data)))
        except ProxmoxError as exc:
            left = pvm.guest_at(self.client.get("/cluster/resources", type="vm"), self.vmid)
            note = ""
            if left is not None:
                note = (
                    f"; vmid {self.vmid} now holds VM {left.get('name')!r} (lock {left.get('lock') or 'none'}): if "
                    f"it is what is left of this clone, remove it with 'qm unlock {self.vmid}; qm destroy "
                    f"{self.vmid}' before running again"
                )
            what = f"cloning template {template.get('name')!r} (vmid {tvmid} on {tnode}) to {self.label()}"
            raise pvm.retold(exc, f"{what} failed: {exc.message}{note}") from None

    def configure(self, updates, fresh):
        def call():
            return self.client.put(self.path + "/config", **updates)

        try:
            self.patiently(self.label(), self.path, call)
        except ProxmoxError:
            if fresh and "tags" in updates:
                # Tag the new clone at least, so the next run adopts it instead of refusing it as foreign.
                with contextlib.suppress(ProxmoxError):
                    self.client.put(self.path + "/config", tags=updates["tags"])
            raise

    def resize(self, size):
        gib = size // pvm.GIB

        def call():
            return self.task(self.client.put(self.path + "/resize", disk=pvm.DISK_KEY, size=f"{gib}G"))

        self.patiently(self.label(), self.path, call)

    def start(self):
        def call():
            try:
                upid = self.client.post(self.path + "/status/start")
            except ProxmoxError as exc:
                if not pvm.is_transient(exc):
                    raise
                # The proxy lost the answer (596 ...): the start may or may not have happened. Look, then once more.
                self.warnings.append(f"starting {self.label()}: {exc.message}; checked its status and retried")
                if self.status() == "running":
                    return
                upid = self.client.post(self.path + "/status/start")
                try:
                    self.task(upid)
                except ProxmoxError:
                    if self.status() != "running":
                        raise
                return
            self.task(upid)

        self.patiently(self.label(), self.path, call)

    def stop(self, force):
        action = "stop" if force else "shutdown"
        try:
            self.patiently(
                self.label(), self.path, lambda: self.task(self.client.post(self.path + f"/status/{action}"))
            )
        except ProxmoxError as exc:
            if force or pvm.is_lock_error(exc):
                raise
            hint = "Does the guest handle ACPI shutdown? Set force: true to stop it at once"
            raise pvm.retold(exc, f"shutting down {self.label()} failed: {exc.message}. {hint}") from None

    def unprotect(self):
        self.patiently(self.label(), self.path, lambda: self.client.put(self.path + "/config", delete="protection"))

    def delete(self):
        self.patiently(self.label(), self.path, lambda: self.task(self.client.delete(self.path, purge=1)))

    # ------------------------------------------------------------ guest agent

    def wait_address(self, patient=True):
        """(addresses, address) the agent reports; waits up to wait_timeout for one (inside cidr, if given)."""
        nets = pvm.networks(self.params.get("cidr"))
        deadline = time.monotonic() + (self.params["wait_timeout"] if patient else 0)
        found, last = [], "no answer yet"
        for delay in poll_delays(initial=0.5, cap=3.0):
            try:
                answer = self.client.get(self.path + "/agent/network-get-interfaces") or {}
                interfaces = answer.get("result") if isinstance(answer, dict) else answer
                found = pvm.usable_addresses(interfaces)
                address, inside = pvm.pick_address(found, nets)
                if address and (inside or not nets):
                    return [f["address"] for f in found], address
                shown = ", ".join(f["address"] for f in found)
                last = f"only addresses outside cidr ({shown})" if found else "no address but loopback/link-local"
            except ProxmoxError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                last = exc.message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(delay, remaining))
        if found:
            address, _inside = pvm.pick_address(found, nets)
            self.warnings.append(
                f"{self.label()} has no address inside cidr {self.params.get('cidr')}; using {address}"
            )
            return [f["address"] for f in found], address
        if not patient:
            self.warnings.append(f"{self.label()}: the guest agent reports no address yet ({last})")
            return [], None
        raise ProxmoxError(
            f"{self.label()} on {self.node} reported no address through the guest agent within "
            f"wait_timeout={self.params['wait_timeout']} s; last seen: {last}. Check that qemu-guest-agent runs in "
            "the guest (agent: 1 in the VM config) and that its network comes up"
        )

    def host_key(self):
        try:
            answer = self.client.get(self.path + "/agent/file-read", file=pvm.HOST_KEY_FILE)
        except ProxmoxError as exc:
            self.warnings.append(f"could not read {pvm.HOST_KEY_FILE} of {self.label()}: {exc.message}")
            return None
        key = pvm.host_key_of(answer)
        if key is None:
            self.warnings.append(f"{self.label()} has no ed25519 host key in {pvm.HOST_KEY_FILE}; host_key is null")
        return key


def survey(vm, guest, resources):
    """What the VM is and what it should become: the plan and everything the actions need."""
    params, client, state = vm.params, vm.client, vm.params["state"]
    found = {"template": None, "updates": {}, "changed": [], "before": {}, "after": {}, "resize": None}
    found.update(protected=False, lock=None, pending=[], status=guest.get("status") if guest else None)
    if state == "absent":
        if guest is not None:
            config = client.get(vm.path + "/config") or {}
            found["lock"] = pvm.lock_of(config)
            found["protected"] = str(config.get("protection", 0)) in ("1", "true")
            pvm.check_removal(params, found["status"], found["protected"])
    else:
        if guest is None:
            template = found["template"] = pvm.find_template(resources, params.get("template"))
            tpath = f"/nodes/{template['node']}/qemu/{template['vmid']}"
            tconfig = client.get(tpath + "/config") or {}
            if template.get("node") != params["node"]:
                pvm.cross_node_problem(template, tconfig, params, client.get("/cluster/resources", type="storage"))
            config = pvm.cloned_config(tconfig, params)
        else:
            config, found["pending"] = vm.effective_config()
            found["lock"] = pvm.lock_of(config)
        updates, changed, before, after = pvm.config_changes(config, params)
        found.update(updates=updates, changed=changed, before=before, after=after)
        found["resize"] = pvm.disk_change(config, params.get("disk"))
    found["actions"] = pvm.plan(
        state,
        guest is not None,
        found["status"],
        bool(found["updates"]),
        bool(found["resize"]),
        found["protected"],
        params["force"],
    )
    return found


def run(module):
    params = pvm.check_options(module.params)
    state = params["state"]
    client = ProxmoxClient(settings_from_params(params))
    vm = Vm(module, client)
    resources = client.get("/cluster/resources", type="vm") or []
    guest = pvm.guest_at(resources, params["vmid"])
    result = {"vmid": params["vmid"], "node": params["node"], "addresses": [], "address": None, "host_key": None}
    if guest is not None:
        pvm.check_ownership(guest, params)
        vm.node = guest.get("node") or vm.node
        result["node"] = vm.node

    found = survey(vm, guest, resources)
    if found["lock"] and found["actions"] and not module.check_mode:
        # Wait out the lock (a backup, a migration...) before writing, then look again: the VM may have changed.
        vm.wait_unlocked(vm.path, vm.label())
        found = survey(vm, guest, resources)
    actions, status, resize = found["actions"], found["status"], found["resize"]
    updates, changed, before, after = found["updates"], found["changed"], found["before"], found["after"]

    if resize:
        changed.append("disk")
        before["disk"], after["disk"] = pvm.show_size(resize[0]), pvm.show_size(resize[1])
    final = pvm.final_status(state, status, actions)
    if guest is None and state != "absent":
        before = {"status": "absent"}
        after = dict(after, status=final)
    elif final != (status or "absent"):
        before["status"], after["status"] = status or "absent", final

    if not module.check_mode:
        for action in actions:
            if action == "clone":
                vm.clone(found["template"])
            elif action == "config":
                vm.configure(updates, fresh=guest is None)
                late = [k for k in updates if k not in pvm.HOTPLUG]
                if status == "running" and late:
                    vm.warnings.append(
                        f"{vm.label()} is running: {', '.join(late)} take effect at its next start (pending)"
                    )
            elif action == "resize":
                vm.resize(resize[1])
            elif action == "start":
                vm.start()
            elif action == "stop":
                vm.stop(params["force"])
            elif action == "unprotect":
                vm.unprotect()
            elif action == "delete":
                vm.delete()

    if state == "started" and (not module.check_mode or (guest is not None and status == "running")):
        result["addresses"], result["address"] = vm.wait_address(patient=not module.check_mode)
        result["host_key"] = vm.host_key()

    result.update(changed=bool(actions), status=final, actions=actions, changed_keys=changed)
    result["diff"] = {"before": before, "after": after}
    for warning in vm.warnings:
        module.warn(warning)
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: run(module))


if __name__ == "__main__":
    main()
