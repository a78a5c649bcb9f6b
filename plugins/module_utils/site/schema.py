# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site model as a JSON Schema (draft 2020-12).

This dict is the single definition of a site file. ``docs/site.schema.json`` is generated from it
(``python -m`` is not available for collection code, so ``tests/unit`` checks the two stay equal).
``x-fix`` is our own annotation: the advice printed when a value breaks the rule next to it.
"""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.names import DNS_LABEL

_DOMAIN = "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_ENV_NAME = "^[A-Z_][A-Z0-9_]*$"
_STORAGE_ID = "^[A-Za-z][A-Za-z0-9._-]*$"


def _field(kind, what: str = "", fix: str = "", **rule) -> dict:
    """A value: its type and rule (in the order given, as the generated JSON shows them), its meaning, the advice."""
    node = {"type": kind, **rule}
    if what:
        node["description"] = what
    if fix:
        node["x-fix"] = fix
    return node


def _object(properties: dict, what: str = "", fix: str = "", kind="object", **rule) -> dict:
    """A mapping that takes no keys besides its properties."""
    node = {"type": kind}
    if what:
        node["description"] = what
    node.update(additionalProperties=False, **rule, properties=properties)
    if fix:
        node["x-fix"] = fix
    return node


_SOPS_REF = _object(
    {
        "file": _field(
            "string",
            fix="give the path of a sops file inside the site's directory (relative to the site file), "
            "e.g. secrets/k3s.sops.yaml",
            minLength=1,
            format="relative-path",
        ),
        "key": _field("string", fix="give the key path inside the sops file, e.g. proxmox.token_secret", minLength=1),
    },
    "A value kept in a sops-encrypted file: the file (relative to the site file) and the key in it.",
    required=["file", "key"],
)

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
        fix = f"write one Flux release with its v, e.g. {default}"
        return _field(
            "string", "Flux release flux bootstrap installs (--version).", fix, pattern=FLUX_RELEASE, default=default
        )
    what = "Tag of Capacitor's manifests (the Flux UI)" if name == "capacitor" else f"Chart version of {name}"
    fix = f"write one exact chart version (no range), e.g. {default}"
    return _field("string", f"{what.replace('_', '-')}.", fix, pattern=_CHART_VERSION, default=default)


_PLATFORM = _object(
    {
        "versions": _object(
            {name: _version(name, default) for name, default in PLATFORM_VERSIONS.items()},
            default={},
        ),
    },
    "What Flux deploys: the versions of Flux and of the platform's charts (each may be pinned).",
    default={},
)

# Prometheus' own duration syntax (units in this order, as its flag and the operator's CRD accept them), not empty
_PROM_DURATION = "^(?=[0-9])([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
# A Kubernetes storage request in binary units: what a PersistentVolumeClaim asks for
_STORAGE_SIZE = "^[1-9][0-9]*(Mi|Gi|Ti)$"
_DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _size(what: str, default: str) -> dict:
    what = f"Size of the {what} volume (a PersistentVolumeClaim on storage_class)."
    return _field(
        "string",
        what,
        f"write a whole number with Mi, Gi or Ti, e.g. {default}",
        pattern=_STORAGE_SIZE,
        default=default,
    )


_MONITORING = _object(
    {
        "retention": _field(
            "string",
            "How long Prometheus keeps samples (a Prometheus duration).",
            "write a Prometheus duration: a number and a unit (y, w, d, h, m, s, ms), e.g. 15d or 1w3d",
            pattern=_PROM_DURATION,
            default="15d",
        ),
        "prometheus_storage": _size("Prometheus", "20Gi"),
        "alertmanager_storage": _size("Alertmanager", "2Gi"),
        "grafana_storage": _size("Grafana", "5Gi"),
        "storage_class": _field(
            "string",
            "StorageClass of the three volumes; default: the site's default class (longhorn, or "
            "nfs.storage_class when nfs.default_class is true).",
            "name a StorageClass of the cluster (kubectl get storageclass), e.g. longhorn",
            pattern=_DNS_SUBDOMAIN,
        ),
        "grafana_host": _field(
            "string",
            "Host name Grafana is served on (Traefik, certificate from the site's CA); "
            "default grafana.<network.domain>.",
            "write a lower-case DNS name such as grafana.lab.example",
            pattern=_DOMAIN,
        ),
        "alerts": _object(
            {
                "node_not_ready": _field(
                    "boolean", "Alert when a node has not been Ready for 5 minutes.", default=True
                ),
                "flux_not_ready": _field(
                    "boolean", "Alert when a Flux object has not been Ready for 10 minutes.", default=True
                ),
                "volume_filling_up": _field(
                    "boolean", "Alert when a PersistentVolumeClaim is fuller than volume_full_percent.", default=True
                ),
                "volume_full_percent": _field(
                    "integer",
                    "Percent used at which volume_filling_up fires.",
                    "give a percentage from 50 to 99, e.g. 85",
                    minimum=50,
                    maximum=99,
                    default=85,
                ),
            },
            "Which of the platform's alerts to render (all on by default).",
            default={},
        ),
    },
    "Prometheus, Alertmanager and Grafana (kube-prometheus-stack) with the platform's alerts; "
    "present (even empty: monitoring: {}) turns monitoring on.",
)

_SITE = _object(
    {
        "name": _field(
            "string",
            "Site name, a DNS label.",
            "use lower-case letters, digits and '-', at most 63 characters",
            pattern=DNS_LABEL,
        ),
        "description": {"type": "string"},
    },
    "What the site is called.",
    required=["name"],
)

_NETWORK = _object(
    {
        "cidr": _field(
            "string",
            "IPv4 network in CIDR form, e.g. 192.168.10.0/24.",
            "write the network address and prefix, e.g. 192.168.10.0/24",
            format="ipv4-network",
        ),
        "gateway": _field(
            "string", "Default gateway, inside cidr.", "write an IPv4 address, e.g. 192.168.10.1", format="ipv4"
        ),
        "dns": _field(
            "array",
            "DNS servers, in order.",
            minItems=1,
            items=_field("string", fix="write an IPv4 address, e.g. 192.168.10.1", format="ipv4"),
        ),
        "domain": _field(
            "string",
            "Search domain; host FQDNs are <name>.<domain>.",
            "use a lower-case DNS name such as lab.example",
            pattern=_DOMAIN,
        ),
    },
    "The LAN every host and the MetalLB pool live on.",
    required=["cidr", "gateway", "dns", "domain"],
)

_PROXMOX = _object(
    {
        "url": _field(
            "string",
            "API URL, https only, e.g. https://pve1.lab.example:8006.",
            "use an https:// URL such as https://pve1.lab.example:8006 (the API is TLS only)",
            pattern="^https://[^/\\s]+(/.*)?$",
        ),
        "token_id": _field(
            "string",
            "API token id USER@REALM!TOKENID.",
            "write it as USER@REALM!TOKENID, e.g. automation@pve!nerv",
            pattern="^[^@!\\s]+@[^@!\\s]+![A-Za-z][A-Za-z0-9._-]*$",
        ),
        "token_secret_env": _field(
            "string",
            "Environment variable holding the token secret.",
            "name an environment variable such as PROXMOX_TOKEN_SECRET",
            pattern=_ENV_NAME,
            default="PROXMOX_TOKEN_SECRET",
        ),
        "token_secret_sops": dict(_SOPS_REF, description="Where the token secret is kept when not in the env."),
        "validate_certs": {"type": "boolean", "default": True, "description": "Verify the API's TLS certificate."},
        "ca_path": {"type": "string", "description": "CA bundle to verify the API certificate with."},
        "nodes": _field(
            "array",
            "Cluster node names hosts may be placed on.",
            minItems=1,
            uniqueItems=True,
            items=_field("string", fix="use the node's name as Proxmox shows it", pattern=DNS_LABEL),
        ),
        "storage": _field(
            "string",
            "Storage for VM disks, e.g. local-lvm.",
            "name a Proxmox storage id such as local-lvm",
            pattern=_STORAGE_ID,
        ),
        "iso_storage": _field(
            "string",
            "Storage that holds ISO images.",
            "name a Proxmox storage id with content 'iso', such as local",
            pattern=_STORAGE_ID,
            default="local",
        ),
        "bridge": _field(
            "string",
            "Linux bridge the VM NICs attach to, e.g. vmbr0.",
            "name a bridge such as vmbr0",
            pattern=_STORAGE_ID,
        ),
        "pool": {"type": "string", "description": "Resource pool the site's VMs join."},
    },
    "The Proxmox VE endpoint and where VMs go; required when a host is a vm. No secrets here.",
    required=["url", "token_id", "nodes", "storage", "bridge"],
)

_TEMPLATE = _object(
    {
        "vmid": {"$ref": "#/$defs/vmid"},
        "name": {"type": "string", "pattern": DNS_LABEL, "default": "nixos-base", "x-fix": "use a DNS label"},
        "node": {"type": "string", "pattern": DNS_LABEL, "x-fix": "name one of proxmox.nodes"},
        "cores": {"$ref": "#/$defs/cores", "default": 2},
        "memory": {"$ref": "#/$defs/memory", "default": 2048},
        "disk": {"$ref": "#/$defs/disk", "default": 20},
        "bios": _field("string", "ovmf (UEFI, with an EFI disk) or seabios.", enum=["ovmf", "seabios"], default="ovmf"),
        "keep_isos": _field(
            "integer",
            "After a new template is made, how many of the newest installer ISOs this collection uploaded "
            "stay on proxmox.iso_storage (the one just used among them); older ones are deleted, unless a VM "
            "has one attached. ISOs it did not upload are never touched (docs/template.md).",
            "give a whole number from 1 to 100, e.g. 2 (the new ISO and the one before it)",
            minimum=1,
            maximum=100,
            default=2,
        ),
    },
    "The NixOS base template built from the installer ISO; required when a host is a vm.",
    required=["vmid", "node"],
)

# NFS mount options as fstab and the StorageClass take them: one option per item, no separators or quotes.
_NFS_OPTION = "^[A-Za-z0-9_][A-Za-z0-9_.:=+/@-]*$"
NFS_MOUNT_POINT = "/mnt/nfs"
NFS_OPTIONS = ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"]
MOUNT_POINT_PATTERN = "^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$"
# mount_point and options: the fields a host may override (hosts[].nfs) and the site section sets
_NFS_MOUNT = {
    "mount_point": _field(
        "string",
        "Where the NixOS hosts mount the export (systemd automount: mounted on first access).",
        "write an absolute directory outside the system's own, e.g. /mnt/nfs (no trailing '/', no spaces)",
        pattern=MOUNT_POINT_PATTERN,
    ),
    "options": _field(
        "array",
        "NFS mount options of this host's mount, in place of nfs.options.",
        "list mount options, e.g. [nfsvers=4, hard]",
        minItems=1,
        uniqueItems=True,
        items=_field(
            "string",
            fix="write one mount option per item, e.g. nfsvers=4 or hard (no commas, spaces or quotes)",
            pattern=_NFS_OPTION,
        ),
    ),
}

_NFS = _object(
    {
        "server": _field(
            "string",
            "The NFS server: an IPv4 address or a DNS name.",
            "write the NAS's IPv4 address (e.g. 192.168.10.4) or its DNS name (e.g. nas.lab.example)",
            format="ipv4-or-hostname",
        ),
        "export": _field(
            "string",
            "The exported directory on the server, an absolute path.",
            "write the export's absolute path as the NAS shows it, e.g. /volume1/k8s (no trailing '/')",
            pattern="^/([A-Za-z0-9_.+@:-]+(/[A-Za-z0-9_.+@:-]+)*)?$",
        ),
        "mount_point": dict(_NFS_MOUNT["mount_point"], default=NFS_MOUNT_POINT),
        "options": dict(
            _NFS_MOUNT["options"],
            default=NFS_OPTIONS,
            description="NFS mount options of the hosts' mount and of the StorageClass (mountOptions).",
        ),
        "storage_class": _field(
            "string",
            "Name of the Kubernetes StorageClass for the export.",
            "use a DNS label other than longhorn, e.g. nfs",
            pattern=DNS_LABEL,
            default="nfs",
        ),
        "default_class": _field(
            "boolean", "Make the NFS class the cluster's default instead of Longhorn's.", default=False
        ),
        "reclaim_policy": _field(
            "string",
            "Retain keeps a volume's directory on the NAS when its claim is deleted; Delete removes it.",
            enum=["Retain", "Delete"],
            default="Retain",
        ),
    },
    "A NAS export every host mounts and a Kubernetes StorageClass (csi-driver-nfs) provisions from.",
    required=["server", "export"],
)

_HOST_NFS = _object(
    _NFS_MOUNT,
    "This host's NFS mount: false leaves it unmounted here; a mapping overrides mount_point or "
    "options of the nfs section.",
    "write false (no mount on this host) or a mapping with mount_point and/or options",
    kind=["boolean", "object"],
)

# Ports a host's node exporter may not take: DNS and Caddy (home services) and K3s's (API server, etcd, kubelet)
SERVICE_RESERVED_PORTS = (53, 80, 443, 2379, 2380, 6443, 10250)
DNS_ENGINES = ("blocky", "adguardhome")
DNS_DEFAULT_UPSTREAMS = ["1.1.1.1", "9.9.9.9"]
NODE_EXPORTER_PORT = 9100
# A lower-case DNS name (a bare label joins network.domain)
LOCAL_NAME_PATTERN = _DOMAIN
_LOCAL_NAME = _field(
    "string",
    "A name on the site's domain; a bare label means <label>.<network.domain>.",
    "write a DNS label such as nas (for nas.<network.domain>) or a full lower-case name inside the domain",
    pattern=_DOMAIN,
)


def _named(value_key: str, value: dict) -> dict:
    """One entry of a list of names on the site's domain, each with its value (an address, an upstream)."""
    return _object({"name": _LOCAL_NAME, value_key: value}, required=["name", value_key])


