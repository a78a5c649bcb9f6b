"""How a cluster decides that what Flux applied is Ready: a small model of the rules the controllers follow, for
tests that must find what a real cluster would never converge on (a deadlock) instead of being told that everything
is Ready. Each rule names the upstream file and release it comes from; the platform pins Flux v2.6.1
(kustomize-controller v1.6.0 with fluxcd/pkg ssa v0.48.0 and kstatus of fluxcd/cli-utils v0.36.0-flux.13,
helm-controller v1.3.0 with Helm v3.17.3).

    cluster = Cluster(git=lambda path: <the objects Flux builds from that path of the GitOps repository>)
    verdict = cluster.reconcile(<the objects of clusters/<site>/: the stages' Flux Kustomizations>)
    verdict.converged; verdict.stuck -> [Stuck(object, stage, waits_for)]

What happens, round after round until nothing moves (time plays no part: what can become Ready does, so what is not
Ready at the end never will be, however long Flux retries):

- a Flux Kustomization is applied once every `dependsOn` is Ready, all of it or nothing (an object whose kind no
  CRD serves yet, or whose admission webhook does not answer yet, fails the whole apply); with `wait: true` it is
  Ready when every object it applied is Current by kstatus's rules;
- a HelmRelease installs once every `dependsOn` is Ready: its chart's objects (from CHARTS: the few each chart makes
  that readiness turns on, shaped by the release's values) appear, and with Helm's wait it is Ready when each is
  ready by Helm's rules;
- the controllers act: MetalLB gives a LoadBalancer Service an address from the pools applied so far, a claim binds
  once its StorageClass exists and that class's provisioner runs, a Deployment's pods run once their claims are bound
  and their Secrets exist, cert-manager issues a Certificate once its issuer is there.

Sources (HelmRepository, OCIRepository, GitRepository) are taken as reachable: the model has no network, and a
wrong URL is a matter for the tests of the rendered values, not of stage order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import in_pool

FLUX_GROUPS = ("source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io")

# Kinds the API serves before any chart is installed: the built-in ones K3s has, and Flux's own (bootstrap installs
# its CRDs before anything of the site is applied).
BUILTIN_KINDS = {
    "Namespace", "Secret", "ConfigMap", "Service", "ServiceAccount", "Deployment", "DaemonSet", "StatefulSet",
    "PersistentVolumeClaim", "StorageClass", "Ingress", "IngressClass", "Job", "Role", "RoleBinding", "ClusterRole",
    "ClusterRoleBinding", "CustomResourceDefinition", "NetworkPolicy",
    "GitRepository", "HelmRepository", "OCIRepository", "Kustomization", "HelmRelease",
}  # fmt: skip
# K3s' own StorageClass (local-path), there from the start
BUILTIN_STORAGE = {"local-path": "rancher.io/local-path"}


def key(obj: dict) -> tuple:
    meta = obj.get("metadata") or {}
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


def label(k: tuple) -> str:
    kind, namespace, name = k
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _dig(obj: dict, *path, default=None):
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


# ---- what each chart makes that readiness turns on ------------------------------------------------------------------


def deployment(name: str, namespace: str, claims=(), secrets=()) -> dict:
    """A Deployment of one replica; its pods mount the claims and the Secrets named (they start only when they can)."""
    volumes = [{"persistentVolumeClaim": {"claimName": c}} for c in claims]
    volumes += [{"secret": {"secretName": s}} for s in secrets]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "template": {"spec": {"volumes": volumes}}}}  # fmt: skip


def service(name: str, namespace: str, ports: list, kind: str = "ClusterIP", annotations=None) -> dict:
    meta = {"name": name, "namespace": namespace, **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": kind, "ports": [{"name": n, "port": p} for n, p in ports]}}  # fmt: skip


def claim(name: str, namespace: str, storage_class) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], **({"storageClassName": storage_class} if storage_class else {})}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}  # fmt: skip


def storage_class(name: str, provisioner: str) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": provisioner}  # fmt: skip


@dataclass(frozen=True)
class Chart:
    """What installing a chart gives the cluster: the kinds its CRDs serve, the API groups its admission webhook
    answers for (their objects cannot be applied before it serves), and its objects for the release's values."""

    kinds: tuple = ()
    webhook_groups: tuple = ()
    make: object = None  # (namespace, values) -> objects

    def objects(self, namespace: str, values: dict) -> list:
        return self.make(namespace, values) if self.make else []


