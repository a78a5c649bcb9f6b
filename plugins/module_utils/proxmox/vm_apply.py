# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API side of nerv.homelab.proxmox_vm: read the VM, plan with vm_plan, act through the Proxmox client.

run(module) takes anything with .params, .check_mode and .warn() (the AnsibleModule) and returns the result.
"""

from __future__ import annotations

import contextlib

from ansible_collections.nerv.homelab.plugins.module_utils.common import known_hosts
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline, RunEnded, RunWatch
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import vm_plan as pvm
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.guest import agent_addresses, networks, pick_address
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError, settings_from_params
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.tasks import poll_delays

LOCK_POLL = 0.5


class Vm:
    """One VM's run: read, plan, act. Every write waits for its task and survives locks up to lock_timeout."""

    def __init__(self, module, client, watch: RunWatch | None = None):
        self.module, self.client, self.params = module, client, module.params
        self.watch = watch or RunWatch(None)
        self.vmid, self.name = self.params["vmid"], self.params["name"]
        self.node = self.params["node"]
        self.label = f"VM {self.name} (vmid {self.vmid})"
        self.warnings = []

    @property
    def path(self):
        return f"/nodes/{self.node}/qemu/{self.vmid}"

    def effective_config(self):
        """The config with pending changes applied: what the VM will run with, so a pending change is not sent
        twice."""
        config = dict(self.client.get(self.path + "/config") or {})
        for item in self.client.get(self.path + "/pending") or []:
            if item.get("delete"):
                config.pop(item.get("key"), None)
            elif "pending" in item:
                config[item.get("key")] = item["pending"]
        return config

    def status(self):
        return (self.client.get(self.path + "/status/current") or {}).get("status")

    def wait_unlocked(self, path, what):
        """Return once the config at path has no lock, or raise a ProxmoxError naming the lock after lock_timeout."""
        deadline = Deadline(self.params["lock_timeout"], sleep=self.watch.sleep)
        while True:
            lock = pvm.lock_of(self.client.get(path + "/config"))
            if not lock:
                return
            if not deadline.pause(LOCK_POLL):
                raise ProxmoxError(self.lock_message(what, path, f"lock {lock!r}"))

    def lock_message(self, what, path, lock):
        vmid = path.rstrip("/").rsplit("/", 1)[1]
        return (
            f"{what} is locked ({lock}) and stayed locked for lock_timeout={self.params['lock_timeout']} s: wait "
            f"until the backup/clone/migration holding it ends and run again, raise lock_timeout, or clear a stale "
            f"lock on the node with 'qm unlock {vmid}'"
        )

    def patiently(self, what, path, call):
        """call(), retried while Proxmox answers that the VM is locked, up to lock_timeout."""
        deadline = Deadline(self.params["lock_timeout"], sleep=self.watch.sleep)
        while True:
            try:
                return call()
            except ProxmoxError as exc:
                if not pvm.is_lock_error(exc):
                    raise
                if not deadline.pause(LOCK_POLL):
                    raise pvm.retold(exc, self.lock_message(what, path, exc.message)) from None

    def act(self, method, suffix="", **data):
        """A request to the VM (and its task, if it starts one), retried while the VM is locked."""
        send = getattr(self.client, method)
        self.patiently(self.label, self.path, lambda: self.client.wait_task(send(self.path + suffix, **data)))

    def clone(self, template):
        tnode, tvmid = template["node"], template["vmid"]
        source = f"/nodes/{tnode}/qemu/{tvmid}"
        data = pvm.clone_request(self.params, template)

        what = f"template {template.get('name')!r} (vmid {tvmid})"
        self.wait_unlocked(source, what)
        try:
            self.patiently(what, source, lambda: self.client.wait_task(self.client.post(source + "/clone", **data)))
        except ProxmoxError as exc:
            left = pvm.guest_at(self.client.get("/cluster/resources", type="vm"), self.vmid)
            note = ""
            if left is not None:
                # the clone may have happened with its answer lost: it carries the clone's marker from its first
                # request, and the next run adopts it
                note = (
                    f"; vmid {self.vmid} now holds VM {left.get('name')!r} (lock {left.get('lock') or 'none'}), "
                    "which Proxmox may have made before its answer was lost: run again, and the next run adopts its "
                    "own clone and finishes it"
                )
            what = f"cloning template {template.get('name')!r} (vmid {tvmid} on {tnode}) to {self.label}"
            raise pvm.retold(exc, f"{what} failed: {exc.message}{note}") from None

    def lost_clone(self) -> bool:
        """True when the untagged VM at the vmid is this host's clone whose answer was lost (its description is
        still the clone's marker): the run adopts and finishes it."""
        config = self.client.get(self.path + "/config") or {}
        if not pvm.is_our_clone(config.get("description"), self.params):
            return False
        self.warnings.append(
            f"{self.label} is a clone of this site whose answer was lost (an interrupted or failed run): adopted and "
            "finished by this run"
        )
        return True

    def configure(self, updates, fresh, status):
        try:
            self.act("put", "/config", **updates)
        except ProxmoxError:
            if fresh and "tags" in updates:
                # Tag the new clone at least, so the next run adopts it instead of refusing it as foreign.
                with contextlib.suppress(ProxmoxError):
                    self.client.put(self.path + "/config", tags=updates["tags"])
            raise
        late = ", ".join(key for key in updates if key not in pvm.HOTPLUG)
        if status == "running" and late:
            self.warnings.append(f"{self.label} is running: {late} take effect at its next start (pending)")

    def start(self):
        def call():
            try:
                upid = self.client.post(self.path + "/status/start")
            except ProxmoxError as exc:
                if not pvm.is_transient(exc):
                    raise
                # The proxy lost the answer (596 ...): the start may or may not have happened. Look, then once more.
                self.warnings.append(f"starting {self.label}: {exc.message}; checked its status and retried")
                if self.status() == "running":
                    return
                upid = self.client.post(self.path + "/status/start")
                try:
                    self.client.wait_task(upid)
                except ProxmoxError:
                    if self.status() != "running":
                        raise
                return
            self.client.wait_task(upid)

        self.patiently(self.label, self.path, call)

    def stop(self, force):
        try:
            self.act("post", "/status/stop" if force else "/status/shutdown")
        except ProxmoxError as exc:
            if force or pvm.is_lock_error(exc):
                raise
            hint = "Does the guest handle ACPI shutdown? Set force: true to stop it at once"
            raise pvm.retold(exc, f"shutting down {self.label} failed: {exc.message}. {hint}") from None

    def wait_address(self, patient=True):
        """(addresses, address) the agent reports; waits up to wait_timeout for one (inside cidr, if given)."""
        nets = networks(self.params.get("cidr"))
        deadline = Deadline(self.params["wait_timeout"] if patient else 0, sleep=self.watch.sleep)
        found, last = [], "no answer yet"
        for delay in poll_delays(initial=0.5, cap=3.0):
            try:
                found = agent_addresses(self.client.get(self.path + "/agent/network-get-interfaces"))
                address, inside = pick_address(found, nets)
                if address and (inside or not nets):
                    return [f["address"] for f in found], address
                shown = ", ".join(f["address"] for f in found)
                last = f"only addresses outside cidr ({shown})" if found else "no address but loopback/link-local"
            except ProxmoxError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                last = exc.message
            if not deadline.pause(delay):
                break
        if found:
            address, _inside = pick_address(found, nets)
            self.warnings.append(f"{self.label} has no address inside cidr {self.params.get('cidr')}; using {address}")
            return [f["address"] for f in found], address
        if not patient:
            self.warnings.append(f"{self.label}: the guest agent reports no address yet ({last})")
            return [], None
        raise ProxmoxError(
            f"{self.label} on {self.node} reported no address through the guest agent within "
            f"wait_timeout={self.params['wait_timeout']} s; last seen: {last}. Check that qemu-guest-agent runs in "
            "the guest (agent: 1 in the VM config) and that its network comes up"
        )

    def host_key(self):
        try:
            answer = self.client.get(self.path + "/agent/file-read", file=pvm.HOST_KEY_FILE)
        except ProxmoxError as exc:
            self.warnings.append(f"could not read {pvm.HOST_KEY_FILE} of {self.label}: {exc.message}")
            return None
        key = pvm.host_key_of(answer)
        if key is None:
            self.warnings.append(f"{self.label} has no ed25519 host key in {pvm.HOST_KEY_FILE}; host_key is null")
        return key


