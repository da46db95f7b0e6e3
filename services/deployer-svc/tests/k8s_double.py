"""A TEST DOUBLE of the Kubernetes API server, for the `kubernetes` backend's tests.

No Kubernetes API server can run on the machines this project is built on, so the
backend's API calls are tested against this small aiohttp server on 127.0.0.1. It
is not Kubernetes: it keeps objects in memory by REST path and implements only what
the backend uses:

- PATCH with `Content-Type: application/apply-patch+yaml` (server-side apply):
  creates the object or replaces it (keeping uid, creationTimestamp and status),
  bumps `metadata.generation` when the spec changes, records the `fieldManager`;
  namespaced objects need their namespace (404) and a terminating one refuses (403);
- GET of an object, GET of a collection with `labelSelector` (equality only) and
  the collection's `resourceVersion`;
- watch (`?watch=true&resourceVersion=N&timeoutSeconds=T`): a JSON line per
  change after N to objects of the collection, until T seconds pass; after
  `expire_history()` the next watch gets the 410 ERROR event the real server
  sends for a compacted version; `end_watches()` ends open streams as the
  server's own timeout would;
- DELETE of a namespace: marks it terminating; after `namespace_gone_after_gets`
  further GETs of it, it and all its namespaced objects are gone;
- Deployments get `status.availableReplicas` (and `observedGeneration`)
  `ready_after` seconds after their last change (a simulated controller; None:
  never), announced to watchers as a MODIFIED event;
- failure injection: `fail(method, path, status, times, message)`;
- a simulated ingress controller and cert-manager: an applied Ingress gets a load
  balancer address and (with a cert-manager annotation) a Ready Certificate named
  after its TLS secret, unless `ingress_address` / `certificate_ready` say otherwise;
- the hub's health through the proxy's Service: `GET /hub-health/<namespace>` answers
  `health_status` (the real one is `http://proxy-public.<ns>.svc/hub/health`);
- broken starts (`break_deployment`): instead of becoming available, a Deployment's
  pod waits on an image pull error or is unschedulable, or its ReplicaSet reports the
  quota refusing its pod (a `FailedCreate` event too), as the real controllers do;
- finalizers (`stick`): an object whose finalizer never clears keeps its namespace
  terminating, with the condition the real namespace controller sets;
- the deployer's narrowed RBAC (`rbac=True`): inside a namespace, every request is
  refused (403, the authorizer's words) until the RoleBinding `jhaas-deployer` exists
  there (applying that binding is allowed everywhere, as the cluster-wide rule does),
  and a SelfSubjectAccessReview (POST) answers `allowed` only then, and only after
  `rbac_lag` further reviews (the authorizer's cache catching up);
- DaemonSets get a full rollout status (`desiredNumberScheduled` = `nodes`, every pod
  ready and updated, `observedGeneration`) `pulled_after` seconds after their last
  change (None: never, until `finish_pulls()`; an image no node can pull): the image
  pullers, their pods on `nodes` nodes updated and available (`rolled_out` records
  each);
- PATCH with `Content-Type: application/merge-patch+json` (RFC 7386) of an existing
  object, as the placeholder scaler sends; cluster-scoped objects (PriorityClass) by
  apply like any other;
- PodSecurity admission (`pod_security`: the Pod Security Standards as the API server's
  admission plugin applies them): POST of a Pod to `/api/v1/namespaces/<ns>/pods` (as
  KubeSpawner creates a student's server) is refused with 403 and the API server's
  message when the pod violates the namespace's `pod-security.kubernetes.io/enforce`
  level, stored otherwise; a Deployment or DaemonSet whose pod template violates it
  never becomes ready (as its controller's pods are refused), the message in `refused`
  and, for a Deployment, in a `ReplicaFailure` condition (reason `FailedCreate`).

Every request is recorded in `requests` (its Authorization header in
`authorizations`), every apply in `applied`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from kubernetes_asyncio.client import Configuration
from pod_security import refusal

Obj = dict[str, Any]


@dataclass
class Applied:
    path: str
    kind: str
    name: str
    namespace: str | None
    field_manager: str | None
    force: bool
    body: Obj


@dataclass
class Failure:
    method: str | None
    path: str
    status: int
    remaining: int
    message: str


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str


@dataclass
class K8sDouble:
    ready_after: float | None = 0.05
    pulled_after: float | None = 0.05  # None: DaemonSets never roll out by themselves
    nodes: int = 3  # where a DaemonSet's pods run
    # (path, image, how many applies came before) of each DaemonSet rollout finished.
    rolled_out: list[tuple[str, str, int]] = field(default_factory=list)
    namespace_gone_after_gets: int = 2
    objects: dict[str, Obj] = field(default_factory=dict)
    applied: list[Applied] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    deletes: list[tuple[str, Obj]] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # workload path: admission's message
    _failures: list[Failure] = field(default_factory=list)
    _gets: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _version: int = 1
    _history: list[tuple[int, str, str, Obj]] = field(default_factory=list)
    _expire_next: bool = False
    gone_sent: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _end_watches: asyncio.Event = field(default_factory=asyncio.Event)
    _controllers: set[asyncio.TimerHandle] = field(default_factory=set)
    url: str = ""
    ingress_address: bool = True
    certificate_ready: bool = True
    health_status: int = 200
    broken: dict[str, str] = field(default_factory=dict)
    rbac: bool = False
    rbac_lag: int = 0
    reviews: list[Obj] = field(default_factory=list)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for handle in self._controllers:
            handle.cancel()
        self._end_watches.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> K8sDouble:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def health_url(self) -> str:
        """`hub_health_url` for a backend talking to this double."""
        return self.url + "/hub-health/{namespace}"

    def configuration(self) -> Configuration:
        return Configuration(host=self.url)

    # -- test controls -------------------------------------------------------------

    def fail(
        self, method: str | None, path: str, status: int, times: int = 1, message: str = ""
    ) -> None:
        """The next `times` requests (of `method`, None: any) to `path` answer `status`."""
        self._failures.append(
            Failure(method, path, status, times, message or f"injected HTTP {status}")
        )

    def put(self, path: str, obj: Obj) -> None:
        """Store an object directly (as if another client had created it)."""
        self.objects[path] = obj
        self._record("ADDED", path, obj)

    def expire_history(self) -> None:
        """The next watch is answered as one from a compacted version: 410 Gone."""
        self._expire_next = True

    def end_watches(self) -> None:
        """End every open watch stream now (as the server's own timeout would)."""
        self._end_watches.set()

    def break_deployment(self, name: str, how: str, message: str = "") -> None:
        """Deployment `name` never becomes available: `how` is "pull", "unschedulable"
        or "quota" (the scheduler's or the quota's `message`)."""
        self.broken[name] = how + ":" + message

    def stick(self, path: str, finalizer: str = "example.com/never-clears") -> None:
        """The object at `path` gets a finalizer no controller ever removes."""
        self.objects[path]["metadata"].setdefault("finalizers", []).append(finalizer)

    def watches(self) -> list[Request]:
        return [r for r in self.requests if r.query.get("watch") in ("true", "1")]

    # -- changes and the simulated controller ------------------------------------------

    def _record(self, kind: str, path: str, obj: Obj) -> None:
        """A change: the object gets the next resourceVersion, watchers hear of it."""
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        self._history.append((self._version, kind, path, json.loads(json.dumps(obj))))
        self._changed.set()
        self._changed = asyncio.Event()
        if kind != "DELETED" and obj.get("kind") == "Deployment":
            self._schedule_ready(path)
        if kind == "ADDED" and obj.get("kind") == "Ingress":
            self._ingress_controllers(path, obj)
        if kind != "DELETED" and obj.get("kind") == "DaemonSet":
            self._schedule_pulled(path)

    def _schedule_pulled(self, path: str) -> None:
        obj = self.objects.get(path)
        if self.pulled_after is None or obj is None:
            return
        generation = obj["metadata"].get("generation", 1)
        if (obj.get("status") or {}).get("observedGeneration") == generation:
            return
        loop = asyncio.get_running_loop()
        self._controllers.add(
            loop.call_later(self.pulled_after, self._become_pulled, path, generation)
        )

    def _admitted(self, path: str, obj: Obj) -> bool:
        """Whether the workload's pods pass the namespace's PodSecurity admission."""
        template = (obj.get("spec") or {}).get("template") or {}
        namespace = self.objects.get(self._ns_path(obj["metadata"].get("namespace", "")))
        message = refusal(f"{obj['metadata']['name']}-x", template.get("spec") or {}, namespace)
        if message is None:
            self.refused.pop(path, None)
            return True
        self.refused[path] = message
        return False

    def _become_pulled(self, path: str, generation: int) -> None:
        obj = self.objects.get(path)
        if obj is None or obj["metadata"].get("generation", 1) != generation:
            return
        if not self._admitted(path, obj):
            return
        n = self.nodes
        obj["status"] = {
            "observedGeneration": generation,
            "desiredNumberScheduled": n,
            "currentNumberScheduled": n,
            "updatedNumberScheduled": n,
            "numberReady": n,
            "numberAvailable": n,
            "numberMisscheduled": 0,
        }
        self.rolled_out.append((path, self._pulled(obj), len(self.applied)))
        self._record("MODIFIED", path, obj)

    def start_pulls(self) -> None:
        """Every DaemonSet is scheduled on `nodes` nodes whose pods are still pulling."""
        for path, obj in list(self.objects.items()):
            if obj.get("kind") == "DaemonSet":
                generation = obj["metadata"].get("generation", 1)
                obj["status"] = {
                    "observedGeneration": generation, "desiredNumberScheduled": self.nodes,
                    "currentNumberScheduled": self.nodes, "updatedNumberScheduled": self.nodes,
                    "numberReady": 0, "numberUnavailable": self.nodes, "numberMisscheduled": 0,
                }  # fmt: skip
                self._record("MODIFIED", path, obj)

    def finish_pulls(self) -> None:
        """Every DaemonSet's pods are ready now (for `pulled_after=None` tests)."""
        for path, obj in list(self.objects.items()):
            if obj.get("kind") == "DaemonSet":
                self._become_pulled(path, obj["metadata"].get("generation", 1))

    def _schedule_ready(self, path: str) -> None:
        obj = self.objects.get(path)
        if self.ready_after is None or obj is None:
            return
        generation = obj["metadata"].get("generation", 1)
        if (obj.get("status") or {}).get("observedGeneration") == generation:
            return  # rolled out already (this change was the controller's own)
        loop = asyncio.get_running_loop()
        if obj["metadata"]["name"] in self.broken:
            handle = loop.call_later(self.ready_after, self._fail_start, path)
        else:
            handle = loop.call_later(self.ready_after, self._become_ready, path, generation)
        self._controllers.add(handle)

    def _become_ready(self, path: str, generation: int) -> None:
        obj = self.objects.get(path)
        if obj is None or obj["metadata"].get("generation", 1) != generation:
            return  # changed or gone since: the later change has its own timer
        if not self._admitted(path, obj):
            failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                       "message": self.refused[path]}  # fmt: skip
            obj["status"] = {"observedGeneration": generation, "conditions": [failure]}
            self._record("MODIFIED", path, obj)
            return
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        obj["status"] = {
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        }
        self._record("MODIFIED", path, obj)

    @staticmethod
    def _pulled(daemon_set: Obj) -> str:
        spec = daemon_set["spec"]["template"]["spec"]
        return str(spec["initContainers"][0]["image"])

    def _fail_start(self, path: str) -> None:
        obj = self.objects.get(path)
        if obj is None:
            return
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        how, _, message = self.broken[name].partition(":")
        template = obj["spec"]["template"]
        image = template["spec"]["containers"][0]["image"]
        rs_name = f"{name}-5d8f6c7b9"
        rs_path = f"/apis/apps/v1/namespaces/{namespace}/replicasets/{rs_name}"
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": namespace,
                         "labels": template["metadata"]["labels"]},
            "status": {"replicas": 0},
        }  # fmt: skip
        obj["status"] = {"observedGeneration": obj["metadata"].get("generation", 1)}
        if how == "quota":
            refused = f'pods "{rs_name}-x7k2p" is forbidden: exceeded quota: hub, {message}'
            rs["status"]["conditions"] = [
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                 "message": refused}
            ]  # fmt: skip
            self.put(rs_path, rs)
            event = {
                "apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "FailedCreate",
                "metadata": {"name": f"{rs_name}.1", "namespace": namespace},
                "involvedObject": {"kind": "ReplicaSet", "name": rs_name},
                "message": f"Error creating: {refused}",
            }  # fmt: skip
            self.put(f"/api/v1/namespaces/{namespace}/events/{rs_name}.1", event)
            self._record("MODIFIED", path, obj)
            return
        self.put(rs_path, rs)
        pod_name = f"{rs_name}-x7k2p"
        status: Obj = {"phase": "Pending"}
        if how == "pull":
            waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
            status["containerStatuses"] = [
                {"name": "c", "image": image, "ready": False, "state": {"waiting": waiting}}
            ]
        else:
            status["conditions"] = [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": message}
            ]  # fmt: skip
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace,
                         "labels": template["metadata"]["labels"]},
            "spec": template["spec"], "status": status,
        }  # fmt: skip
        self.put(f"/api/v1/namespaces/{namespace}/pods/{pod_name}", pod)
        obj["status"].update(replicas=1, updatedReplicas=1, unavailableReplicas=1)
        self._record("MODIFIED", path, obj)

    def _ingress_controllers(self, path: str, ingress: Obj) -> None:
        meta = ingress["metadata"]
        if self.ingress_address:
            ingress["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        annotations = meta.get("annotations") or {}
        if not any(key.startswith("cert-manager.io/") for key in annotations):
            return
        for tls in ingress["spec"].get("tls") or []:
            name, namespace = tls["secretName"], meta["namespace"]
            ready = (
                {"type": "Ready", "status": "True", "reason": "Ready"}
                if self.certificate_ready
                else {"type": "Ready", "status": "False", "reason": "Failed",
                      "message": "The certificate request has failed to complete"}
            )  # fmt: skip
            cert = {
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": dict(meta.get("labels") or {})},
                "spec": {"secretName": name}, "status": {"conditions": [ready]},
            }  # fmt: skip
            self.objects[f"/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}"] = (
                cert
            )

    def make_ready(self) -> None:
        """Every Deployment becomes available now (for `ready_after=None` tests)."""
        for path, obj in list(self.objects.items()):
            if obj.get("kind") == "Deployment":
                self._become_ready(path, obj["metadata"].get("generation", 1))

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _status(code: int, reason: str, message: str) -> web.Response:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        return web.json_response(body, status=code)

    @staticmethod
    def _parse(path: str) -> tuple[str | None, bool, str | None]:
        """(namespace the path lies in, whether it names one object, its name)."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        skip = 2 if parts[:1] == ["api"] else 3
        rest = parts[skip:]
        # ["namespaces"] | ["namespaces", ns] | ["namespaces", ns, plural] | [..., name]
        if rest == ["namespaces"]:
            return None, False, None
        if len(rest) == 2 and rest[0] == "namespaces":
            return None, True, rest[1]
        if len(rest) == 3 and rest[0] == "namespaces":
            return rest[1], False, None
        if len(rest) == 4 and rest[0] == "namespaces":
            return rest[1], True, rest[3]
        if len(rest) == 1:
            return None, False, None
        return None, True, rest[-1]

    @staticmethod
    def _ns_path(namespace: str) -> str:
        return f"/api/v1/namespaces/{namespace}"

    @staticmethod
    def _matches(obj: Obj, selector: str) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for term in filter(None, (t.strip() for t in selector.split(","))):
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        return True

    def _tick(self, path: str) -> None:
        """Advance the simulated controllers on a GET of `path`."""
        obj = self.objects.get(path)
        if obj is None:
            return
        count = self._gets.get(path, 0) + 1
        self._gets[path] = count
        meta = obj["metadata"]
        if obj.get("kind") == "Namespace" and meta.get("deletionTimestamp"):
            if count >= self.namespace_gone_after_gets:
                name = meta["name"]
                held = []
                for key in list(self.objects):
                    if self._parse(key)[0] != name:
                        continue
                    if self.objects[key]["metadata"].get("finalizers"):
                        self.objects[key]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                        held += self.objects[key]["metadata"]["finalizers"]
                        continue
                    self._record("DELETED", key, self.objects.pop(key))
                    self._gets.pop(key, None)
                if held:
                    message = (
                        "Some content in the namespace has finalizers remaining: "
                        f"{', '.join(sorted(set(held)))} in {len(held)} resource instances"
                    )
                    obj["status"]["conditions"] = [
                        {"type": "NamespaceFinalizersRemaining", "status": "True",
                         "reason": "SomeFinalizersRemain", "message": message}
                    ]  # fmt: skip
                    return
                self._record("DELETED", path, self.objects.pop(path))
                self._gets.pop(path, None)
            return

    # -- the API -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        query = dict(request.query)
        self.requests.append(
            Request(request.method, path, query, request.headers.get("Content-Type", ""))
        )
        self.authorizations.append(request.headers.get("Authorization", ""))
        for failure in self._failures:
            if (
                failure.remaining > 0
                and failure.path == path
                and failure.method in (None, request.method)
            ):
                failure.remaining -= 1
                reason = {422: "Invalid", 409: "Conflict", 429: "TooManyRequests"}.get(
                    failure.status, "InternalError"
                )
                return self._status(failure.status, reason, failure.message)
        if path.startswith("/hub-health/"):
            return web.Response(status=self.health_status, text="health")
        if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            return await self._review(request)
        namespace, single, name = self._parse(path)
        # The cluster-wide rule: apply the binding itself (deployer-rbac.yaml's `bind`).
        own_binding = path.endswith("/rolebindings/jhaas-deployer") and request.method == "PATCH"
        if self.rbac and namespace is not None and not self._bound(namespace) and not own_binding:
            verb = {"GET": "get", "PATCH": "patch", "DELETE": "delete"}.get(request.method, "?")
            return self._status(
                403, "Forbidden",
                f'User "system:serviceaccount:jhaas:deployer-svc" cannot {verb} resource '
                f'in the namespace "{namespace}"',
            )  # fmt: skip
        if request.method == "GET":
            if single:
                self._tick(path)
                obj = self.objects.get(path)
                if obj is None:
                    return self._status(404, "NotFound", f"{path} not found")
                return web.json_response(obj)
            selector = query.get("labelSelector", "")
            if query.get("watch") in ("true", "1"):
                return await self._watch(request, path, selector, query)
            items = [
                obj
                for key, obj in sorted(self.objects.items())
                if self._in_collection(key, path) and self._matches(obj, selector)
            ]
            listing = {"resourceVersion": str(self._version)}
            return web.json_response({"kind": "List", "metadata": listing, "items": items})
        merge = request.headers.get("Content-Type") == "application/merge-patch+json"
        if request.method == "PATCH" and single and merge:
            return await self._merge(request, path)
        if request.method == "PATCH" and single and name is not None:
            return await self._apply(request, path, namespace, name, query)
        if request.method == "DELETE" and single:
            return await self._delete(request, path, namespace)
        if request.method == "POST" and not single and namespace and path.endswith("/pods"):
            return await self._create_pod(request, path, namespace)
        return self._status(405, "MethodNotAllowed", f"{request.method} {path} not supported")

    def _bound(self, namespace: str) -> bool:
        binding = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/"
        return binding + "jhaas-deployer" in self.objects

    async def _review(self, request: web.Request) -> web.Response:
        review = json.loads(await request.text())
        self.reviews.append(review)
        namespace = review["spec"]["resourceAttributes"].get("namespace", "")
        allowed = not self.rbac or self._bound(namespace)
        if allowed and self.rbac_lag > 0:
            self.rbac_lag -= 1
            allowed = False
        review["status"] = {"allowed": allowed, "reason": "" if allowed else "no RBAC rule"}
        return web.json_response(review, status=201)

    @staticmethod
    def _in_collection(key: str, collection: str) -> bool:
        prefix = collection.rstrip("/") + "/"
        return key.startswith(prefix) and key.count("/") == prefix.count("/")

    async def _watch(
        self, request: web.Request, path: str, selector: str, query: dict[str, str]
    ) -> web.StreamResponse:
        since = int(query.get("resourceVersion") or self._version)
        deadline = asyncio.get_running_loop().time() + float(query.get("timeoutSeconds", 1800))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if self._expire_next:
            self._expire_next = False
            self.gone_sent += 1
            gone = {
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                "reason": "Expired", "message": f"too old resource version: {since}",
            }  # fmt: skip
            await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            return response
        ended = self._end_watches
        while not ended.is_set():
            for version, kind, key, obj in self._history:
                if (
                    version > since
                    and self._in_collection(key, path)
                    and self._matches(obj, selector)
                ):
                    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                    since = version
            since = max(since, self._version)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            changed = asyncio.ensure_future(self._changed.wait())
            stop = asyncio.ensure_future(ended.wait())
            await asyncio.wait([changed, stop], timeout=remaining, return_when="FIRST_COMPLETED")
            changed.cancel()
            stop.cancel()
        if ended.is_set() and self._end_watches is ended:
            self._end_watches = asyncio.Event()  # later watches run normally
        return response

    async def _apply(
        self,
        request: web.Request,
        path: str,
        namespace: str | None,
        name: str,
        query: dict[str, str],
    ) -> web.Response:
        if request.headers.get("Content-Type") != "application/apply-patch+yaml":
            return self._status(415, "UnsupportedMediaType", "only server-side apply")
        body = json.loads(await request.text())  # JSON is valid YAML; we only get JSON
        meta = body.get("metadata") or {}
        if meta.get("name") != name or meta.get("namespace") != namespace:
            return self._status(400, "BadRequest", "name/namespace of body and path differ")
        if namespace is not None:
            ns = self.objects.get(self._ns_path(namespace))
            if ns is None:
                return self._status(404, "NotFound", f'namespaces "{namespace}" not found')
            if ns["metadata"].get("deletionTimestamp"):
                return self._status(
                    403, "Forbidden", f"namespace {namespace} because it is being terminated"
                )
        self.applied.append(
            Applied(
                path=path,
                kind=str(body.get("kind")),
                name=name,
                namespace=namespace,
                field_manager=query.get("fieldManager"),
                force=query.get("force") == "true",
                body=body,
            )
        )
        old = self.objects.get(path)
        new = json.loads(json.dumps(body))
        new_meta = new.setdefault("metadata", {})
        new_meta["managedFields"] = [{"manager": query.get("fieldManager"), "operation": "Apply"}]
        if old is None:
            new_meta.update(uid=str(uuid.uuid4()), generation=1)
            if new.get("kind") == "Namespace":
                new["status"] = {"phase": "Active"}
            self.objects[path] = new
            self._record("ADDED", path, new)
            return web.json_response(new, status=201)
        old_meta = old["metadata"]
        generation = int(old_meta.get("generation", 1))
        if old.get("spec") != new.get("spec"):
            generation += 1
        new_meta.update(
            uid=old_meta["uid"],
            generation=generation,
        )
        if "status" in old:
            new["status"] = old["status"]  # observedGeneration says whether it is current
        self.objects[path] = new
        self._record("MODIFIED", path, new)
        return web.json_response(new)

    async def _create_pod(self, request: web.Request, path: str, namespace: str) -> web.Response:
        """A Pod created directly (KubeSpawner), through PodSecurity admission."""
        pod = json.loads(await request.text())
        ns = self.objects.get(self._ns_path(namespace))
        if ns is None:
            return self._status(404, "NotFound", f'namespaces "{namespace}" not found')
        name = pod["metadata"]["name"]
        message = refusal(name, pod.get("spec") or {}, ns)
        if message is not None:
            return self._status(403, "Forbidden", message)
        key = f"{path}/{name}"
        if key in self.objects:
            return self._status(409, "AlreadyExists", f'pods "{name}" already exists')
        pod["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()))
        self.objects[key] = pod
        self._record("ADDED", key, pod)
        return web.json_response(pod, status=201)

    async def _merge(self, request: web.Request, path: str) -> web.Response:
        old = self.objects.get(path)
        if old is None:
            return self._status(404, "NotFound", f"{path} not found")
        patch = json.loads(await request.text())
        new = _merge_patch(json.loads(json.dumps(old)), patch)
        if old.get("spec") != new.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        self.objects[path] = new
        self._record("MODIFIED", path, new)
        return web.json_response(new)

    async def _delete(self, request: web.Request, path: str, namespace: str | None) -> web.Response:
        obj = self.objects.get(path)
        if obj is None:
            return self._status(404, "NotFound", f"{path} not found")
        text = await request.text()
        self.deletes.append((path, json.loads(text) if text else {}))
        if obj.get("kind") == "Namespace":
            obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            obj["status"] = {"phase": "Terminating"}
            self._gets[path] = 0
            self._record("MODIFIED", path, obj)
            return web.json_response(obj)
        del self.objects[path]
        self._record("DELETED", path, obj)
        return web.json_response(obj)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result