_HOST_DNS = _object(
    {
        "engine": _field(
            "string",
            "blocky or adguardhome (its web UI only on the host's 127.0.0.1:3000).",
            enum=list(DNS_ENGINES),
            default="blocky",
        ),
        "upstreams": _field(
            "array",
            "DNS servers (IPv4) every other name is forwarded to.",
            "list IPv4 addresses of DNS servers, e.g. [1.1.1.1, 9.9.9.9]",
            minItems=1,
            items=_field("string", fix="write an IPv4 address, e.g. 9.9.9.9", format="ipv4"),
            default=DNS_DEFAULT_UPSTREAMS,
        ),
        "records": {
            "type": "array",
            "default": [],
            "description": "Further local A records.",
            "items": _named(
                "address",
                _field("string", "Its IPv4 address.", "write an IPv4 address, e.g. 192.168.10.4", format="ipv4"),
            ),
        },
    },
    "A DNS server on this host (true: with the defaults) answering for every host, every cluster "
    "ingress host (Traefik's address) and every Caddy proxy name, and forwarding the rest; opens port 53.",
    "write true (a DNS server with the defaults) or a mapping with engine, upstreams and/or records",
    kind=["boolean", "object"],
)

_HOST_CADDY = _object(
    {
        "proxies": {
            "type": "array",
            "minItems": 1,
            "description": "The names Caddy serves and where it forwards each.",
            "x-fix": "list mappings of name and upstream, e.g. [{name: nas, upstream: http://192.168.10.4:5000}]",
            "items": _named(
                "upstream",
                _field(
                    "string",
                    "The http:// or https:// URL requests are forwarded to.",
                    "write a URL such as http://192.168.10.4:5000",
                    pattern="^https?://[^/\\s]+(/\\S*)?$",
                ),
            ),
        },
    },
    "Caddy on this host as HTTPS reverse proxy for names on the site's domain (ports 80 and 443).",
    "write a mapping with proxies",
    required=["proxies"],
)

