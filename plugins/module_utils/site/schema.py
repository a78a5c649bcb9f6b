# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site model as a JSON Schema (draft 2020-12).

This dict is the single definition of a site file. ``docs/site.schema.json`` is generated from it
(``python -m`` is not available for collection code, so ``tests/unit`` checks the two stay equal).
``x-fix`` is our own annotation: the advice printed when a value breaks the rule next to it.
"""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.names import DNS_LABEL

SCHEMA_ID = "https://nerv.homelab/schemas/site-1.json"

_DNS_LABEL = DNS_LABEL
_DOMAIN = "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_ENV_NAME = "^[A-Z_][A-Z0-9_]*$"

_SOPS_REF = {
    "type": "object",
    "description": "A value kept in a sops-encrypted file: the file (relative to the site file) and the key in it.",
    "additionalProperties": False,
    "required": ["file", "key"],
    "properties": {
        "file": {
            "type": "string",
            "minLength": 1,
            "format": "relative-path",
            "x-fix": "give the path of a sops file inside the site's directory (relative to the site file), "
            "e.g. secrets/k3s.sops.yaml",
        },
        "key": {
            "type": "string",
            "minLength": 1,
            "x-fix": "give the key path inside the sops file, e.g. proxmox.token_secret",
        },
    },
}

# The platform's versions: K3s 1.31 is the NixOS side's (k3s.version), these are what Flux installs.
PLATFORM_VERSIONS = {
    "flux": "v2.6.1",
    "metallb": "0.15.2",
    "traefik": "37.1.1",
    "cert_manager": "v1.18.2",
    "longhorn": "1.9.1",
    # the chart's own version (charts/index.yaml of csi-driver-nfs): without the v from 4.11.0 on
    "csi_driver_nfs": "4.11.0",
    "kube_prometheus_stack": "75.15.0",
    # Capacitor's published manifests (oci://ghcr.io/gimlet-io/capacitor-manifests), the tag of release
    # capacitor-v0.4.8
    "capacitor": "v0.4.8",
}
# One Flux release as flux bootstrap --version takes it and the flux-system namespace label shows it
FLUX_RELEASE = "^v(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)$"
# One exact release (Flux and Helm would read a range here, and a pin must not move)
_CHART_VERSION = "^v?(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$"


def _version(name: str, default: str) -> dict:
    if name == "flux":
        return {"type": "string", "pattern": FLUX_RELEASE,
                "default": default, "description": "Flux release flux bootstrap installs (--version).",
                "x-fix": f"write one Flux release with its v, e.g. {default}"}  # fmt: skip
    what = "Tag of Capacitor's manifests (the Flux UI)" if name == "capacitor" else f"Chart version of {name}"
    return {"type": "string", "pattern": _CHART_VERSION, "default": default,
            "description": f"{what.replace('_', '-')}.",
            "x-fix": f"write one exact chart version (no range), e.g. {default}"}  # fmt: skip


_PLATFORM = {
    "type": "object",
    "description": "What Flux deploys: the versions of Flux and of the platform's charts (each may be pinned).",
    "additionalProperties": False,
    "default": {},
    "properties": {
        "versions": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {name: _version(name, default) for name, default in PLATFORM_VERSIONS.items()},
        },
    },
}

# Prometheus' own duration syntax (units in this order, as its flag and the operator's CRD accept them), not empty
_PROM_DURATION = "^(?=[0-9])([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
# A Kubernetes storage request in binary units: what a PersistentVolumeClaim asks for
_STORAGE_SIZE = "^[1-9][0-9]*(Mi|Gi|Ti)$"
_DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _size(what: str, default: str) -> dict:
    return {"type": "string", "pattern": _STORAGE_SIZE, "default": default,
            "description": f"Size of the {what} volume (a PersistentVolumeClaim on storage_class).",
            "x-fix": f"write a whole number with Mi, Gi or Ti, e.g. {default}"}  # fmt: skip


def _alert(summary: str) -> dict:
    return {"type": "boolean", "default": True, "description": f"Alert when {summary}."}


_MONITORING = {
    "type": "object",
    "description": "Prometheus, Alertmanager and Grafana (kube-prometheus-stack) with the platform's alerts; "
    "present (even empty: monitoring: {}) turns monitoring on.",
    "additionalProperties": False,
    "properties": {
        "retention": {
            "type": "string",
            "pattern": _PROM_DURATION,
            "default": "15d",
            "description": "How long Prometheus keeps samples (a Prometheus duration).",
            "x-fix": "write a Prometheus duration: a number and a unit (y, w, d, h, m, s, ms), e.g. 15d or 1w3d",
        },
        "prometheus_storage": _size("Prometheus", "20Gi"),
        "alertmanager_storage": _size("Alertmanager", "2Gi"),
        "grafana_storage": _size("Grafana", "5Gi"),
        "storage_class": {
            "type": "string",
            "pattern": _DNS_SUBDOMAIN,
            "description": "StorageClass of the three volumes; default: the site's default class (longhorn, or "
            "nfs.storage_class when nfs.default_class is true).",
            "x-fix": "name a StorageClass of the cluster (kubectl get storageclass), e.g. longhorn",
        },
        "grafana_host": {
            "type": "string",
            "pattern": _DOMAIN,
            "description": "Host name Grafana is served on (Traefik, certificate from the site's CA); "
            "default grafana.<network.domain>.",
            "x-fix": "write a lower-case DNS name such as grafana.lab.example",
        },
        "alerts": {
            "type": "object",
            "description": "Which of the platform's alerts to render (all on by default).",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "node_not_ready": _alert("a node has not been Ready for 5 minutes"),
                "flux_not_ready": _alert("a Flux object has not been Ready for 10 minutes"),
                "volume_filling_up": _alert("a PersistentVolumeClaim is fuller than volume_full_percent"),
                "volume_full_percent": {
                    "type": "integer",
                    "minimum": 50,
                    "maximum": 99,
                    "default": 85,
                    "description": "Percent used at which volume_filling_up fires.",
                    "x-fix": "give a percentage from 50 to 99, e.g. 85",
                },
            },
        },
    },
}

_SITE = {
    "type": "object",
    "description": "What the site is called.",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "description": "Site name, a DNS label.",
            "x-fix": "use lower-case letters, digits and '-', at most 63 characters",
        },
        "description": {"type": "string"},
    },
}

_NETWORK = {
    "type": "object",
    "description": "The LAN every host and the MetalLB pool live on.",
    "additionalProperties": False,
    "required": ["cidr", "gateway", "dns", "domain"],
    "properties": {
        "cidr": {
            "type": "string",
            "format": "ipv4-network",
            "description": "IPv4 network in CIDR form, e.g. 192.168.10.0/24.",
            "x-fix": "write the network address and prefix, e.g. 192.168.10.0/24",
        },
        "gateway": {
            "type": "string",
            "format": "ipv4",
            "description": "Default gateway, inside cidr.",
            "x-fix": "write an IPv4 address, e.g. 192.168.10.1",
        },
        "dns": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "format": "ipv4", "x-fix": "write an IPv4 address, e.g. 192.168.10.1"},
            "description": "DNS servers, in order.",
        },
        "domain": {
            "type": "string",
            "pattern": _DOMAIN,
            "description": "Search domain; host FQDNs are <name>.<domain>.",
            "x-fix": "use a lower-case DNS name such as lab.example",
        },
    },
}

_PROXMOX = {
    "type": "object",
    "description": "The Proxmox VE endpoint and where VMs go; required when a host is a vm. No secrets here.",
    "additionalProperties": False,
    "required": ["url", "token_id", "nodes", "storage", "bridge"],
    "properties": {
        "url": {
            "type": "string",
            "pattern": "^https://[^/\\s]+(/.*)?$",
            "description": "API URL, https only, e.g. https://pve1.lab.example:8006.",
            "x-fix": "use an https:// URL such as https://pve1.lab.example:8006 (the API is TLS only)",
        },
        "token_id": {
            "type": "string",
            "pattern": "^[^@!\\s]+@[^@!\\s]+![A-Za-z][A-Za-z0-9._-]*$",
            "description": "API token id USER@REALM!TOKENID.",
            "x-fix": "write it as USER@REALM!TOKENID, e.g. automation@pve!nerv",
        },
        "token_secret_env": {
            "type": "string",
            "pattern": _ENV_NAME,
            "default": "PROXMOX_TOKEN_SECRET",
            "description": "Environment variable holding the token secret.",
            "x-fix": "name an environment variable such as PROXMOX_TOKEN_SECRET",
        },
        "token_secret_sops": dict(_SOPS_REF, description="Where the token secret is kept when not in the env."),
        "validate_certs": {"type": "boolean", "default": True, "description": "Verify the API's TLS certificate."},
        "ca_path": {"type": "string", "description": "CA bundle to verify the API certificate with."},
        "nodes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": _DNS_LABEL, "x-fix": "use the node's name as Proxmox shows it"},
            "description": "Cluster node names hosts may be placed on.",
        },
        "storage": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9._-]*$",
            "description": "Storage for VM disks, e.g. local-lvm.",
            "x-fix": "name a Proxmox storage id such as local-lvm",
        },
        "iso_storage": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9._-]*$",
            "default": "local",
            "description": "Storage that holds ISO images.",
            "x-fix": "name a Proxmox storage id with content 'iso', such as local",
        },
        "bridge": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9._-]*$",
            "description": "Linux bridge the VM NICs attach to, e.g. vmbr0.",
            "x-fix": "name a bridge such as vmbr0",
        },
        "pool": {"type": "string", "description": "Resource pool the site's VMs join."},
    },
}

_TEMPLATE = {
    "type": "object",
    "description": "The NixOS base template built from the installer ISO; required when a host is a vm.",
    "additionalProperties": False,
    "required": ["vmid", "node"],
    "properties": {
        "vmid": {"$ref": "#/$defs/vmid"},
        "name": {"type": "string", "pattern": _DNS_LABEL, "default": "nixos-base", "x-fix": "use a DNS label"},
        "node": {"type": "string", "pattern": _DNS_LABEL, "x-fix": "name one of proxmox.nodes"},
        "cores": {"$ref": "#/$defs/cores", "default": 2},
        "memory": {"$ref": "#/$defs/memory", "default": 2048},
        "disk": {"$ref": "#/$defs/disk", "default": 20},
        "bios": {
            "type": "string",
            "enum": ["ovmf", "seabios"],
            "default": "ovmf",
            "description": "ovmf (UEFI, with an EFI disk) or seabios.",
        },
        "keep_isos": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 2,
            "description": (
                "After a new template is made, how many of the newest installer ISOs this collection uploaded "
                "stay on proxmox.iso_storage (the one just used among them); older ones are deleted, unless a VM "
                "has one attached. ISOs it did not upload are never touched (docs/template.md)."
            ),
            "x-fix": "give a whole number from 1 to 100, e.g. 2 (the new ISO and the one before it)",
        },
    },
}

# NFS mount options as fstab and the StorageClass take them: one option per item, no separators or quotes.
_NFS_OPTION = "^[A-Za-z0-9_][A-Za-z0-9_.:=+/@-]*$"
_NFS_DEFAULT_OPTIONS = ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"]
MOUNT_POINT_PATTERN = "^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$"


def _nfs_mount_fields() -> dict:
    """mount_point and options: the fields a host may override (hosts[].nfs) and the site section sets."""
    return {
        "mount_point": {
            "type": "string",
            "pattern": MOUNT_POINT_PATTERN,
            "description": "Where the NixOS hosts mount the export (systemd automount: mounted on first access).",
            "x-fix": "write an absolute directory outside the system's own, e.g. /mnt/nfs (no trailing '/', no spaces)",
        },
        "options": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {
                "type": "string",
                "pattern": _NFS_OPTION,
                "x-fix": "write one mount option per item, e.g. nfsvers=4 or hard (no commas, spaces or quotes)",
            },
            "description": "NFS mount options of this host's mount, in place of nfs.options.",
            "x-fix": "list mount options, e.g. [nfsvers=4, hard]",
        },
    }


_NFS = {
    "type": "object",
    "description": "A NAS export every host mounts and a Kubernetes StorageClass (csi-driver-nfs) provisions from.",
    "additionalProperties": False,
    "required": ["server", "export"],
    "properties": {
        "server": {
            "type": "string",
            "format": "ipv4-or-hostname",
            "description": "The NFS server: an IPv4 address or a DNS name.",
            "x-fix": "write the NAS's IPv4 address (e.g. 192.168.10.4) or its DNS name (e.g. nas.lab.example)",
        },
        "export": {
            "type": "string",
            "pattern": "^/([A-Za-z0-9_.+@:-]+(/[A-Za-z0-9_.+@:-]+)*)?$",
            "description": "The exported directory on the server, an absolute path.",
            "x-fix": "write the export's absolute path as the NAS shows it, e.g. /volume1/k8s (no trailing '/')",
        },
        "mount_point": dict(_nfs_mount_fields()["mount_point"], default="/mnt/nfs"),
        "options": dict(
            _nfs_mount_fields()["options"],
            default=_NFS_DEFAULT_OPTIONS,
            description="NFS mount options of the hosts' mount and of the StorageClass (mountOptions).",
        ),
        "storage_class": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "default": "nfs",
            "description": "Name of the Kubernetes StorageClass for the export.",
            "x-fix": "use a DNS label other than longhorn, e.g. nfs",
        },
        "default_class": {
            "type": "boolean",
            "default": False,
            "description": "Make the NFS class the cluster's default instead of Longhorn's.",
        },
        "reclaim_policy": {
            "type": "string",
            "enum": ["Retain", "Delete"],
            "default": "Retain",
            "description": "Retain keeps a volume's directory on the NAS when its claim is deleted; Delete removes it.",
        },
    },
}

_HOST_NFS = {
    "type": ["boolean", "object"],
    "description": "This host's NFS mount: false leaves it unmounted here; a mapping overrides mount_point or "
    "options of the nfs section.",
    "additionalProperties": False,
    "properties": _nfs_mount_fields(),
    "x-fix": "write false (no mount on this host) or a mapping with mount_point and/or options",
}

# Ports a host's node exporter may not take: DNS and Caddy (home services) and K3s's (API server, etcd, kubelet)
SERVICE_RESERVED_PORTS = (53, 80, 443, 2379, 2380, 6443, 10250)
DNS_ENGINES = ("blocky", "adguardhome")
DNS_DEFAULT_UPSTREAMS = ["1.1.1.1", "9.9.9.9"]
NODE_EXPORTER_PORT = 9100
# A lower-case DNS name (a bare label joins network.domain)
LOCAL_NAME_PATTERN = _DOMAIN
_UPSTREAM_URL = "^https?://[^/\\s]+(/\\S*)?$"
_LOCAL_NAME = {
    "type": "string",
    "pattern": _DOMAIN,
    "description": "A name on the site's domain; a bare label means <label>.<network.domain>.",
    "x-fix": "write a DNS label such as nas (for nas.<network.domain>) or a full lower-case name inside the domain",
}

_HOST_DNS = {
    "type": ["boolean", "object"],
    "description": "A DNS server on this host (true: with the defaults) answering for every host, every cluster "
    "ingress host (Traefik's address) and every Caddy proxy name, and forwarding the rest; opens port 53.",
    "additionalProperties": False,
    "properties": {
        "engine": {
            "type": "string",
            "enum": list(DNS_ENGINES),
            "default": "blocky",
            "description": "blocky or adguardhome (its web UI only on the host's 127.0.0.1:3000).",
        },
        "upstreams": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "format": "ipv4", "x-fix": "write an IPv4 address, e.g. 9.9.9.9"},
            "default": DNS_DEFAULT_UPSTREAMS,
            "description": "DNS servers (IPv4) every other name is forwarded to.",
            "x-fix": "list IPv4 addresses of DNS servers, e.g. [1.1.1.1, 9.9.9.9]",
        },
        "records": {
            "type": "array",
            "default": [],
            "description": "Further local A records.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "address"],
                "properties": {
                    "name": _LOCAL_NAME,
                    "address": {
                        "type": "string",
                        "format": "ipv4",
                        "description": "Its IPv4 address.",
                        "x-fix": "write an IPv4 address, e.g. 192.168.10.4",
                    },
                },
            },
        },
    },
    "x-fix": "write true (a DNS server with the defaults) or a mapping with engine, upstreams and/or records",
}

_HOST_CADDY = {
    "type": "object",
    "description": "Caddy on this host as HTTPS reverse proxy for names on the site's domain (ports 80 and 443).",
    "additionalProperties": False,
    "required": ["proxies"],
    "properties": {
        "proxies": {
            "type": "array",
            "minItems": 1,
            "description": "The names Caddy serves and where it forwards each.",
            "x-fix": "list mappings of name and upstream, e.g. [{name: nas, upstream: http://192.168.10.4:5000}]",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "upstream"],
                "properties": {
                    "name": _LOCAL_NAME,
                    "upstream": {
                        "type": "string",
                        "pattern": _UPSTREAM_URL,
                        "description": "The http:// or https:// URL requests are forwarded to.",
                        "x-fix": "write a URL such as http://192.168.10.4:5000",
                    },
                },
            },
        },
    },
    "x-fix": "write a mapping with proxies",
}

_HOST_NODE_EXPORTER = {
    "type": ["boolean", "object"],
    "description": "The Prometheus node exporter on this host (true: port 9100), reachable from network.cidr only; "
    "with monitoring the cluster's Prometheus scrapes it.",
    "additionalProperties": False,
    "properties": {
        "port": {
            "type": "integer",
            "minimum": 1024,
            "maximum": 65535,
            "default": NODE_EXPORTER_PORT,
            "description": "Its TCP port.",
            "x-fix": "give a port from 1024 to 65535 that nothing else on the host uses, e.g. 9100",
        },
    },
    "x-fix": "write true (port 9100) or a mapping with port",
}

_HOST_SERVICES = {
    "type": "object",
    "description": "Home services this host runs (NixOS modules of the collection, docs/home-services.md).",
    "additionalProperties": False,
    "properties": {"dns": _HOST_DNS, "caddy": _HOST_CADDY, "node_exporter": _HOST_NODE_EXPORTER},
}

_HOST = {
    "type": "object",
    "description": "One machine of the cluster.",
    "additionalProperties": False,
    "required": ["name", "role", "kind", "ip"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "description": "Host name, a DNS label.",
            "x-fix": "use lower-case letters, digits and '-' (no dots, no underscores), at most 63 characters",
        },
        "role": {"type": "string", "enum": ["control-plane", "worker"], "description": "K3s role."},
        "kind": {"type": "string", "enum": ["vm", "baremetal"], "description": "Proxmox VM or bare metal."},
        "ip": {
            "type": "string",
            "format": "ipv4-interface",
            "description": "Static address in CIDR form, inside network.cidr.",
            "x-fix": "write address/prefix, e.g. 192.168.10.21/24",
        },
        "vmid": {"$ref": "#/$defs/vmid", "description": "VM id (kind vm only)."},
        "node": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "description": "Proxmox node (kind vm only).",
            "x-fix": "name one of proxmox.nodes",
        },
        "mac": {
            "type": "string",
            "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
            "format": "mac-address",
            "description": "MAC of the NIC on the LAN (baremetal; optional for vm to pin it).",
            "x-fix": "write the NIC's own MAC as six colon-separated hex pairs (ip link shows it), "
            "e.g. 58:47:ca:00:00:01",
        },
        "disk_id": {
            "type": "string",
            "pattern": "^/dev/disk/by-id/[^/\\s]+$",
            "description": "Install disk by stable id (baremetal only): it is wiped on install.",
            "x-fix": "use the disk's /dev/disk/by-id/... path (ls -l /dev/disk/by-id on the machine)",
        },
        "cores": {"$ref": "#/$defs/cores"},
        "memory": {"$ref": "#/$defs/memory"},
        "disk": {"$ref": "#/$defs/disk"},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.+-]*$"}},
        "nfs": _HOST_NFS,
        "services": _HOST_SERVICES,
    },
}

_K3S = {
    "type": "object",
    "description": "K3s settings.",
    "additionalProperties": False,
    "required": ["token_sops"],
    "properties": {
        "version": {
            "type": "string",
            "pattern": "^v\\d+\\.\\d+\\.\\d+\\+k3s\\d+$",
            "description": "K3s release; empty means K3s 1.31 at the patch release the nixpkgs pin carries.",
            "x-fix": "write a K3s release such as v1.31.4+k3s1",
        },
        "token_sops": dict(_SOPS_REF, description="Where the cluster join token is kept."),
        "cluster_cidr": {"type": "string", "format": "ipv4-network", "default": "10.42.0.0/16"},
        "service_cidr": {"type": "string", "format": "ipv4-network", "default": "10.43.0.0/16"},
        "disable": {
            "type": "array",
            "items": {"type": "string", "enum": ["servicelb", "traefik", "local-storage", "metrics-server"]},
            "default": ["servicelb", "traefik"],
            "description": "Packaged components to turn off (MetalLB and the Flux-managed Traefik replace them).",
        },
        "extra_args": {"type": "array", "items": {"type": "string"}, "default": []},
    },
}

_METALLB = {
    "type": "object",
    "description": "MetalLB L2 address pool.",
    "additionalProperties": False,
    "required": ["addresses"],
    "properties": {
        "addresses": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "string",
                "format": "ipv4-range",
                "x-fix": "write FIRST-LAST (192.168.10.200-192.168.10.220) or a CIDR (192.168.10.224/28)",
            },
            "description": "Ranges FIRST-LAST or CIDRs, inside network.cidr and clear of hosts.",
        },
    },
}

_FLUX = {
    "type": "object",
    "description": "The Git source Flux is bootstrapped from.",
    "additionalProperties": False,
    "required": ["provider", "owner", "repository", "path"],
    "properties": {
        "provider": {"type": "string", "enum": ["github", "gitlab", "gitea"]},
        "owner": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$", "x-fix": "the user or org"},
        "repository": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$", "x-fix": "the repository name alone"},
        "branch": {"type": "string", "minLength": 1, "default": "main"},
        "path": {
            "type": "string",
            "pattern": "^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
            "format": "relative-path",
            "description": "Directory in the repository, e.g. clusters/home.",
            "x-fix": "write a relative path inside the repository without leading or trailing '/', e.g. clusters/home",
        },
        "personal": {"type": "boolean", "default": False},
        "token_env": {
            "type": "string",
            "pattern": _ENV_NAME,
            "default": "GITHUB_TOKEN",
            "x-fix": "name an environment variable such as GITHUB_TOKEN",
        },
    },
}

_SOPS = {
    "type": "object",
    "description": "sops/age: who can decrypt the site's secrets besides the hosts.",
    "additionalProperties": False,
    "required": ["admin_recipients"],
    "properties": {
        "admin_recipients": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "string",
                "format": "age-recipient",
                "x-fix": "paste the output of age-keygen -y (age1 followed by 58 characters)",
            },
        },
    },
}

# An app's name becomes its HelmRelease's, and Helm refuses release names over 53 characters
_APP_NAME = "^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$"

_APP_INGRESS = {
    "type": "object",
    "description": "An Ingress for the app (Traefik), its certificate from the site CA (issuer site-ca).",
    "additionalProperties": False,
    "required": ["host", "port"],
    "properties": {
        "host": {
            "type": "string",
            "pattern": _DOMAIN,
            "description": "Host name; a bare label means <label>.<network.domain>.",
            "x-fix": "write a DNS label such as podinfo (for podinfo.<network.domain>) or a full name",
        },
        "service": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "description": "The Service the Ingress sends to; defaults to the app's name.",
            "x-fix": "name the chart's Service (kubectl get svc -n <namespace>), a DNS label",
        },
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "The Service's port number.",
            "x-fix": "give the Service's port number, from 1 to 65535",
        },
    },
}

_APP = {
    "type": "object",
    "description": "One application Flux installs from a Helm chart, in the apps stage.",
    "additionalProperties": False,
    "required": ["name", "repository", "chart", "version"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": _APP_NAME,
            "description": "App name, a DNS label of at most 53 characters: the HelmRelease's name.",
            "x-fix": "use lower-case letters, digits and '-', at most 53 characters (Helm's limit)",
        },
        "repository": {
            "type": "string",
            "pattern": "^(https|oci)://[^/\\s]+(/[^\\s]*)?$",
            "description": "The chart repository: an https:// Helm repository or an oci:// registry path.",
            "x-fix": "give the repository's https:// URL (helm repo add) or oci://REGISTRY/PATH without the chart",
        },
        "chart": {
            "type": "string",
            "pattern": "^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$",
            "description": "The chart's name in the repository.",
            "x-fix": "write the chart name alone, e.g. podinfo (helm search repo shows it)",
        },
        "version": {
            "type": "string",
            "pattern": _CHART_VERSION,
            "description": "One exact chart version.",
            "x-fix": "write one exact chart version (no range), e.g. 6.9.2",
        },
        "namespace": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "description": "Namespace of the release; defaults to the app's name.",
            "x-fix": "use a DNS label that is not one of the platform's namespaces",
        },
        "values": {
            "type": "object",
            "default": {},
            "description": "Chart values (no secrets: those go in values_sops).",
            "x-fix": "write the chart's values as a mapping",
        },
        "ingress": _APP_INGRESS,
        "values_sops": {
            "type": "string",
            "pattern": "^[^/\\s][^\\s]*[.]sops[.]ya?ml$",
            "format": "relative-path",
            "description": "A sops-encrypted YAML file of further values (secrets), relative to the site file.",
            "x-fix": "give a relative path to a sops YAML file inside the site's directory, "
            "e.g. secrets/apps/grafana.sops.yaml",
        },
    },
}

SITE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "nerv.homelab site",
    "description": "One homelab site: its network, Proxmox, hosts, K3s, MetalLB, Flux and sops settings.",
    "type": "object",
    "additionalProperties": False,
    "required": ["site", "network", "hosts", "k3s", "metallb", "flux", "sops", "admin_ssh_keys"],
    "properties": {
        "schema_version": {"type": "integer", "enum": [1], "default": 1},
        "site": _SITE,
        "network": _NETWORK,
        "proxmox": _PROXMOX,
        "template": _TEMPLATE,
        "hosts": {"type": "array", "minItems": 1, "items": _HOST},
        "k3s": _K3S,
        "metallb": _METALLB,
        "flux": _FLUX,
        "sops": _SOPS,
        "platform": _PLATFORM,
        "nfs": _NFS,
        "apps": {
            "type": "array",
            "default": [],
            "description": "Applications Flux installs from Helm charts (apps stage); one removed here is removed.",
            "items": _APP,
        },
        "monitoring": _MONITORING,
        "admin_ssh_keys": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "string",
                "format": "ssh-public-key",
                "x-fix": "paste one line of a .pub file: TYPE BASE64 [comment], e.g. ssh-ed25519 AAAA... me@laptop",
            },
        },
    },
    "$defs": {
        "vmid": {
            "type": "integer",
            "minimum": 100,
            "maximum": 999999999,
            "x-fix": "pick a VM id from 100 to 999999999",
        },
        "cores": {"type": "integer", "minimum": 1, "maximum": 512, "x-fix": "give a core count from 1 to 512"},
        "memory": {
            "type": "integer",
            "minimum": 512,
            "description": "MiB.",
            "x-fix": "give memory in MiB, at least 512",
        },
        "disk": {"type": "integer", "minimum": 4, "description": "GiB.", "x-fix": "give the disk size in GiB, >= 4"},
    },
}
