# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What GET /version and GET /cluster/status say about a Proxmox cluster, as plain data (no I/O here)."""

from __future__ import annotations


def summarise(version: dict, status: list) -> dict:
    """{version, cluster, nodes}: a standalone node has no 'cluster' entry and counts as its own quorate cluster."""
    entries = [entry for entry in status or [] if isinstance(entry, dict)]
    nodes = sorted(
        (
            {
                "name": str(entry.get("name")),
                "online": bool(entry.get("online", 0)),
                "ip": entry.get("ip"),
                "local": bool(entry.get("local", 0)),
            }
            for entry in entries
            if entry.get("type") == "node"
        ),
        key=lambda node: node["name"],
    )
    cluster = next((entry for entry in entries if entry.get("type") == "cluster"), None)
    return {
        "version": {key: (version or {}).get(key) for key in ("version", "release", "repoid")},
        "cluster": {
            "name": cluster.get("name") if cluster else None,
            "standalone": cluster is None,
            "quorate": bool(cluster.get("quorate", 0)) if cluster else True,
            "nodes": len(nodes),
            "online": sum(1 for node in nodes if node["online"]),
        },
        "nodes": nodes,
    }
