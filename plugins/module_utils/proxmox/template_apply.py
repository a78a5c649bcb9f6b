# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API side of nerv.homelab.proxmox_template_build: the installer VM advanced phase by phase through the client.

The decisions (which vmid, which config, which phase a VM is in) are in template_plan.py; this file only acts on them.
run(module) takes anything with .params and .check_mode (the AnsibleModule) and returns the result.
"""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import settings_from_params
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.template_plan import (
    check_build,
    choose_slot,
    finish_config,
    installer_config,
    phase_of,
    tags_for,
)

# The steps from each phase to a template; "wait" returns False while the install still runs.
STEPS = {None: ["create", "start", "wait", "finish"], "created": ["start", "wait", "finish"]}
STEPS.update(installing=["wait", "finish"], installed=["finish"], template=[])


class Pipeline:
    """One build's VM, advanced phase by phase; every step waits for its Proxmox task."""

    def __init__(self, client, params, vmid, guest):
        self.client, self.params, self.vmid = client, params, vmid
        self.node = guest["node"] if guest else params["node"]
        self.actions = []
        self.uptime = None  # seconds the installer VM has run, as Proxmox last reported it

    @property
    def path(self):
        return f"/nodes/{self.node}/qemu/{self.vmid}"

    def create(self):
        self.client.wait_task(self.client.post(f"/nodes/{self.node}/qemu", **installer_config(self.params, self.vmid)))

    def start(self):
        if self.client.get(self.path + "/status/current").get("status") != "running":
            self.client.wait_task(self.client.post(self.path + "/status/start"))
        # Tagged only once it runs: a VM tagged installing and stopped is one the installer powered off.
        self.client.put(self.path + "/config", tags=tags_for(self.params["build"], "installing"))

    def wait(self):
        """True once the VM is stopped; waits at most the wait option's seconds."""
        deadline = Deadline(self.params["wait"])
        while True:
            status = self.client.get(self.path + "/status/current")
            if status.get("status") == "stopped":
                return True
            self.uptime = status.get("uptime")
            if not deadline.pause(max(1, self.params["poll"])):
                return False

    def finish(self):
        self.client.put(self.path + "/config", **finish_config(self.params))
        self.client.wait_task(self.client.post(self.path + "/template"))

    def advance(self, phase):
        """Run the steps from phase on; returns the phase reached: template, or installing while the install runs."""
        for step in STEPS.get(phase, ()):
            self.actions.append(step)
            if getattr(self, step)() is False:
                return "installing"
        return "template" if phase in STEPS else phase


def _for(seconds) -> str:
    """' for 4m 10s' (empty when unknown)."""
    if not isinstance(seconds, int) or seconds <= 0:
        return ""
    minutes, secs = divmod(seconds, 60)
    return f" for {minutes}m {secs:02d}s" if minutes else f" for {secs}s"


def progress(phase, vmid: int, node: str, uptime=None, check_mode: bool = False) -> str:
    """Where the build stands, in one sentence, for the task's progress lines."""
    vm = f"installer VM {vmid} on {node}"
    if check_mode and phase != "template":
        return f"check mode: {vm} would be taken to a template ({phase or 'absent'} now)"
    return {
        None: f"{vm} absent",
        "created": f"{vm} created, not started yet",
        "installing": f"{vm} running{_for(uptime)}: the unattended install is in progress; waiting for it to power "
        "the VM off",
        "installed": f"{vm} powered off: the install is done; next it becomes the template",
        "template": f"template {vmid} on {node} is ready",
    }.get(phase, f"{vm} is {phase}")


def run(module) -> dict:
    """Advance the build's VM as far as it goes (or, in check mode, say how far it would go)."""
    client, check_mode = ProxmoxClient(settings_from_params(module.params)), module.check_mode
    params = {**module.params, "build": check_build(module.params["build"])}
    vmid, guest = choose_slot(params["vmid"], client.get("/cluster/resources", type="vm"), params["build"])
    before = phase_of(guest) if guest else None
    pipeline = Pipeline(client, params, vmid, guest)
    if check_mode:
        after, actions = ("template" if STEPS[before] else before), STEPS[before]
    else:
        after = pipeline.advance(before)
        actions = pipeline.actions
    result = {"changed": after != before, "vmid": vmid, "node": pipeline.node, "phase": after, "actions": actions}
    result["progress"] = progress(before if check_mode else after, vmid, pipeline.node, pipeline.uptime, check_mode)
    result["diff"] = {"before": {"phase": before or "absent"}, "after": {"phase": after}}
    result["requests"] = client.requests
    return result