def _traefik(ns: str, values: dict) -> list:
    # traefik-helm-chart v37.1.1 traefik/values.yaml: service.type LoadBalancer, ports web (80) and websecure (443)
    # exposed; the traefik entry point (8080: dashboard and API) is not (ports.traefik.expose.default: false)
    svc = values.get("service") or {}
    ports = [("web", 80), ("websecure", 443)]
    return [deployment("traefik", ns),
            service("traefik", ns, ports, svc.get("type", "LoadBalancer"), svc.get("annotations"))]  # fmt: skip


def _longhorn(ns: str, _values: dict) -> list:
    # longhorn chart 1.9.1: the UI behind Service longhorn-frontend:80; StorageClass longhorn (provisioner
    # driver.longhorn.io), which longhorn-manager makes from the chart's longhorn-storageclass ConfigMap (not a Helm
    # object: Helm's wait does not cover it, and helm_ready counts a StorageClass ready once it exists)
    return [deployment("longhorn-ui", ns), service("longhorn-frontend", ns, [("http", 80)]),
            deployment("longhorn-driver-deployer", ns), storage_class("longhorn", "driver.longhorn.io")]  # fmt: skip


def _monitoring(ns: str, values: dict) -> list:
    # kube-prometheus-stack 75.15.0, its grafana subchart: with persistence.enabled a PersistentVolumeClaim of the
    # release (Helm waits for it to be Bound), the pod mounting it and reading the admin Secret; Service
    # <release>-grafana:80. Prometheus' and Alertmanager's volumes are made by the operator's StatefulSets, which
    # Helm does not wait for.
    grafana = values.get("grafana") or {}
    persistence = grafana.get("persistence") or {}
    claims = []
    objects = [service("kube-prometheus-stack-grafana", ns, [("http-web", 80)])]
    if persistence.get("enabled"):
        claims = ["kube-prometheus-stack-grafana"]
        objects.append(claim(claims[0], ns, persistence.get("storageClassName")))
    secret = _dig(grafana, "admin", "existingSecret")
    objects.append(deployment("kube-prometheus-stack-grafana", ns, claims, [secret] if secret else []))
    objects.append(deployment("kube-prometheus-stack-operator", ns))
    return objects


CHARTS = {
    # metallb 0.15.2: CRDs metallb.io, validated by the controller's webhook
    "metallb": Chart(
        ("IPAddressPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement", "Community"),
        ("metallb.io",),
        lambda ns, v: [deployment("metallb-controller", ns)],
    ),
    # cert-manager v1.18.2 (crds.enabled): its CRDs, validated by cert-manager-webhook
    "cert-manager": Chart(
        ("Certificate", "CertificateRequest", "Issuer", "ClusterIssuer", "Order", "Challenge"),
        ("cert-manager.io", "acme.cert-manager.io"),
        lambda ns, v: [deployment("cert-manager", ns), deployment("cert-manager-webhook", ns)],
    ),
    "traefik": Chart(("IngressRoute", "Middleware", "TLSOption", "ServersTransport", "IngressRouteTCP"), (), _traefik),
    "longhorn": Chart(("Volume", "Engine", "Replica", "Setting", "RecurringJob", "BackupTarget"), (), _longhorn),
    # csi-driver-nfs 4.11.0: the controller that provisions nfs.csi.k8s.io volumes
    "csi-driver-nfs": Chart((), (), lambda ns, v: [deployment("csi-nfs-controller", ns)]),
    "kube-prometheus-stack": Chart(
        ("PrometheusRule", "ServiceMonitor", "PodMonitor", "Probe", "Prometheus", "Alertmanager"), (), _monitoring
    ),  # fmt: skip
}
# which running release provisions a StorageClass's volumes
PROVISIONERS = {"driver.longhorn.io": "longhorn", "nfs.csi.k8s.io": "csi-driver-nfs",
                "rancher.io/local-path": None}  # fmt: skip
# What an OCIRepository's artifact holds (Capacitor's published manifests: Deployment and Service capacitor:9000)
OCI_CONTENT = {
    "oci://ghcr.io/gimlet-io/capacitor-manifests": lambda ns: [
        deployment("capacitor", ns),
        service("capacitor", ns, [("http", 9000)]),
    ],
}


