"""The Kubernetes API for tests: kmock's KubernetesEmulator (PyPI kmock, by the author of Kopf) served from a
background thread, with the little a real API server does that kmock leaves out added on top.

kmock serves, as its own: discovery (/api, /apis, each group's resource list, from the kinds declared below), create,
get, list, merge and JSON patch, delete (finalizers respected), watch, 404 and 409, and the log of every request.
Ours on top (`_Kube`), each because kmock has no such thing:

- metadata the API server writes: uid, creationTimestamp, resourceVersion, and generation, which only a change
  outside metadata and status bumps (Flux readiness is judged against it);
- the status subresource: a write to <object>/status changes status alone, a write to the object never does;
- PUT (replace), which kmock does not route (kubernetes' replace_* calls use it);
- fieldSelector on lists (pods by spec.nodeName, as a drain lists them);
- pods/<name>/eviction: the pod goes, unless a test's disruption budget refuses it (429, as the real API does).

`store` is the test's side, the controllers' hand: create, get, list, replace, delete and set_status work on kmock's
objects directly (on its event loop, under its lock), never over HTTP, so they also work when the API listens in
another network namespace.

    api = KubeEmulator(); api.start(); kubeconfig = api.kubeconfig(path); ... api.stop()
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import itertools
import json
import re
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass

import aiohttp.test_utils
import aiohttp.web
import kmock


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

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)


KINDS = [
    Kind("", "v1", "namespaces", "Namespace", namespaced=False),
    Kind("", "v1", "nodes", "Node", namespaced=False),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "configmaps", "ConfigMap"),
    Kind("", "v1", "services", "Service"),
    Kind("", "v1", "pods", "Pod"),
    Kind("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False),
    Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    Kind("apps", "v1", "deployments", "Deployment"),
    # Longhorn's, for a volume restore (longhorn.io/v1beta2 of longhorn 1.9.1; storage_controllers.py moves them)
    Kind("longhorn.io", "v1beta2", "volumes", "Volume"),
    Kind("longhorn.io", "v1beta2", "backups", "Backup"),
    Kind("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository"),
    Kind("source.toolkit.fluxcd.io", "v1", "helmrepositories", "HelmRepository"),
    Kind("source.toolkit.fluxcd.io", "v1", "ocirepositories", "OCIRepository"),
    Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization"),
    Kind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease"),
]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
NAMESPACES = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$")
REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget."


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


class ApiError(kmock.KubernetesError):
    """An API failure with the real server's reason (NotFound, AlreadyExists, TooManyRequests); raised by the
    store as by the server, which answers it as a Status."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(status=code, reason=reason, message=message, details={})

    @property
    def code(self) -> int:
        return self.status