_HOST_NODE_EXPORTER = _object(
    {
        "port": _field(
            "integer",
            "Its TCP port.",
            "give a port from 1024 to 65535 that nothing else on the host uses, e.g. 9100",
            minimum=1024,
            maximum=65535,
            default=NODE_EXPORTER_PORT,
        ),
    },
    "The Prometheus node exporter on this host (true: port 9100), reachable from network.cidr only; "
    "with monitoring the cluster's Prometheus scrapes it.",
    "write true (port 9100) or a mapping with port",
    kind=["boolean", "object"],
)

_HOST = _object(
    {
        "name": _field(
            "string",
            "Host name, a DNS label.",
            "use lower-case letters, digits and '-' (no dots, no underscores), at most 63 characters",
            pattern=DNS_LABEL,
        ),
        "role": {"type": "string", "enum": ["control-plane", "worker"], "description": "K3s role."},
        "kind": {"type": "string", "enum": ["vm", "baremetal"], "description": "Proxmox VM or bare metal."},
        "ip": _field(
            "string",
            "Static address in CIDR form, inside network.cidr.",
            "write address/prefix, e.g. 192.168.10.21/24",
            format="ipv4-interface",
        ),
        "vmid": {"$ref": "#/$defs/vmid", "description": "VM id (kind vm only)."},
        "node": _field("string", "Proxmox node (kind vm only).", "name one of proxmox.nodes", pattern=DNS_LABEL),
        "mac": _field(
            "string",
            "MAC of the NIC on the LAN (baremetal; optional for vm to pin it).",
            "write the NIC's own MAC as six colon-separated hex pairs (ip link shows it), e.g. 58:47:ca:00:00:01",
            pattern="^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
            format="mac-address",
        ),
        "disk_id": _field(
            "string",
            "Install disk by stable id (baremetal only): it is wiped on install.",
            "use the disk's /dev/disk/by-id/... path (ls -l /dev/disk/by-id on the machine)",
            pattern="^/dev/disk/by-id/[^/\\s]+$",
        ),
        "cores": {"$ref": "#/$defs/cores"},
        "memory": {"$ref": "#/$defs/memory"},
        "disk": {"$ref": "#/$defs/disk"},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.+-]*$"}},
        "nfs": _HOST_NFS,
        "services": _object(
            {"dns": _HOST_DNS, "caddy": _HOST_CADDY, "node_exporter": _HOST_NODE_EXPORTER},
            "Home services this host runs (NixOS modules of the collection, docs/home-services.md).",
        ),
    },
    "One machine of the cluster.",
    required=["name", "role", "kind", "ip"],
)

