# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a cluster through the `kubernetes` client: nodes and Flux objects, and what "Ready" means for them; a
node's cordon and drain. The run_* functions are the modules flux_status, k8s_nodes_ready, k8s_load_balancers and
k8s_node: each takes the AnsibleModule and returns its result.

Ready is the Ready condition True *for the current generation*: status.observedGeneration (or the condition's
own) must equal metadata.generation, or a stale Ready from before the last change would pass.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import asdict, dataclass

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline, Turn

# The cluster layer's third-party imports, each with its X_IMPORT_ERROR for require(); the sanity import test of the
# modules runs without them.
try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
except ImportError as exc:
    k8s_client = k8s_config = None
    KUBERNETES_IMPORT_ERROR = exc
else:
    KUBERNETES_IMPORT_ERROR = None

# The argument specs of the doc fragments nerv.homelab.kubeconfig, nerv.homelab.wait and nerv.homelab.wait.progress
KUBECONFIG_OPTIONS = {"kubeconfig": {"type": "path", "required": True}, "context": {"type": "str"}}
WAIT_OPTIONS = {"timeout": {"type": "int", "default": 600}, "interval": {"type": "float", "default": 5}}
PROGRESS_OPTIONS = {"return_after": {"type": "int", "default": 0}, "started": {"type": "float"}}

FLUX_KINDS = {
    "GitRepository": ("source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    "OCIRepository": ("source.toolkit.fluxcd.io", "v1", "ocirepositories"),
    "HelmRepository": ("source.toolkit.fluxcd.io", "v1", "helmrepositories"),
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    "HelmRelease": ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
}


class KubeError(NervError):
    """A cluster that cannot be read, or a wait that ran out; details go to fail_json."""


def require(library: str, import_error: ImportError | None) -> None:
    """KubeError, in the words of Ansible's missing_required_lib, when library could not be imported."""
    if import_error is not None:
        raise KubeError(missing_required_lib(library)) from import_error


_RAISE = object()


def call(what: str, method, *args, absent=_RAISE, **kwargs):
    """method(*args, **kwargs), else KubeError 'cannot <what>: <reason>'; with absent, what a 404 answers instead."""
    try:
        return method(*args, **kwargs)
    except Exception as exc:  # ApiException (an HTTP answer) or urllib3's connection errors
        if absent is not _RAISE and getattr(exc, "status", None) == 404:
            return absent
        raise KubeError(f"cannot {what}: {getattr(exc, 'reason', exc)}") from None


def read_custom(what: str, method, *args):
    """method(*args) on Flux's objects: None on a 404 (that API or object is not there), else KubeError 'cannot
    <what>: <status> <reason>', or 'cannot reach the cluster' when no HTTP answer came."""
    try:
        return method(*args)
    except Exception as exc:  # ApiException (an HTTP answer) or urllib3's connection errors
        status = getattr(exc, "status", None)
        if status == 404:
            return None
        if status is None:
            raise KubeError(f"cannot reach the cluster: {exc}") from None
        raise KubeError(f"cannot {what}: {status} {getattr(exc, 'reason', '')}") from None


def api_client(kubeconfig: str, context: str | None = None):
    require("kubernetes", KUBERNETES_IMPORT_ERROR)
    try:
        return k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as exc:  # the loader raises ConfigException, OSError, YAML errors ...
        raise KubeError(f"cannot load kubeconfig {kubeconfig}: {exc}") from None


@dataclass
class State:
    kind: str
    namespace: str
    name: str
    ready: str  # True | False | Unknown
    reason: str
    message: str
    generation: int
    observed_generation: int
    revision: str = ""
    suspended: bool = False

    @property
    def is_ready(self) -> bool:
        return self.ready == "True" and self.observed_generation == self.generation

    def row(self) -> list:
        stale = "" if self.observed_generation == self.generation else f" (observed {self.observed_generation})"
        return [f"{self.kind}/{self.namespace}/{self.name}", self.ready + stale, self.reason, self.message]


def state_of(kind: str, obj: dict) -> State:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    generation = int(meta.get("generation") or 0)
    observed = status.get("observedGeneration")
    if observed is None and ready is not None:
        observed = ready.get("observedGeneration")
    revision = status.get("lastAppliedRevision") or status.get("lastAttemptedRevision") or ""
    artifact = status.get("artifact") or {}
    return State(
        kind=kind,
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        ready=(ready or {}).get("status", "Unknown"),
        reason=(ready or {}).get("reason", "NoStatus" if not status else ""),
        message=_one_line((ready or {}).get("message", "")),
        generation=generation,
        observed_generation=int(observed if observed is not None else -1),
        revision=revision or artifact.get("revision", ""),
        suspended=bool((obj.get("spec") or {}).get("suspend")),
    )


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def flux_states(api, kinds: list, namespace: str | None) -> list:
    """The state of every object of these Flux kinds (all namespaces unless one is named)."""
    custom = k8s_client.CustomObjectsApi(api)
    states = []
    for kind in kinds:
        group, version, plural = FLUX_KINDS[kind]
        what = f"list {kind} objects"
        if namespace:
            listing = read_custom(what, custom.list_namespaced_custom_object, group, version, namespace, plural)
        else:
            listing = read_custom(what, custom.list_cluster_custom_object, group, version, plural)
        # None: this Flux API is not installed, nothing of that kind to wait for
        states += [state_of(kind, item) for item in (listing or {}).get("items", [])]
    return states


def table(rows: list, header=("OBJECT", "READY", "REASON", "MESSAGE")) -> str:
    rows = [list(header)] + rows
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + str(r[-1]) for r in rows
    )