def _spec(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _dotted(obj: dict, path: str):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _selected(items: list, selector: str) -> list:
    """items matching a fieldSelector of key=value terms (dotted paths, e.g. spec.nodeName=mini1)."""
    for term in filter(None, selector.split(",")):
        key, _eq, wanted = term.partition("=")
        items = [i for i in items if _dotted(i, key.rstrip("=")) == wanted.lstrip("=")]
    return items


def _unsupported(content_type: str) -> ApiError:
    """kubectl's typed commands (create namespace, say) send protobuf, which neither kmock nor we decode."""
    return ApiError(415, "UnsupportedMediaType", f"the emulator reads JSON bodies only, not {content_type}: "
                    "send JSON (kubectl create -f / apply -f do)")  # fmt: skip


def ready_status(obj: dict, ready: bool = True, reason: str = "ReconciliationSucceeded", message: str = "") -> dict:
    """The status a Flux controller writes: a Ready condition for the object's current generation."""
    condition = {"type": "Ready", "status": "True" if ready else "False", "reason": reason,
                 "message": message or ("Applied revision: main@sha1:0" if ready else reason),
                 "lastTransitionTime": now(), "observedGeneration": obj["metadata"]["generation"]}  # fmt: skip
    return {"observedGeneration": obj["metadata"]["generation"], "conditions": [condition]}


class _Kube(kmock.KubernetesEmulator):
    """kmock's emulator with what a real API server adds (see the module's docstring)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.version = itertools.count(1)
        # (namespace, name) of pods whose eviction a disruption budget refuses
        self.evictions_refused: set = set()
        for kind in KINDS:
            subresources = {"status", "eviction"} if kind.kind == "Pod" else {"status"}
            self.resources[kind.resource] = kmock.ResourceInfo(
                kind=kind.kind, singular=kind.kind.lower(), namespaced=kind.namespaced, verbs=VERBS,
                subresources=subresources)  # fmt: skip

    async def __call__(self, raw_request):
        match = NAMESPACES.match(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        return await self._namespaces(raw_request, match["name"], match["sub"])

    async def _namespaces(self, raw_request, name, sub):
        """/api/v1/namespaces[/<name>[/status]], served here: kmock's path parser reads `namespaces/<name>` as the
        namespace part of a namespaced path and cannot parse these (POST and GET /api/v1/namespaces fail inside kmock
        with ValueError('not enough values to unpack (expected at least 1, got 0)'), GET /api/v1/namespaces/<name>
        is a 404 Resource Not Found even with namespaces declared)."""
        kind = KINDS[0]
        body = await raw_request.read()
        method = raw_request.method
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        self._requests.append(kmock.Request(method=method, url=raw_request.url, params=dict(raw_request.query),
                                            data=data, body=body, resource=kind.resource, name=name))  # fmt: skip
        if body and data is None:
            return await self._render_error(_unsupported(raw_request.content_type))
        try:
            async with self._lock:
                code, answer = self._serve_namespace(kind, method, name, sub == "status", data, raw_request.query)
        except ApiError as exc:
            return await self._render_error(exc)
        return aiohttp.web.json_response(answer, status=code)

    def _serve_namespace(self, kind: Kind, method: str, name, status_only: bool, data, query):
        if method == "GET" and name:
            return 200, self.fetch(kind, None, name)
        if method == "GET":
            items = _selected(self.listing(kind, None), query.get("fieldSelector", ""))
            return 200, {"kind": "NamespaceList", "apiVersion": "v1", "items": items,
                         "metadata": {"resourceVersion": str(next(self.version))}}  # fmt: skip
        if method == "POST" and not name:
            return 201, self.create(kind, None, data or {})
        if method == "PUT" and name:
            return 200, self.replace(kind, None, name, data or {}, status_only)
        if method == "PATCH" and name and isinstance(data, dict):
            old = self.fetch(kind, None, name)
            self.restrict(data, old, status_only)
            self.objects[self.key(kind, None, name)].patch(data)
            return 200, self.fetch(kind, None, name)
        if method == "DELETE" and name:
            return 200, self.remove(kind, None, name)
        raise ApiError(405, "MethodNotAllowed", f"{method} {name or ''} is not supported on namespaces")

    def kind_of(self, resource) -> Kind | None:
        return next((k for k in KINDS if k.resource == resource), None)

    async def _handle(self, request):
        if request.method.value == "GET" and request.url.path == "/api/v1":
            listing = await self._serve_version(request)
            # kmock names the core group version "/v1"; kubectl finds core kinds (nodes, pods) only under "v1"
            listing["groupVersion"] = "v1"
            for resource in listing["resources"]:
                if resource["name"] == "pods/eviction":  # kubectl drain evicts only where discovery says so
                    resource.update(kind="Eviction", group="policy", version="v1", verbs=["create"])
            return aiohttp.web.json_response(listing)
        kind = self.kind_of(request.resource) if request.resource is not None else None
        if kind is None:
            return await super()._handle(request)
        try:
            answer = await self._ours(kind, request)
        except ApiError as exc:
            return await self._render_error(exc)
        if answer is not None:
            return aiohttp.web.json_response(answer[1], status=answer[0])
        return await super()._handle(request)

    async def _ours(self, kind: Kind, request):
        """The answer to what kmock does not serve, or None after fixing up what it does."""
        method, namespace, name = request.method.value, request.namespace, request.name
        if request.subresource == "eviction":  # the Eviction's body says nothing the path does not
            return await self._evict(kind, namespace, name, method)
        if method in ("POST", "PUT", "PATCH") and request.body and request.data is None:
            raise _unsupported(request.headers.get("Content-Type", ""))
        if method == "PUT" and name:
            async with self._lock:
                return 200, self.replace(kind, namespace, name, request.data, request.subresource == "status")
        if request.action == kmock.action.LIST and request.params.get("fieldSelector"):
            async with self._lock:
                items = _selected(self.listing(kind, namespace), request.params["fieldSelector"])
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.group_version, "items": items,
                         "metadata": {"resourceVersion": str(next(self.version))}}  # fmt: skip
        if request.action == kmock.action.LIST:
            # kmock's list without its kind and apiVersion, which kubectl requires
            listing = await self._serve_list(request)
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.group_version, **listing}
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            self.stamp(kind, namespace, request.data)
        elif request.action == kmock.action.UPDATE and isinstance(request.data, dict):
            async with self._lock:
                old = self.fetch(kind, namespace, name)
            self.restrict(request.data, old, request.subresource == "status")
        return None

    # ---- state, called on the loop under self._lock ----------------------------------------------------------

    def key(self, kind: Kind, namespace, name) -> tuple:
        return (kind.resource, namespace if kind.namespaced else None, name)

    def fetch(self, kind: Kind, namespace, name) -> dict:
        key = self.key(kind, namespace, name)
        obj = self.objects[key] if key in self.objects else None  # noqa: SIM401 (kmock's array has no get)
        if obj is None or obj.deleted:
            raise ApiError(404, "NotFound", f'{kind.plural}.{kind.group or "core"} "{name}" not found')
        return copy.deepcopy(obj.raw)

    def listing(self, kind: Kind, namespace) -> list:
        found = [(key, obj) for key, obj in self.objects.items() if key[0] == kind.resource and not obj.deleted]
        return [copy.deepcopy(obj.raw) for key, obj in sorted(found, key=lambda i: str(i[0][1:]))
                if namespace is None or key[1] == namespace]  # fmt: skip

    def stamp(self, kind: Kind, namespace, obj: dict) -> None:
        """What the API server adds to an object it creates."""
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = namespace or meta.get("namespace")
        meta.update(
            uid=str(uuid.uuid4()), generation=1, creationTimestamp=now(), resourceVersion=str(next(self.version))
        )
        obj["apiVersion"], obj["kind"] = kind.group_version, kind.kind

    def restrict(self, patch: dict, old: dict, status_only: bool) -> None:
        """A merge patch made what the API server applies: status alone through /status, never through the object;
        a new resourceVersion; generation + 1 when anything outside metadata and status changes."""
        for key in [k for k in patch if (k != "status" if status_only else k == "status") and k != "metadata"]:
            del patch[key]
        if not isinstance(patch.get("metadata"), dict):
            patch["metadata"] = {}
        meta = patch["metadata"]
        for fixed in ("uid", "creationTimestamp", "generation", "namespace", "name"):
            meta.pop(fixed, None)
        merged = kmock.Object(old)
        merged.patch(patch)
        if not status_only and _spec(merged.raw) != _spec(old):
            meta["generation"] = old["metadata"]["generation"] + 1
        meta["resourceVersion"] = str(next(self.version))

    def create(self, kind: Kind, namespace, obj: dict) -> dict:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        key = self.key(kind, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            raise ApiError(409, "AlreadyExists", f'{kind.plural}.{kind.group or "core"} "{name}" already exists')
        self.stamp(kind, namespace, obj)
        if key in self.objects:
            self.objects[key].create(obj)
        else:
            self.objects[key] = obj
        return self.fetch(kind, namespace, name)

    def replace(self, kind: Kind, namespace, name, obj: dict, status_only: bool = False) -> dict:
        old = self.fetch(kind, namespace, name)
        if status_only:
            new = dict(old, status=obj.get("status", {}))
        else:
            new = {k: v for k, v in obj.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
            new["metadata"] = dict(obj.get("metadata", {}), **{k: old["metadata"][k] for k in (
                "uid", "creationTimestamp", "generation", "namespace") if k in old["metadata"]})  # fmt: skip
            if _spec(new) != _spec(old):
                new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        new["metadata"]["resourceVersion"] = str(next(self.version))
        new["apiVersion"], new["kind"] = kind.group_version, kind.kind
        # a replacement is a new version of the object, not a merge into the old one
        self.objects[self.key(kind, namespace, name)].history.append(new)
        return self.fetch(kind, namespace, name)

    def remove(self, kind: Kind, namespace, name) -> dict:
        obj = self.fetch(kind, namespace, name)
        self.objects[self.key(kind, namespace, name)].delete()
        return obj

    async def _evict(self, kind: Kind, namespace, name, method: str):
        """POST pods/<name>/eviction: the pod goes, unless evictions_refused names it (429, as a disruption budget
        makes the real API answer)."""
        if kind.kind != "Pod" or method != "POST":
            raise ApiError(404, "NotFound", "eviction is a POST on a pod")
        async with self._lock:
            obj = self.fetch(kind, namespace, name)
            if (namespace, name) in self.evictions_refused:
                raise ApiError(429, "TooManyRequests", REFUSAL)
            self.remove(kind, namespace, name)
            await self._buses[kind.resource].put({"type": "DELETED", "object": obj})
        return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success"}


class _Listener(aiohttp.test_utils.RawTestServer):
    """aiohttp's test server (what kmock.Server runs) on our socket, with TLS when given a context: the test server
    takes its TLS context only as an argument of start_server, which kmock.Server does not pass."""

    def __init__(self, handler, *, context: ssl.SSLContext | None = None, **kwargs):
        super().__init__(handler, **kwargs)
        self._context = context

    async def start_server(self, loop=None, **kwargs) -> None:
        await super().start_server(loop=loop, ssl=self._context, **kwargs)


class Store:
    """The test's hand on the objects (the controllers' part): each call runs on the emulator's loop, under its lock."""

    def __init__(self, emulator: KubeEmulator):
        self._emulator = emulator

    def _run(self, method: str, *args):
        kube = self._emulator.kube

        async def locked():
            async with kube._lock:
                return getattr(kube, method)(*args)

        return asyncio.run_coroutine_threadsafe(locked(), self._emulator.loop).result(timeout=30)

    @property
    def evictions_refused(self) -> set:
        return self._emulator.kube.evictions_refused

    @property
    def requests(self) -> list:
        """(method, path) of every request the API served, in order (kmock's own log)."""
        return [(r.method.value, r.url.path) for r in list(self._emulator.kube)]

    def get(self, kind: Kind, namespace, name) -> dict:
        return self._run("fetch", kind, namespace, name)

    def list(self, kind: Kind, namespace) -> list:
        return self._run("listing", kind, namespace)

    def create(self, kind: Kind, namespace, obj: dict) -> dict:
        return self._run("create", kind, namespace, copy.deepcopy(obj))

    def replace(self, kind: Kind, namespace, name, obj: dict, status_only=False) -> dict:
        return self._run("replace", kind, namespace, name, copy.deepcopy(obj), status_only)

    def delete(self, kind: Kind, namespace, name) -> dict:
        return self._run("remove", kind, namespace, name)

    def set_status(self, kind_name: str, namespace, name, status: dict) -> None:
        kind = next(k for k in KINDS if k.kind == kind_name)
        self.replace(kind, namespace, name, {"status": status}, status_only=True)


class KubeEmulator:
    """tls=(certfile, keyfile) serves HTTPS, as a real API server does (clients verify it against their CA). The
    listening socket is made here, so constructing inside a network namespace listens there."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: tuple | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.context = None
        if tls:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
        self.scheme = "https" if tls else "http"
        self.kube = _Kube()
        self.store = Store(self)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{self.scheme}://{host}:{port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start()
            self._failure = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        server_cls = functools.partial(_Listener, context=self.context, scheme=self.scheme,
                                       socket_factory=lambda *_args: self.sock)  # fmt: skip
        host, port = self.sock.getsockname()[:2]
        async with self.kube, kmock.Server(self.kube, host=host, port=port, server_cls=server_cls, user_agent=""):
            self._ready.set()
            await self._stopping.wait()

    def start(self) -> KubeEmulator:
        self.thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise RuntimeError(f"the Kubernetes API emulator did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        if self.thread.ident is None:  # never started: only the socket to give back
            self.sock.close()
            return
        if self._stopping is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stopping.set)
        self.thread.join(30)

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
