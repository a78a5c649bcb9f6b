# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API side of nerv.homelab.proxmox_iso: check the input, decide with iso_plan.py, act through the client.

run(module) takes anything with .params, .check_mode and ._diff (the AnsibleModule) and returns the result.
"""

from __future__ import annotations

import os

from ansible_collections.nerv.homelab.plugins.module_utils.common.digest import sha256_file
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_plan import (
    ACTION_DELETE,
    ACTION_NONE,
    IsoError,
    Records,
    check_checksum,
    check_name,
    decide,
    derived_name,
    diff_view,
    find_volume,
    has_iso_content,
    known_sha256,
    record_key,
    result_action,
    source_basename,
    upload_fields,
    volid_of,
)
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import settings_from_params


def run(module) -> dict:
    client = ProxmoxClient(settings_from_params(module.params))
    want = wanted(module.params)  # an IsoError (a ProxmoxError) here changes nothing
    records = Records(module.params["state_dir"])
    diff = module._diff  # pylint: disable=protected-access
    return {**apply(client, module.params, want, records, module.check_mode, diff), "requests": client.requests}


def wanted(params: dict) -> dict:
    """The checked input: name, sha256, size, whether the name is derived; IsoError names the bad option."""
    src, url, state = params["src"], params["download_url"], params["state"]
    if state == "present" and not (src or url):
        raise IsoError("state=present needs src (a local file to upload) or download_url (with checksum)")
    if state == "absent" and not (params["name"] or src or url):
        raise IsoError("state=absent needs name (or src, or download_url with checksum, to derive it)")
    if params["upload_timeout"] <= 0:
        raise IsoError(f"upload_timeout must be a positive number of seconds, not {params['upload_timeout']}")
    sha256 = check_checksum(params["checksum"])
    if url and not url.lower().startswith(("http://", "https://", "ftp://")):
        raise IsoError(f"download_url {url!r} is not an http(s):// or ftp:// URL the Proxmox node can download")
    if url and sha256 is None and state == "present":
        raise IsoError("download_url needs checksum: give the image's sha256 so Proxmox can verify the download")
    size = None
    if src and (state == "present" or not params["name"]):
        if not os.path.isfile(src):
            raise IsoError(f"src {src!r} is not a file: give the path of the ISO to upload")
        size = os.path.getsize(src)
        if sha256 is None:
            sha256 = sha256_file(src)
    if params["name"]:
        name, derived = check_name(params["name"]), False
    else:
        if sha256 is None:
            raise IsoError("without name, the file is named after its checksum: give checksum (or src)")
        name, derived = check_name(derived_name(source_basename(src, url), sha256)), True
    return {"name": name, "sha256": sha256, "size": size, "named_by_content": derived}


def apply(client, params: dict, want: dict, records, check_mode: bool, diff: bool) -> dict:
    """Upload, download or delete as decided; in check mode only the decision and its diff."""
    node, storage = params["node"], params["storage"]
    base = f"/nodes/{node}/storage/{storage}"
    volid = volid_of(storage, want["name"])
    key = record_key(client.settings.url, node, storage, volid)

    if params["state"] == "present":
        status = client.get(f"{base}/status")
        if not has_iso_content(status):
            raise IsoError(
                f"storage {storage!r} on node {node} does not take ISO images (content: "
                f"{status.get('content') or 'none'}): choose a file storage with iso content (storage option), "
                "or add iso to its content types"
            )
    listed = find_volume(client.get(f"{base}/content", content="iso"), volid)
    record = records.get(key)
    decision = decide(
        params["state"], volid, listed, record, want["sha256"], want["size"], want["named_by_content"], params["force"]
    )
    if decision.error:
        raise IsoError(decision.error)

    action = result_action(decision.action, bool(params["download_url"]))
    present = params["state"] == "present"
    size = want["size"] if want["size"] is not None else (listed or {}).get("size")
    listed_sha = known_sha256(record, want["sha256"], want["named_by_content"])
    before = diff_view(volid, listed, listed_sha)
    after = before
    if decision.action == ACTION_DELETE:
        after = diff_view(volid, None)
    elif decision.action != ACTION_NONE:
        after = diff_view(volid, {"size": size}, want["sha256"])
    result = {
        "changed": decision.action != ACTION_NONE,
        "volid": volid,
        "name": want["name"],
        "size": size if present else (listed or {}).get("size"),
        "sha256": want["sha256"] if present else (want["sha256"] or listed_sha),
        "action": action,
        "reason": decision.reason,
        "task": None,
    }
    if diff:
        result["diff"] = {"before": before, "after": after}
    if check_mode or decision.action == ACTION_NONE:
        return result

    timeout = params["upload_timeout"]
    if decision.action == ACTION_DELETE:
        result["task"] = client.wait_task(client.delete(f"{base}/content/{volid}"))
        records.put(key, None)
        return result
    fields = upload_fields(want["sha256"])
    if params["download_url"]:
        upid = client.post(f"{base}/download-url", **dict(fields), filename=want["name"], url=params["download_url"])
    else:
        upid = client.upload(f"{base}/upload", fields, "filename", params["src"], want["name"], timeout=timeout)
    records.put(key, None)  # whatever was recorded no longer describes the file, even if the task fails
    result["task"] = client.wait_task(upid, timeout=timeout)
    if size is None:
        now = find_volume(client.get(f"{base}/content", content="iso"), volid)
        size = result["size"] = (now or {}).get("size")
        if diff:
            result["diff"]["after"] = diff_view(volid, {"size": size}, want["sha256"])
    records.put(key, {"sha256": want["sha256"], "size": size})
    return result