def chart_of(release: dict) -> Chart:
    """The chart a HelmRelease installs; an app's chart unknown here is one Deployment that needs nothing."""
    name = _dig(release, "spec", "chart", "spec", "chart") or release["metadata"]["name"]
    return CHARTS.get(name) or Chart(make=lambda ns, v: [deployment(release["metadata"]["name"], ns)])


# ---- readiness: kstatus for what a Kustomization waits for, Helm's for what a HelmRelease waits for ---------------


def kstatus(obj: dict, cluster: Cluster) -> str | None:
    """None when Current, else why not: fluxcd/cli-utils v0.36.0-flux.13 pkg/kstatus/status/core.go (legacy rules
    per kind) and generic.go (conditions, observedGeneration; an object without status is Current). A LoadBalancer
    Service is Current once it has a cluster IP (core.go serviceConditions), which the API server gives at once:
    kstatus, unlike Helm, does not wait for its address. Flux's own kinds are Current when Ready for their generation
    (they carry kstatus' Reconciling and Stalled conditions beside Ready: fluxcd/pkg runtime/conditions)."""
    kind = obj["kind"]
    if kind in ("Kustomization", "HelmRelease", "HelmRepository", "OCIRepository", "GitRepository"):
        return cluster.flux_reason(key(obj))
    if kind == "PersistentVolumeClaim":  # core.go pvcConditions: Bound
        return None if _dig(obj, "status", "phase") == "Bound" else cluster.unbound_reason(obj)
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):  # core.go deploymentConditions: available replicas
        return cluster.pods_reason(obj)
    if kind == "Certificate":  # generic.go: a Ready condition of a custom resource
        return None if _dig(obj, "status", "ready") else cluster.certificate_reason(obj)
    return None


def helm_ready(obj: dict, cluster: Cluster) -> str | None:
    """None when ready, else why not: Helm v3.17.3 pkg/kube/ready.go ReadyChecker.IsReady. A Service is ready with a
    cluster IP and, for type LoadBalancer, an address in status.loadBalancer.ingress unless spec.externalIPs is
    set (serviceReady); a claim when Bound (volumeReady); a Deployment when its ready replicas reach the expected
    ones (deploymentReady). Objects of other kinds are ready once created."""
    kind = obj["kind"]
    if kind == "Service" and _dig(obj, "spec", "type") == "LoadBalancer":
        if _dig(obj, "spec", "externalIPs") or _dig(obj, "status", "loadBalancer", "ingress"):
            return None
        return f"{label(key(obj))} of type LoadBalancer has no address: {cluster.address_reason(obj)}"
    if kind == "PersistentVolumeClaim":
        return None if _dig(obj, "status", "phase") == "Bound" else cluster.unbound_reason(obj)
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return cluster.pods_reason(obj)
    return None


# ---- the cluster ------------------------------------------------------------------------------------------------


@dataclass
class Stuck:
    object: str
    stage: str
    waits_for: str
    root: bool = True  # stuck on something other than another stuck Flux object: a cause, not a consequence

    def __str__(self) -> str:
        return f"{self.object} (stage {self.stage}) waits for {self.waits_for}"


@dataclass
class Verdict:
    ready: list = field(default_factory=list)  # labels of the Flux objects that became Ready
    stuck: list = field(default_factory=list)  # Stuck of those that never will
    objects: dict = field(default_factory=dict)  # key -> the object as the cluster holds it at the end

    @property
    def converged(self) -> bool:
        return not self.stuck

    def describe(self) -> str:
        return "\n".join(str(s) for s in self.stuck) or f"all {len(self.ready)} Flux objects Ready"