def survey(vm, guest, resources):
    """What the VM is and what it should become: the plan and everything the actions need."""
    params, client, state = vm.params, vm.client, vm.params["state"]
    found = {"template": None, "updates": {}, "changed": [], "before": {}, "after": {}, "resize": None}
    found.update(protected=False, lock=None, status=guest.get("status") if guest else None)
    if state == "absent":
        if guest is not None:
            config = client.get(vm.path + "/config") or {}
            found["lock"] = pvm.lock_of(config)
            found["protected"] = str(config.get("protection", 0)) in ("1", "true")
            pvm.check_removal(params, found["status"], found["protected"])
    else:
        if guest is None:
            # check mode before the template exists (site.yml --check on a new site): plan from the settings alone
            template = found["template"] = pvm.find_template(resources, params.get("template"), vm.module.check_mode)
            tconfig = {}
            if template is None:
                vm.warnings.append(f"template {params.get('template')} does not exist yet: {vm.label} is planned "
                                   "from its settings alone; a real run needs the template first")  # fmt: skip
            else:
                tconfig = client.get(f"/nodes/{template['node']}/qemu/{template['vmid']}/config") or {}
                if template.get("node") != params["node"]:
                    storages = client.get("/cluster/resources", type="storage")
                    pvm.cross_node_problem(template, tconfig, params, storages)
            config = pvm.cloned_config(tconfig, params, template)
        else:
            config = vm.effective_config()
            found["lock"] = pvm.lock_of(config)
        updates, changed, before, after = pvm.config_changes(config, params)
        found.update(updates=updates, changed=changed, before=before, after=after)
        # a template still to be built has no disk to compare with yet
        planned_only = guest is None and found["template"] is None
        found["resize"] = None if planned_only else pvm.disk_change(config, params.get("disk"))
    facts = (guest is not None, found["status"], bool(found["updates"]), bool(found["resize"]), found["protected"])
    found["actions"] = pvm.plan(state, *facts, params["force"])
    return found


