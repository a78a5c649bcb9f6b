# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""K3s's kubeconfig: fetched over pinned SSH, pointed at the server, renamed; its credentials never in a message."""

from __future__ import annotations

import shlex

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import require
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unpinned, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import (
    Target,
    plan_unreachable,
    require_pinned,
    ssh_run,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.files import read_text
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import YAML_IMPORT_ERROR, yaml


def rewrite(text: str, server: str, name: str | None) -> str:
    """The kubeconfig with every cluster's server set, and default names replaced by name when given."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict) or not config.get("clusters"):
        # the message must not quote the text: it holds the admin credentials
        raise HostError("the file fetched is not a kubeconfig (no clusters): is K3s installed and started there?")
    for cluster in config["clusters"]:
        cluster.setdefault("cluster", {})["server"] = server
    if name:
        _rename(config, name)
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def _rename(config: dict, name: str) -> None:
    for section in ("clusters", "users", "contexts"):
        for entry in config.get(section) or []:
            entry["name"] = name
    for entry in config.get("contexts") or []:
        context = entry.setdefault("context", {})
        context["cluster"], context["user"] = name, name
    config["current-context"] = name


def summary(text: str) -> dict:
    """server and current context of a kubeconfig text (nothing else is ever reported)."""
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        config = {}
    clusters = config.get("clusters") or [{}]
    return {
        "server": (clusters[0].get("cluster") or {}).get("server", ""),
        "context": config.get("current-context", ""),
    }


def execute(module) -> dict:
    """nerv.homelab.k3s_kubeconfig: fetch over pinned SSH, point at the server, write 0600 only when it differs."""
    require("PyYAML", YAML_IMPORT_ERROR)
    p = module.params
    target = Target.from_params(p)
    try:
        require_pinned(p["known_hosts"], target)
        failure = f"cannot read {p['remote_path']} on {target.host} at {target.address}"
        fetched = ssh_run(target, p["known_hosts"], [f"cat {shlex.quote(p['remote_path'])}"], failure)
    except (Unreachable, Unpinned) as exc:
        plan_unreachable(module, exc, f"fetching the kubeconfig of {p['host']}")
        return {"changed": True, "dest": p["dest"], "server": f"https://{p['address']}:6443", "context": p["name"]}
    text = rewrite(fetched, f"https://{p['address']}:6443", p["name"])
    before = read_text(p["dest"]) or ""
    changed = before != text
    if changed and not module.check_mode:
        write_atomic(p["dest"], text)
    after = summary(text)
    return {
        "changed": changed,
        "dest": p["dest"],
        **after,
        "diff": {"before": _describe(summary(before)) if before else "", "after": _describe(after)},
    }


def _describe(info: dict) -> str:
    return f"server: {info['server']}\ncontext: {info['context']}\n"
