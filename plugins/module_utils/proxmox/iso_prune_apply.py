# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API side of nerv.homelab.proxmox_iso_prune: list the ISO storage, choose with iso_prune_plan.py, delete.

run(module) takes anything with .params, .check_mode, ._diff and .warn() (the AnsibleModule) and returns the result.
Requests: the content listing; only when something of ours would go, the storage status (is it shared?), the
cluster's VMs and the config of each VM that can see the storage; then one DELETE and its task per ISO.
"""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_plan import IsoError, Records, record_key
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_prune_plan import (
    attached,
    check_current,
    check_keep,
    choose,
    diff_view,
    iso_volumes,
)
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError, settings_from_params


class PruneError(IsoError):
    """Some deletions failed: the message names them; the details keep what was deleted, kept and untouched."""

    def __init__(self, message, result):
        super().__init__(message)
        self.details = dict(result)


def run(module) -> dict:
    params = module.params
    # checked before any request: an IsoError here changes nothing
    want = {"keep": check_keep(params["keep"]), "current": check_current(params["current"], params["storage"])}
    client = ProxmoxClient(settings_from_params(params))
    diff = module._diff  # pylint: disable=protected-access
    result = prune(client, params, want, Records(params["state_dir"]), module.check_mode, diff, module.warn)
    return {**result, "requests": client.requests}


def in_use(client, node: str, storage: str) -> dict:
    """attached() of every VM that can use the storage: those on the node, or all of them if it is shared."""
    shared = bool(int(client.get(f"/nodes/{node}/storage/{storage}/status").get("shared") or 0))
    guests = [
        g
        for g in client.get("/cluster/resources", type="vm")
        if g.get("type", "qemu") == "qemu" and "vmid" in g and (shared or g.get("node") == node)
    ]

    def config(guest):
        return guest["vmid"], client.get(f"/nodes/{guest['node']}/qemu/{guest['vmid']}/config")

    return attached(client.map(config, guests))


def prune(client, params: dict, want: dict, records, check_mode: bool, diff: bool, warn) -> dict:
    """Delete the ISOs of ours that go, oldest first; in check mode only say which. warn(text) is told of every
    ISO kept only because a VM has it attached."""
    node, storage = params["node"], params["storage"]
    base = f"/nodes/{node}/storage/{storage}"
    volumes = iso_volumes(client.get(f"{base}/content", content="iso"), storage)
    known = records.load()
    ours = {v["volid"]: known.get(record_key(client.settings.url, node, storage, v["volid"])) for v in volumes}
    choice = choose(volumes, ours, want["keep"], want["current"])
    if choice.delete:  # VM configs are read only when there is something to protect
        choice = choose(volumes, ours, want["keep"], want["current"], in_use(client, node, storage))
    result = {"deleted": list(choice.delete), "kept": choice.kept, "untouched": choice.untouched, "failures": []}
    for item in choice.untouched:
        if item["volid"] in choice.in_use:
            warn(f"{item['volid']} is kept: {item['reason']}")
    if not check_mode:
        result["deleted"] = []
        for volid in choice.delete:
            try:
                client.wait_task(client.delete(f"{base}/content/{volid}"))
            except ProxmoxError as exc:  # the others still go; the record of this one stays, it is still there
                result["failures"].append({"volid": volid, "error": exc.message})
                continue
            records.put(record_key(client.settings.url, node, storage, volid), None)
            result["deleted"].append(volid)
    result["changed"] = bool(result["deleted"])
    if diff:
        result["diff"] = diff_view(volumes, result["deleted"])
    if result["failures"]:
        names = "; ".join(f"{f['volid']}: {f['error']}" for f in result["failures"])
        done = len(result["deleted"])
        raise PruneError(f"{len(result['failures'])} ISO(s) could not be deleted ({done} deleted): {names}", result)
    return result