def run(module):
    """The module's run; a job whose ansible-playbook has ended (run_pid) stops at its next step with the error."""
    try:
        return _run(module)
    except RunEnded as exc:
        raise ProxmoxError(f"VM {module.params['name']} (vmid {module.params['vmid']}): {exc}") from None


def _run(module):
    params = pvm.check_options(module.params)
    state = params["state"]
    watch = RunWatch(params.get("run_pid"))
    client = ProxmoxClient(settings_from_params(params), sleep=watch.sleep)
    vm = Vm(module, client, watch)
    resources = client.get("/cluster/resources", type="vm") or []
    guest = pvm.guest_at(resources, params["vmid"])
    adopted = False
    if guest is not None:
        vm.node = guest.get("node") or vm.node
        adopted = not pvm.has_site_tag(guest, params) and vm.lost_clone()
        pvm.check_ownership(guest, params, adopted)

    found = survey(vm, guest, resources)
    if found["lock"] and found["actions"] and not module.check_mode:
        # Wait out the lock (a backup, a migration...) before writing, then look again: the VM may have changed.
        vm.wait_unlocked(vm.path, vm.label)
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

    steps = {
        "clone": lambda: vm.clone(found["template"]),
        "config": lambda: vm.configure(updates, guest is None or adopted, status),
        "resize": lambda: vm.act("put", "/resize", disk=pvm.DISK_KEY, size=f"{resize[1] // pvm.GIB}G"),
        "start": vm.start,
        "stop": lambda: vm.stop(params["force"]),
        "unprotect": lambda: vm.act("put", "/config", delete="protection"),
        "delete": lambda: vm.act("delete", purge=1),
    }
    for action in [] if module.check_mode else actions:
        watch.check(action)
        steps[action]()

    result = {"vmid": params["vmid"], "node": vm.node, "addresses": [], "address": None, "host_key": None,
              "pinned": False}  # fmt: skip
    if state == "started" and (not module.check_mode or (guest is not None and status == "running")):
        result["addresses"], result["address"] = vm.wait_address(patient=not module.check_mode)
        result["host_key"] = vm.host_key()
        if params["known_hosts"] and result["address"] and result["host_key"]:
            pinned = known_hosts.pin(params["known_hosts"], {result["address"]: result["host_key"]}, module.check_mode)
            result["pinned"] = bool(pinned)

    result.update(changed=bool(actions) or result["pinned"], status=final, actions=actions, changed_keys=changed)
    result["diff"] = {"before": before, "after": after}
    for warning in vm.warnings:
        module.warn(warning)
    return result