_K3S = _object(
    {
        "version": _field(
            "string",
            "K3s release; empty means K3s 1.31 at the patch release the nixpkgs pin carries.",
            "write a K3s release such as v1.31.4+k3s1",
            pattern="^v\\d+\\.\\d+\\.\\d+\\+k3s\\d+$",
        ),
        "token_sops": dict(_SOPS_REF, description="Where the cluster join token is kept."),
        "cluster_cidr": {"type": "string", "format": "ipv4-network", "default": "10.42.0.0/16"},
        "service_cidr": {"type": "string", "format": "ipv4-network", "default": "10.43.0.0/16"},
        "disable": _field(
            "array",
            "Packaged components to turn off (MetalLB and the Flux-managed Traefik replace them).",
            items={"type": "string", "enum": ["servicelb", "traefik", "local-storage", "metrics-server"]},
            default=["servicelb", "traefik"],
        ),
        "extra_args": {"type": "array", "items": {"type": "string"}, "default": []},
    },
    "K3s settings.",
    required=["token_sops"],
)

_METALLB = _object(
    {
        "addresses": _field(
            "array",
            "Ranges FIRST-LAST or CIDRs, inside network.cidr and clear of hosts.",
            minItems=1,
            items=_field(
                "string",
                fix="write FIRST-LAST (192.168.10.200-192.168.10.220) or a CIDR (192.168.10.224/28)",
                format="ipv4-range",
            ),
        ),
    },
    "MetalLB L2 address pool.",
    required=["addresses"],
)