class Cluster:
    """The objects the API holds and what Flux's controllers, Helm, MetalLB, the CSI provisioners, cert-manager and
    the kubelet do with them. git(path) gives the objects Flux builds from that path of the GitOps repository."""

    def __init__(self, git):
        self.git = git
        self.objects: dict = {}  # key -> object (its status written by the "controllers" below)
        self.applied_by: dict = {}  # key -> label of the Flux object that applied or installed it
        self.kinds = set(BUILTIN_KINDS)
        self.webhooks: dict = {}  # API group -> the HelmRelease whose webhook validates it
        self.applied: dict = {}  # Kustomization key -> keys it applied
        self.installed: dict = {}  # HelmRelease key -> keys its chart made
        self.failures: dict = {}  # Flux object key -> why its last apply or install failed
        self.built: dict = {}  # Kustomization key -> what it builds (built once: a build runs kustomize)

    # -- Flux objects ----------------------------------------------------------------------------------------------

    def flux_reason(self, k: tuple) -> str | None:
        """None when the Flux object is Ready, else why not."""
        kind = k[0]
        if k not in self.objects:
            return f"{label(k)} does not exist"
        if kind in ("HelmRepository", "OCIRepository", "GitRepository"):
            return None
        if k in self.failures:
            return self.failures[k]
        if kind == "Kustomization":
            return self._kustomization_reason(k)
        return self._release_reason(k)

    def _dependencies_reason(self, k: tuple) -> str | None:
        """kustomize-controller v1.6.0 internal/controller/kustomization_controller.go checkDependencies and
        helm-controller v1.3.0 internal/controller/helmrelease_controller.go checkDependencies: every dependsOn
        Ready for its generation, else DependencyNotReady and a retry after retryInterval."""
        obj = self.objects[k]
        for dep in _dig(obj, "spec", "dependsOn", default=[]):
            dep_key = (k[0], dep.get("namespace") or k[1], dep["name"])
            if dep_key not in self.objects:
                return f"dependency {label(dep_key)} does not exist"
            if self.flux_reason(dep_key):
                return f"dependency {label(dep_key)} is not Ready"
        return None

    def _kustomization_reason(self, k: tuple) -> str | None:
        if k not in self.applied:
            return self._dependencies_reason(k) or "not applied yet"
        if not _dig(self.objects[k], "spec", "wait"):
            return None
        # kustomize-controller v1.6.0 checkHealth (fluxcd/pkg ssa v0.48.0 WaitForSet): with wait, every object it
        # applied Current
        for applied in self.applied[k]:
            reason = kstatus(self.objects[applied], self)
            if reason:
                return f"{label(applied)}: {reason}" if not reason.startswith(label(applied)) else reason
        return None

    def _release_reason(self, k: tuple) -> str | None:
        if k not in self.installed:
            return self._dependencies_reason(k) or "not installed yet"
        # helm-controller v1.3.0 internal/action/install.go newInstall and upgrade.go newUpgrade: Wait =
        # !DisableWait (Helm's wait on every object of the release)
        if _dig(self.objects[k], "spec", "install", "disableWait"):
            return None
        for made in self.installed[k]:
            reason = helm_ready(self.objects[made], self)
            if reason:
                return reason
        return None

    # -- the controllers' reasons, for the report ------------------------------------------------------------------

    def pools(self) -> list:
        return [o for k, o in self.objects.items() if k[0] == "IPAddressPool"]

    def address_reason(self, svc: dict) -> str:
        if not self._running("metallb"):
            return "MetalLB's controller is not running"
        wanted = _dig(svc, "metadata", "annotations", "metallb.io/loadBalancerIPs")
        applied = [p["metadata"]["name"] for p in self.pools()]
        where = f"the IPAddressPools applied so far: {', '.join(applied) or 'none'}"
        return f"MetalLB has no pool holding {wanted or 'a free address'} ({where})"

    def unbound_reason(self, pvc: dict) -> str:
        name = self._class_of(pvc)
        klass = self.objects.get(("StorageClass", "", name))
        provisioner = BUILTIN_STORAGE.get(name) or (klass or {}).get("provisioner")
        if klass is None and name not in BUILTIN_STORAGE:
            return f"claim {label(key(pvc))} waits for StorageClass {name}, which does not exist"
        return f"claim {label(key(pvc))} waits for the provisioner of StorageClass {name} ({provisioner}) to run"

    def pods_reason(self, workload: dict) -> str | None:
        ns = workload["metadata"].get("namespace", "")
        for volume in _dig(workload, "spec", "template", "spec", "volumes", default=[]):
            claim_name = _dig(volume, "persistentVolumeClaim", "claimName")
            if claim_name:
                pvc = self.objects.get(("PersistentVolumeClaim", ns, claim_name))
                if pvc is None or _dig(pvc, "status", "phase") != "Bound":
                    why = self.unbound_reason(pvc) if pvc else f"claim {ns}/{claim_name} does not exist"
                    return f"{label(key(workload))}: its pods wait for {why}"
            secret = _dig(volume, "secret", "secretName")
            if secret and ("Secret", ns, secret) not in self.objects:
                return f"{label(key(workload))}: its pods wait for Secret {ns}/{secret}, which does not exist"
        return None

    def certificate_reason(self, cert: dict) -> str:
        issuer = _dig(cert, "spec", "issuerRef", default={})
        return f"cert-manager cannot issue it yet: {issuer.get('kind', 'Issuer')} {issuer.get('name')} missing"

    # -- applying -------------------------------------------------------------------------------------------------

    def _admission_reason(self, obj: dict) -> str | None:
        """Why the API server would refuse obj now: kustomize-controller v1.6.0 (kustomization_controller.go apply)
        applies CRDs and Namespaces first, then the *Class kinds, then the rest, each with fluxcd/pkg ssa v0.48.0
        ApplyAll, which dry-runs every object of the stage before applying any: a kind no CRD serves is "no matches
        for kind", a group whose webhook does not answer "failed calling webhook"."""
        kind = obj["kind"]
        if kind not in self.kinds:
            return f'no matches for kind "{kind}" in version "{obj.get("apiVersion")}" (its CRD is not installed)'
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        release = self.webhooks.get(group)
        if release and not self._running(release[2]):
            return f"failed calling webhook of {group}: {label(release)} is not running yet"
        return None

    def _apply(self, k: tuple, docs: list) -> bool:
        """Apply all of docs for Flux object k, or (when one would be refused) none of the later stage."""
        firsts = [d for d in docs if d["kind"] in ("CustomResourceDefinition", "Namespace")]
        for doc in firsts:
            self._create(doc, k)
        for doc in docs:
            reason = self._admission_reason(doc)
            if reason:
                self.failures[k] = f"apply failed: {label(key(doc))}: {reason}"
                return False
        for doc in docs:
            self._create(doc, k)
        self.failures.pop(k, None)
        return True

    def _create(self, doc: dict, owner: tuple) -> None:
        self.objects.setdefault(key(doc), _plain(doc))
        self.applied_by.setdefault(key(doc), label(owner))

    def _content(self, k: tuple) -> list:
        """What a Flux Kustomization builds: a path of the GitOps repository, or an OCI artifact's manifests."""
        if k not in self.built:
            self.built[k] = self._build(k)
        return self.built[k]

    def _build(self, k: tuple) -> list:
        spec = self.objects[k]["spec"]
        source = spec["sourceRef"]
        if source["kind"] == "GitRepository":
            docs = self.git(spec.get("path", "./"))
        else:
            repo = self.objects.get((source["kind"], source.get("namespace") or k[1], source["name"]))
            make = OCI_CONTENT.get(_dig(repo or {}, "spec", "url"))
            docs = make(spec.get("targetNamespace") or k[1]) if make else []
        target = spec.get("targetNamespace")
        if target:
            docs = [_in(d, target) for d in docs]
        return docs

    def _install(self, k: tuple) -> None:
        """helm-controller: the chart's CRDs (crds: CreateReplace) first, then its objects."""
        release = self.objects[k]
        chart = chart_of(release)
        self.kinds.update(chart.kinds)
        for group in chart.webhook_groups:
            self.webhooks[group] = k
        made = chart.objects(k[1], _dig(release, "spec", "values", default={}))
        for doc in made:
            self._create(doc, k)
        self.installed[k] = [key(d) for d in made]

    def _running(self, release_name: str) -> bool:
        """A release's workloads run: installed, and its Deployments' pods up."""
        for k, made in self.installed.items():
            if k[2] == release_name:
                return all(self.pods_reason(self.objects[m]) is None for m in made if m[0] == "Deployment")
        return False

    # -- the controllers --------------------------------------------------------------------------------------------

    def _class_of(self, pvc: dict) -> str:
        named = _dig(pvc, "spec", "storageClassName")
        if named:
            return named
        defaults = [
            k[2]
            for k, o in self.objects.items()
            if k[0] == "StorageClass"
            and _dig(o, "metadata", "annotations", "storageclass.kubernetes.io/is-default-class") == "true"
        ]
        return defaults[0] if defaults else "local-path"  # K3s' default class

    def _bind(self) -> bool:
        moved = False
        for k, pvc in self.objects.items():
            if k[0] != "PersistentVolumeClaim" or _dig(pvc, "status", "phase") == "Bound":
                continue
            name = self._class_of(pvc)
            klass = self.objects.get(("StorageClass", "", name))
            provisioner = BUILTIN_STORAGE.get(name) or (klass or {}).get("provisioner")
            if provisioner is None:
                continue
            release = PROVISIONERS.get(provisioner)
            if release is None or self._running(release):
                pvc["status"] = {"phase": "Bound"}
                moved = True
        return moved

    def _assign(self) -> bool:
        """MetalLB 0.15.2 controller (internal/allocator): an address only from an IPAddressPool, the one the
        metallb.io/loadBalancerIPs annotation asks for when it is in a pool, else none."""
        if not self._running("metallb"):
            return False
        moved = False
        for k, svc in self.objects.items():
            if k[0] != "Service" or _dig(svc, "spec", "type") != "LoadBalancer":
                continue
            if _dig(svc, "status", "loadBalancer", "ingress"):
                continue
            address = self._allocate(_dig(svc, "metadata", "annotations", "metallb.io/loadBalancerIPs"))
            if address:
                svc["status"] = {"loadBalancer": {"ingress": [{"ip": address}]}}
                moved = True
        return moved

    def _allocate(self, wanted: str | None) -> str | None:
        """The address asked for when a pool holds it (the rule k8s_load_balancers judges addresses by), else the
        first of the first pool when none is asked for."""
        blocks = [block for pool in self.pools() for block in _dig(pool, "spec", "addresses", default=[])]
        if wanted is not None:
            return wanted if in_pool(wanted, blocks) else None
        return _first(blocks[0]) if blocks else None

    def _issue(self) -> bool:
        """cert-manager: a Certificate is issued (its TLS Secret made) once its issuer exists and cert-manager runs."""
        moved = False
        for k, cert in list(self.objects.items()):
            if k[0] != "Certificate" or _dig(cert, "status", "ready"):
                continue
            ref = _dig(cert, "spec", "issuerRef", default={})
            namespace = "" if ref.get("kind") == "ClusterIssuer" else k[1]
            issuer_key = (ref.get("kind", "Issuer"), namespace, ref.get("name"))
            if issuer_key in self.objects and self._running("cert-manager"):
                cert["status"] = {"ready": True}
                secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                          "metadata": {"name": _dig(cert, "spec", "secretName"), "namespace": k[1]}}  # fmt: skip
                self.objects.setdefault(key(secret), secret)
                moved = True
        return moved

    # -- the loop ---------------------------------------------------------------------------------------------------

    def _step(self) -> bool:
        moved = False
        for k in [k for k in self.objects if k[0] == "Kustomization" and k not in self.applied]:
            if self._dependencies_reason(k) is None and self._apply(k, self._content(k)):
                self.applied[k] = [key(d) for d in self.built[k]]
                moved = True
        for k in [k for k in self.objects if k[0] == "HelmRelease" and k not in self.installed]:
            if self._dependencies_reason(k) is None:
                self._install(k)
                moved = True
        return self._bind() | self._assign() | self._issue() | moved

    def reconcile(self, root: list, root_name: str = "flux-system") -> Verdict:
        """Apply root (what flux-system applies: the stages) and run the controllers until nothing moves."""
        flux_system = ("Kustomization", "flux-system", root_name)
        for doc in root:
            self._create(doc, flux_system)
        while self._step():
            pass
        verdict = Verdict()
        for k in sorted(k for k in self.objects if k[0] in ("Kustomization", "HelmRelease")):
            reason = self.flux_reason(k)
            if reason is None:
                verdict.ready.append(label(k))
            else:
                stage = self.applied_by.get(k, label(flux_system)).rpartition("/")[2]
                verdict.stuck.append(Stuck(label(k), stage, reason))
        for stuck in verdict.stuck:
            stuck.root = not any(f"{other.object}:" in stuck.waits_for or f"{other.object} is not" in stuck.waits_for
                                 for other in verdict.stuck if other is not stuck)  # fmt: skip
        verdict.stuck.sort(key=lambda s: not s.root)  # the causes first
        verdict.objects = self.objects
        return verdict


def _plain(doc: dict) -> dict:
    """The object as the cluster keeps it: without a status of its own (the controllers write that)."""
    return {k: v for k, v in doc.items() if k != "status"}


def _in(doc: dict, namespace: str) -> dict:
    meta = dict(doc.get("metadata") or {})
    if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                           "StorageClass", "ClusterIssuer"):  # fmt: skip
        meta["namespace"] = namespace
    return {**doc, "metadata": meta}


def _first(block: str) -> str:
    """The first address of a pool's block: a CIDR or a first-last range."""
    block = block.replace(" ", "")
    if "/" in block:
        return str(ipaddress.ip_network(block, strict=False)[0])
    return block.partition("-")[0]