def _why(state: State) -> str:
    if state.ready == "True":  # Ready, but for an older generation
        return f"generation {state.generation} not reconciled yet"
    return state.reason or f"Ready {state.ready}"


def _progress(what: str, total: int, waiting: list, shown: int = 3) -> str:
    """'12 of 15 <what> Ready; waiting for a, b, c and 2 more'"""
    line = f"{total - len(waiting)} of {total} {what} Ready"
    if not waiting:
        return line
    more = len(waiting) - shown
    return line + "; waiting for " + ", ".join(waiting[:shown]) + (f" and {more} more" if more > 0 else "")


def flux_progress(states: list, pending: list) -> str:
    """'12 of 15 Flux objects Ready; waiting for Kustomization/infrastructure-config (DependencyNotReady)'"""
    counted = [s for s in states if not s.suspended]
    if not counted:
        return "no Flux objects (yet)"
    return _progress("Flux objects", len(counted), [f"{s.kind}/{s.name} ({_why(s)})" for s in pending])


def run_flux_status(module) -> dict:
    """nerv.homelab.flux_status: every Flux object's state now, or - with wait - once all are Ready (or, with
    return_after, once this call's share of the wait is spent); KubeError with the table at the deadline."""
    p = module.params
    api = api_client(p["kubeconfig"], p["context"])
    turn = Turn(p["timeout"], p["started"], p["return_after"])
    while True:
        states = flux_states(api, p["kinds"], p["namespace"])
        pending = [s for s in states if not s.is_ready and not s.suspended]
        report = {
            "objects": [asdict(s) for s in states],
            "not_ready": [asdict(s) for s in pending],
            "progress": flux_progress(states, pending),
        }
        if not p["wait"] or not pending or turn.over:
            return {"changed": False, **report, "ready": not pending}
        if turn.deadline.passed:
            raise KubeError(
                f"{len(pending)} of {len(states)} Flux objects are not Ready after {p['timeout']:g} s:\n"
                + table([s.row() for s in pending]),
                **report,
            )
        turn.pause(p["interval"])


# ---- nodes ------------------------------------------------------------------------------------------------------