_FLUX = _object(
    {
        "provider": {"type": "string", "enum": ["github", "gitlab", "gitea"]},
        "owner": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$", "x-fix": "the user or org"},
        "repository": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$", "x-fix": "the repository name alone"},
        "branch": {"type": "string", "minLength": 1, "default": "main"},
        "path": _field(
            "string",
            "Directory in the repository, e.g. clusters/home.",
            "write a relative path inside the repository without leading or trailing '/', e.g. clusters/home",
            pattern="^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
            format="relative-path",
        ),
        "personal": {"type": "boolean", "default": False},
        "token_env": _field(
            "string", fix="name an environment variable such as GITHUB_TOKEN", pattern=_ENV_NAME, default="GITHUB_TOKEN"
        ),
    },
    "The Git source Flux is bootstrapped from.",
    required=["provider", "owner", "repository", "path"],
)

_SOPS = _object(
    {
        "admin_recipients": _field(
            "array",
            minItems=1,
            items=_field(
                "string",
                fix="paste the output of age-keygen -y (age1 followed by 58 characters)",
                format="age-recipient",
            ),
        ),
    },
    "sops/age: who can decrypt the site's secrets besides the hosts.",
    required=["admin_recipients"],
)

_BACKUP_KEYS = _object(
    {
        "dest": _field(
            "string",
            "Directory the exports go to, relative to the site file or absolute; best not the controller's disk.",
            "give a directory, e.g. /mnt/backup/nerv",
            minLength=1,
        ),
        "recipient": _field(
            "string",
            "The age recipient the export is encrypted to (a recovery key kept offline, not an admin's).",
            "paste the output of age-keygen -y for the recovery key (age1 followed by 58 characters)",
            format="age-recipient",
        ),
        "passphrase_env": _field(
            "string",
            "An environment variable holding a passphrase to encrypt to instead (as age -p), 16 characters or more.",
            "name an environment variable such as NERV_BACKUP_PASSPHRASE",
            pattern=_ENV_NAME,
        ),
    },
    "The keys' export (playbooks/backup_keys.yml): the admins' identities and the site's key files, age-encrypted.",
    required=["dest"],
)

