"""A small Kubernetes API server emulator for tests and the demo: discovery, CRUD, the status subresource and a
hook that plays the controllers' part (a test decides when a HelmRelease becomes Ready, or that it fails).

It speaks the real API's paths and JSON (what the `kubernetes` Python client and kubectl send and expect), keeps
objects in memory, and gives them uid, resourceVersion, generation (bumped when anything but metadata and status
changes) and creationTimestamp. It is not a validating server: it stores what it is given.

    api = KubeEmulator(); api.start(); kubeconfig = api.kubeconfig(path); ... api.stop()
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import re
import ssl
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS = [
    Kind("", "v1", "namespaces", "Namespace", namespaced=False),
    Kind("", "v1", "nodes", "Node", namespaced=False),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "configmaps", "ConfigMap"),
    Kind("", "v1", "services", "Service"),
    Kind("", "v1", "pods", "Pod"),
    Kind("apps", "v1", "deployments", "Deployment"),
    Kind("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository"),
    Kind("source.toolkit.fluxcd.io", "v1", "helmrepositories", "HelmRepository"),
    Kind("source.toolkit.fluxcd.io", "v1", "ocirepositories", "OCIRepository"),
    Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization"),
    Kind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease"),
]

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|eviction))?$"
)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": self.message,
                "reason": self.reason, "code": self.code}  # fmt: skip


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (also used for strategic merge patches: good enough for these objects)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class Store:
    """The objects, by (kind, namespace, name), and the hook run after every write."""

    def __init__(self):
        self.objects: dict = {}
        self.lock = threading.RLock()
        self.version = itertools.count(1)
        self.requests: list = []
        # (namespace, name) of pods whose eviction a disruption budget refuses
        self.evictions_refused: set = set()
        # on_write(store, kind, obj) runs after each create/update (not status writes): a test's "controller"
        self.on_write = None

    def key(self, kind: Kind, namespace, name):
        return (kind.plural, kind.group, namespace if kind.namespaced else None, name)

    def get(self, kind: Kind, namespace, name) -> dict:
        with self.lock:
            obj = self.objects.get(self.key(kind, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{kind.plural}.{kind.group or "core"} "{name}" not found')
            return copy.deepcopy(obj)

    def list(self, kind: Kind, namespace) -> list:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (plural, group, ns, _name), o in sorted(self.objects.items(), key=lambda i: str(i[0]))
                if plural == kind.plural and group == kind.group and (namespace is None or ns == namespace)
            ]

    def create(self, kind: Kind, namespace, obj: dict) -> dict:
        with self.lock:
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            if not name:
                raise ApiError(422, "Invalid", "metadata.name: Required value")
            key = self.key(kind, namespace, name)
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{kind.plural}.{kind.group or "core"} "{name}" already exists')
            if kind.namespaced:
                meta["namespace"] = namespace
            meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=now())
            meta["resourceVersion"] = str(next(self.version))
            obj["apiVersion"], obj["kind"] = kind.group_version, kind.kind
            self.objects[key] = obj
        self._written(kind, obj)
        return self.get(kind, namespace, name)

    def replace(self, kind: Kind, namespace, name, obj: dict, status_only=False) -> dict:
        with self.lock:
            old = self.get(kind, namespace, name)
            if status_only:
                new = dict(old, status=obj.get("status", {}))
            else:
                new = dict(obj, status=old.get("status", obj.get("status")))
                new["metadata"] = dict(obj.get("metadata", {}), **{k: old["metadata"][k] for k in (
                    "uid", "creationTimestamp", "generation", "namespace") if k in old["metadata"]})  # fmt: skip
                if _spec(new) != _spec(old):
                    new["metadata"]["generation"] = old["metadata"]["generation"] + 1
            new["metadata"]["resourceVersion"] = str(next(self.version))
            new["apiVersion"], new["kind"] = kind.group_version, kind.kind
            self.objects[self.key(kind, namespace, name)] = new
        if not status_only:
            self._written(kind, new)
        return self.get(kind, namespace, name)

    def delete(self, kind: Kind, namespace, name) -> dict:
        with self.lock:
            obj = self.get(kind, namespace, name)
            del self.objects[self.key(kind, namespace, name)]
            return obj

    def _written(self, kind, obj):
        if self.on_write:
            self.on_write(self, kind, copy.deepcopy(obj))

    # ---- for tests: play the controllers ------------------------------------------------------------------------

    def set_status(self, kind_name: str, namespace, name, status: dict) -> None:
        kind = next(k for k in KINDS if k.kind == kind_name)
        self.replace(kind, namespace, name, {"status": status}, status_only=True)


def _selected(items: list, selector: str) -> list:
    """items matching a fieldSelector of key=value terms (dotted paths, e.g. spec.nodeName=mini1)."""
    for term in filter(None, selector.split(",")):
        key, _eq, wanted = term.partition("=")
        items = [i for i in items if _dotted(i, key.rstrip("=")) == wanted.lstrip("=")]
    return items


def _dotted(obj: dict, path: str):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _spec(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def ready_status(obj: dict, ready: bool = True, reason: str = "ReconciliationSucceeded", message: str = "") -> dict:
    """The status a Flux controller writes: a Ready condition for the object's current generation."""
    condition = {"type": "Ready", "status": "True" if ready else "False", "reason": reason,
                 "message": message or ("Applied revision: main@sha1:0" if ready else reason),
                 "lastTransitionTime": now(), "observedGeneration": obj["metadata"]["generation"]}  # fmt: skip
    return {"observedGeneration": obj["metadata"]["generation"], "conditions": [condition]}