def node_states(api) -> dict:
    states = {}
    for node in call("list the nodes", k8s_client.CoreV1Api(api).list_node).items:
        ready = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None) if node.status else None
        states[node.metadata.name] = {
            "ready": ready.status if ready else "Unknown",
            "reason": (ready.reason if ready else "") or "",
            "message": _one_line(ready.message if ready and ready.message else ""),
        }
    return states


def nodes_progress(names: list, states: dict) -> str:
    """'2 of 3 nodes Ready; waiting for worker2 (NotReady: KubeletNotReady)'"""
    waiting = [n for n in names if states.get(n, {}).get("ready") != "True"]

    def why(name):
        if name not in states:
            return "not joined yet"
        state = states[name]
        word = "NotReady" if state["ready"] == "False" else f"Ready {state['ready']}"
        return word + (f": {state['reason']}" if state["reason"] else "")

    return _progress("nodes", len(names), [f"{n} ({why(n)})" for n in waiting])


def wait_nodes(
    api, names: list, timeout: float, interval: float, clock=time.monotonic, sleep=time.sleep,
    started: float | None = None, return_after: float = 0,
) -> tuple:  # fmt: skip
    """(states, not Ready) once every named node is Ready (or, with return_after, once this call's share of the
    wait is spent); KubeError with a per-node report at the deadline."""
    turn = Turn(timeout, started, return_after, clock, sleep)
    while True:
        states = node_states(api)
        missing = [n for n in names if states.get(n, {}).get("ready") != "True"]
        if not missing or turn.over:
            return states, missing
        if turn.deadline.passed:
            absent = ["absent", "NotRegistered", "the node has not joined the cluster"]
            rows = [
                [n, *([states[n][k] for k in ("ready", "reason", "message")] if n in states else absent)]
                for n in missing
            ]
            raise KubeError(
                f"{len(missing)} of {len(names)} nodes are not Ready after {timeout:g} s:\n"
                + table(rows, ("NODE", "READY", "REASON", "MESSAGE")),
                nodes=states,
                not_ready=missing,
                progress=nodes_progress(names, states),
            )
        turn.pause(interval)


def run_nodes_ready(module) -> dict:
    """nerv.homelab.k8s_nodes_ready: the named nodes' states once all are Ready (or return_after is spent)."""
    p = module.params
    if not p["names"]:
        raise KubeError("names is empty: list the nodes that must be Ready")
    api = api_client(p["kubeconfig"], p["context"])
    states, missing = wait_nodes(
        api, p["names"], p["timeout"], p["interval"], started=p["started"], return_after=p["return_after"]
    )
    progress = nodes_progress(p["names"], states)
    return {"changed": False, "nodes": states, "ready": not missing, "not_ready": missing, "progress": progress}