# A cron line as Longhorn's recurring jobs read it (robfig/cron: five fields, or a descriptor such as @daily)
_CRON = "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9*/,-]+( [0-9*/,-]+){2}( [0-9A-Za-z*/,-]+){2})$"

_BACKUP_VOLUMES = _object(
    {
        "target": _field(
            "string",
            "Longhorn's backup target: an NFS export as nfs://SERVER:/PATH (a directory only Longhorn writes to).",
            "write nfs://, the NAS's name or address, ':' and the export's path, e.g. nfs://nas.lan:/export/longhorn",
            pattern="^nfs://[A-Za-z0-9.-]+:/[^\\s]*$",
        ),
        "schedule": _field(
            "string",
            "When every volume is backed up: a cron line (five fields, UTC) or @daily, @weekly...",
            "write five cron fields, e.g. '0 3 * * *' for 03:00 every day, or @daily",
            pattern=_CRON,
            default="0 3 * * *",
        ),
        "retain": _field(
            "integer",
            "How many backups of each volume are kept (the oldest beyond are deleted by Longhorn).",
            "give a count from 1 to 100 (Longhorn's limit)",
            minimum=1,
            maximum=100,
            default=14,
        ),
        "poll_interval": _field(
            "integer",
            "Seconds between Longhorn's looks at the target for backups made elsewhere (0: never).",
            "give seconds from 0 to 86400, e.g. 300",
            minimum=0,
            maximum=86400,
            default=300,
        ),
    },
    "Volume backups (Longhorn): every Longhorn volume backed up to the target on the schedule.",
    required=["target"],
)

_BACKUP = _object(
    {"keys": _BACKUP_KEYS, "volumes": _BACKUP_VOLUMES},
    "Backups; nothing is backed up until a part of it is declared.",
)

# An app's name becomes its HelmRelease's, and Helm refuses release names over 53 characters
_APP_NAME = "^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$"

_APP_INGRESS = _object(
    {
        "host": _field(
            "string",
            "Host name; a bare label means <label>.<network.domain>.",
            "write a DNS label such as podinfo (for podinfo.<network.domain>) or a full name",
            pattern=_DOMAIN,
        ),
        "service": _field(
            "string",
            "The Service the Ingress sends to; defaults to the app's name.",
            "name the chart's Service (kubectl get svc -n <namespace>), a DNS label",
            pattern=DNS_LABEL,
        ),
        "port": _field(
            "integer",
            "The Service's port number.",
            "give the Service's port number, from 1 to 65535",
            minimum=1,
            maximum=65535,
        ),
    },
    "An Ingress for the app (Traefik), its certificate from the site CA (issuer site-ca).",
    required=["host", "port"],
)

_APP = _object(
    {
        "name": _field(
            "string",
            "App name, a DNS label of at most 53 characters: the HelmRelease's name.",
            "use lower-case letters, digits and '-', at most 53 characters (Helm's limit)",
            pattern=_APP_NAME,
        ),
        "repository": _field(
            "string",
            "The chart repository: an https:// Helm repository or an oci:// registry path.",
            "give the repository's https:// URL (helm repo add) or oci://REGISTRY/PATH without the chart",
            pattern="^(https|oci)://[^/\\s]+(/[^\\s]*)?$",
        ),
        "chart": _field(
            "string",
            "The chart's name in the repository.",
            "write the chart name alone, e.g. podinfo (helm search repo shows it)",
            pattern="^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$",
        ),
        "version": _field(
            "string",
            "One exact chart version.",
            "write one exact chart version (no range), e.g. 6.9.2",
            pattern=_CHART_VERSION,
        ),
        "namespace": _field(
            "string",
            "Namespace of the release; defaults to the app's name.",
            "use a DNS label that is not one of the platform's namespaces",
            pattern=DNS_LABEL,
        ),
        "values": _field(
            "object",
            "Chart values (no secrets: those go in values_sops).",
            "write the chart's values as a mapping",
            default={},
        ),
        "ingress": _APP_INGRESS,
        "values_sops": _field(
            "string",
            "A sops-encrypted YAML file of further values (secrets), relative to the site file.",
            "give a relative path to a sops YAML file inside the site's directory, e.g. secrets/apps/grafana.sops.yaml",
            pattern="^[^/\\s][^\\s]*[.]sops[.]ya?ml$",
            format="relative-path",
        ),
    },
    "One application Flux installs from a Helm chart, in the apps stage.",
    required=["name", "repository", "chart", "version"],
)

SITE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://nerv.homelab/schemas/site-1.json",
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
        "backup": _BACKUP,
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