class KubeEmulator:
    """tls=(certfile, keyfile) serves HTTPS, as a real API server does (clients verify it against their CA)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: tuple | None = None):
        self.store = Store()
        self.server = ThreadingHTTPServer((host, port), _handler(self.store))
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> KubeEmulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path, token: str = "emulator-token") -> str:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "admin"}}],
            "current-context": "emulator",
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        return str(path)


def _discovery(path: str):
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = {}
        for kind in KINDS:
            if kind.group:
                groups.setdefault(kind.group, []).append(kind.version)
        listed = []
        for group, versions in groups.items():
            versions = list(dict.fromkeys(versions))
            listed.append(
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
                }
            )
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed}
    match = re.match(r"^/(?:api/(v1)|apis/([^/]+)/([^/]+))$", path)
    if not match:
        return None
    group, version = (match.group(2) or ""), (match.group(1) or match.group(3))
    resources = []
    for kind in KINDS:
        if (kind.group, kind.version) == (group, version):
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources.append({"name": kind.plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                              "kind": kind.kind, "verbs": verbs})  # fmt: skip
            resources.append({"name": f"{kind.plural}/status", "singularName": "", "namespaced": kind.namespaced,
                              "kind": kind.kind, "verbs": ["get", "patch", "update"]})  # fmt: skip
    if not resources:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}".lstrip("/"),
            "resources": resources}  # fmt: skip


def _handler(store: Store):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args):  # quiet
            return

        def _send(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _route(self, method: str):
            url = urlparse(self.path)
            store.requests.append((method, url.path))
            try:
                discovery = _discovery(url.path) if method == "GET" else None
                if discovery is not None:
                    return self._send(200, discovery)
                self._send(*self._resource(method, url.path, parse_qs(url.query)))
            except ApiError as exc:
                self._send(exc.code, exc.body())
            except (ValueError, KeyError) as exc:
                self._send(400, ApiError(400, "BadRequest", str(exc)).body())

        def _resource(self, method: str, path: str, query):
            match = _PATH.match(path)
            if not match:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
            group, version = match["group"] or "", match["core"] or match["version"]
            kind = next((k for k in KINDS if (k.group, k.version, k.plural) == (group, version, match["plural"])), None)
            if kind is None:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
            ns, name, status = match["ns"], match["name"], match["sub"] == "status"
            if match["sub"] == "eviction":
                return self._evict(kind, ns, name)
            if method == "GET" and name:
                return 200, store.get(kind, ns, name)
            if method == "GET":
                items = _selected(store.list(kind, ns), query.get("fieldSelector", [""])[0])
                return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.group_version, "items": items,
                             "metadata": {"resourceVersion": str(next(store.version))}}  # fmt: skip
            if method == "POST":
                return 201, store.create(kind, ns, self._body())
            if method == "PUT":
                return 200, store.replace(kind, ns, name, self._body(), status_only=status)
            if method == "PATCH":
                merged = merge_patch(store.get(kind, ns, name), self._body())
                return 200, store.replace(kind, ns, name, merged, status_only=status)
            if method == "DELETE":
                return 200, store.delete(kind, ns, name)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

        def _evict(self, kind, ns, name):
            """POST pods/<name>/eviction: the pod goes, unless store.evictions_refused names it (a disruption
            budget says no: 429, as the real API answers)."""
            self._body()  # the Eviction: read it, or the next request on this connection starts inside it
            if kind.kind != "Pod" or self.command != "POST":
                raise ApiError(404, "NotFound", "eviction is a POST on a pod")
            store.get(kind, ns, name)
            if (ns, name) in store.evictions_refused:
                refusal = "Cannot evict pod as it would violate the pod's disruption budget."
                raise ApiError(429, "TooManyRequests", refusal)
            store.delete(kind, ns, name)
            return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

        def do_GET(self):  # noqa: N802 (the http.server API)
            self._route("GET")

        def do_POST(self):  # noqa: N802
            self._route("POST")

        def do_PUT(self):  # noqa: N802
            self._route("PUT")

        def do_PATCH(self):  # noqa: N802
            self._route("PATCH")

        def do_DELETE(self):  # noqa: N802
            self._route("DELETE")

    return Handler