def in_pool(address: str, pool: list) -> bool:
    """Whether address falls in one of MetalLB's entries (a CIDR or a first-last range)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in pool:
        if "-" in entry:
            first, last = (ipaddress.ip_address(part.strip()) for part in entry.split("-", 1))
            if first.version == ip.version and first <= ip <= last:
                return True
        elif ip in ipaddress.ip_network(entry, strict=False):
            return True
    return False


def load_balancers(api, pool: list) -> list:
    """Services of type LoadBalancer with the addresses assigned to them, each marked in or outside the pool."""
    found = []
    for service in call("list the services", k8s_client.CoreV1Api(api).list_service_for_all_namespaces).items:
        if not service.spec or service.spec.type != "LoadBalancer":
            continue
        ingress = (
            (service.status.load_balancer.ingress or []) if service.status and service.status.load_balancer else []
        )
        addresses = [i.ip or i.hostname for i in ingress if i.ip or i.hostname]
        found.append({
            "namespace": service.metadata.namespace,
            "name": service.metadata.name,
            "addresses": addresses,
            "in_pool": bool(addresses) and all(in_pool(a, pool) for a in addresses),
        })  # fmt: skip
    return sorted(found, key=lambda s: (s["namespace"], s["name"]))


def run_load_balancers(module) -> dict:
    """nerv.homelab.k8s_load_balancers: the LoadBalancer Services and whether their addresses are in the pool."""
    api = api_client(module.params["kubeconfig"], module.params["context"])
    return {"changed": False, "services": load_balancers(api, module.params["pool"])}


# ------------------------------------------------------------------ a node's schedulability and its pods (drain)


def node_unschedulable(api, name: str) -> bool:
    """Whether the node is cordoned; KubeError when it is not a node of the cluster."""
    node = call(f"read node {name}", k8s_client.CoreV1Api(api).read_node, name, absent=None)
    if node is None:
        raise KubeError(f"{name} is not a node of the cluster (has it joined?)")
    return bool(node.spec and node.spec.unschedulable)


def _stays(pod) -> bool:
    """Pods a drain leaves: DaemonSet pods (their controller puts them back at once), mirror pods of static
    manifests (the kubelet owns them), and pods that have finished."""
    owners = pod.metadata.owner_references or []
    annotations = pod.metadata.annotations or {}
    finished = pod.status is not None and pod.status.phase in ("Succeeded", "Failed")
    return any(o.kind == "DaemonSet" for o in owners) or "kubernetes.io/config.mirror" in annotations or finished


def pods_to_evict(api, name: str) -> list:
    """'namespace/name' of every pod on the node that a drain evicts."""
    listing = k8s_client.CoreV1Api(api).list_pod_for_all_namespaces
    pods = call(f"list the pods of {name}", listing, field_selector=f"spec.nodeName={name}").items
    return sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods if not _stays(p))


def _evict(core, pod: str) -> bool:
    """Ask for one eviction; False when a disruption budget refuses it for now (429)."""
    namespace, name = pod.split("/", 1)
    body = k8s_client.V1Eviction(metadata=k8s_client.V1ObjectMeta(name=name, namespace=namespace))
    try:
        core.create_namespaced_pod_eviction(name, namespace, body)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status == 429:
            return False
        if status != 404:  # 404: gone already
            raise KubeError(f"cannot evict {pod}: {getattr(exc, 'reason', exc)}") from None
    return True


def drain(api, name: str, timeout: float, interval: float) -> list:
    """Evict the node's pods (retrying those a disruption budget holds) until none is left; KubeError naming the
    pods still there at the deadline. Returns the pods evicted."""
    core = k8s_client.CoreV1Api(api)
    deadline = Deadline(timeout)
    evicted = []
    while True:
        left = pods_to_evict(api, name)
        if not left:
            return evicted
        for pod in left:
            if pod not in evicted and _evict(core, pod):
                evicted.append(pod)
        if not deadline.pause(interval):
            held = ", ".join(left)
            raise KubeError(f"{name} still runs {held} after {timeout:g} s (a disruption budget, or a pod that does "
                            "not stop): the node stays cordoned; look at those pods, then run again",
                            evicted=evicted)  # fmt: skip


def run_node(module) -> dict:
    """nerv.homelab.k8s_node: cordon, drain or uncordon a node; check mode names the pods a drain would evict."""
    p = module.params
    api = api_client(p["kubeconfig"], p["context"])
    before = node_unschedulable(api, p["name"])
    wanted = p["state"] != "uncordoned"
    pods = pods_to_evict(api, p["name"]) if p["state"] == "drained" else []
    result = {"changed": before != wanted or bool(pods), "unschedulable": wanted, "evicted": pods}
    result["diff"] = {"before": {"unschedulable": before}, "after": {"unschedulable": wanted}}
    if module.check_mode:
        return result
    if before != wanted:
        verb, patch = ("cordon" if wanted else "uncordon"), {"spec": {"unschedulable": wanted}}
        call(f"{verb} {p['name']}", k8s_client.CoreV1Api(api).patch_node, p["name"], patch)
    if pods:
        result["evicted"] = drain(api, p["name"], p["timeout"], p["interval"])
    return result
