"""The `kubernetes` backend: one namespace per course, applied with server-side apply.

Every object comes from `k8s_manifests.make_hub_objects` (pure functions) and is
applied in `server_side_apply_order` with ONE field manager (`jhaas-deployer`) and
`force=true`, so a redeploy converges the namespace to the spec. The random values
of a hub (`HubSecrets`) are read back from the `hub-secrets` Secret on redeploy, so
the hub and proxy keep their tokens and nobody is signed out.

The API is spoken through kubernetes-asyncio's `ApiClient.call_api` (raw REST paths
from a small kind -> path table) rather than the typed per-group APIs: the manifests
are plain dicts and server-side apply is a PATCH with
`Content-Type: application/apply-patch+yaml` (JSON is valid YAML).

Errors: 5xx, 429, 409 (a racing create; apply is idempotent) and connection errors
are retried with backoff and end as `BackendError(temporary=True)`; other 4xx (422:
invalid object, 403: forbidden) end as `BackendError(temporary=False)` naming the
object and the API's message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from deployer_svc.backends import k8s_capacity as cap
from deployer_svc.backends import k8s_diagnose
from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import (
    BackendError,
    HubDeployment,
    HubPhase,
    HubStatus,
    Roster,
)
from deployer_svc.backends.hub_api import sync_hub_users
from jhaas_schemas.model import DeletionRecord

log = logging.getLogger(__name__)

FIELD_MANAGER = "jhaas-deployer"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_CONTENT_TYPE = "application/merge-patch+json"
SCALER = "jhaas-placeholder-scaler"  # its own field manager: a redeploy's apply takes over
ROOT_REFUSED = (
    "The course's image {image} only works as the administrator (root), and this "
    "cluster does not allow that for students' servers. Choose an image that runs as an "
    "ordinary user (such as the Jupyter Docker Stacks images), or ask the operators."
)
ROOT_WARNING = (
    "The course's image {image} runs as the administrator (root): the cluster admits it "
    "with weaker protection between students' servers and the machine they run on."
)
MANAGED_BY_SELECTOR = f"app.kubernetes.io/managed-by={km.MANAGED_BY}"
DEPLOYMENT_ID_LABEL = "jhaas.io/deployment-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
READY_DEPLOYMENTS = ("hub", "proxy")
# What a leader is told (BackendError.reason); the details go to the deployer's log.
REFUSED = "the cluster refused the hub's objects; an operator finds why in the deployer's log"
UNREACHABLE = "the cluster did not answer the deployer; it will try again"
# The hub's health through the proxy's Service: what the Ingress forwards to, without
# depending on public DNS (the proxy's NetworkPolicy admits the deployer's pods).
IN_CLUSTER_HEALTH = "http://proxy-public.{namespace}.svc:80/hub/health"
SELF_REVIEW = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
WATCH_SECONDS = 300  # one watch request at most this long; then list and watch again

Obj = dict[str, Any]

# kind -> (API prefix, plural, namespaced): every kind `make_hub_objects` produces,
# plus Pod (listed for the deletion record: KubeSpawner's user pods).
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "ResourceQuota": ("/api/v1", "resourcequotas", True),
    "LimitRange": ("/api/v1", "limitranges", True),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "PriorityClass": ("/apis/scheduling.k8s.io/v1", "priorityclasses", False),
    "HTTPRoute": ("/apis/gateway.networking.k8s.io/v1", "httproutes", True),
}
# Kinds only read: to explain a hub that is not ready, and the volumes a deletion leaves.
READ_ONLY: dict[str, tuple[str, str, bool]] = {
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "Event": ("/api/v1", "events", True),
    "Certificate": ("/apis/cert-manager.io/v1", "certificates", True),
    "PersistentVolume": ("/api/v1", "persistentvolumes", False),
}


def _q(value: str) -> str:
    return quote(value, safe="")


def collection_path(kind: str, namespace: str | None = None) -> str:
    try:
        prefix, plural, namespaced = RESOURCES[kind] if kind in RESOURCES else READ_ONLY[kind]
    except KeyError:
        raise BackendError(f"no REST path known for kind {kind}", temporary=False) from None
    if namespaced:
        if namespace is None:
            raise BackendError(f"{kind} is namespaced: a namespace is needed", temporary=False)
        return f"{prefix}/namespaces/{_q(namespace)}/{plural}"
    return f"{prefix}/{plural}"


def object_path(kind: str, name: str, namespace: str | None = None) -> str:
    return f"{collection_path(kind, namespace)}/{_q(name)}"


def path_of(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return object_path(str(obj["kind"]), str(meta["name"]), meta.get("namespace"))


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    where = f" in namespace {meta['namespace']}" if meta.get("namespace") else ""
    return f"{obj['kind']} {meta['name']}{where}"


def _api_message(exc: ApiException) -> str:
    raw: object = exc.body
    body = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return body[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
        return body[:300]
    return str(exc.reason or "")


class _NotFound(Exception):
    pass


class KubernetesBackend:
    """`HubBackend` applying each course's hub into its own namespace."""

    name = "kubernetes"

    def __init__(
        self,
        settings: km.K8sSettings,
        api: ApiClient | None = None,
        *,
        kubeconfig: Path | None = None,
        ready_timeout: float = 600.0,
        teardown_timeout: float = 600.0,
        poll_interval: float = 1.0,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        request_timeout: float = 30.0,
        hub_api_url: str | None = None,
        hub_health_url: str | None = None,
        explain_every: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`api`: a client for the cluster (in-cluster config), or `kubeconfig`: a
        kubeconfig file read at the first call (running outside the cluster).
        `hub_api_url`: where `sync_roster` reaches a hub's REST API, a format string
        with `{slug}`, `{namespace}` and `{domain}`; default: the public URL.
        `hub_health_url`: the hub's health (the same format), asked before a hub is called
        ready; default: through the proxy's Service in the cluster, the public URL from
        outside it (with a kubeconfig); `explain_every`: how often, while waiting,
        the pods are looked at for a reason the hub cannot start."""
        if api is None and kubeconfig is None:
            raise ValueError("KubernetesBackend needs an ApiClient or a kubeconfig file")
        self.settings = settings
        self.api = api
        self.kubeconfig = kubeconfig
        self._api_lock = asyncio.Lock()
        self.ready_timeout = ready_timeout
        self.teardown_timeout = teardown_timeout
        self.poll_interval = poll_interval
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.hub_api_url = hub_api_url or "https://{slug}.{domain}/hub/api"
        self.hub_health_url = hub_health_url or (
            IN_CLUSTER_HEALTH if kubeconfig is None else "https://{slug}.{domain}/hub/health"
        )
        self.explain_every = int(max(1, min(explain_every, WATCH_SECONDS)))
        self.clock = clock

    # -- the REST layer ----------------------------------------------------------

    async def _client(self) -> ApiClient:
        if self.api is not None:
            return self.api
        async with self._api_lock:
            if self.api is None:
                assert self.kubeconfig is not None
                configuration = Configuration()
                try:
                    await k8s_config.load_kube_config(
                        config_file=str(self.kubeconfig), client_configuration=configuration
                    )
                except (k8s_config.ConfigException, OSError, ValueError) as exc:
                    raise BackendError(
                        f"cannot use the kubeconfig {self.kubeconfig}: {exc}",
                        temporary=False,
                        reason=UNREACHABLE,
                    ) from None
                self.api = ApiClient(configuration)
            return self.api

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Obj:
        """One API call with bounded retries; raises `_NotFound` on 404."""
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        delay = self.backoff
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                result = await (await self._client()).call_api(
                    path,
                    method,
                    query_params=list(query or []),
                    header_params=dict(headers),
                    body=body,
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _preload_content=True,
                    _request_timeout=self.request_timeout,
                )
            except ApiException as exc:
                status = int(exc.status or 0)
                message = _api_message(exc)
                if status == 404:
                    raise _NotFound(message) from exc
                terminating = status == 403 and "being terminated" in message
                if status in (0, 409, 429) or status >= 500 or terminating:
                    last = f"HTTP {status}: {message}"
                else:
                    raise BackendError(
                        f"Kubernetes API refused to {what}: HTTP {status}: {message}",
                        temporary=False,
                        reason=REFUSED,
                    ) from exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                return dict(result) if isinstance(result, dict) else {}
            if attempt < self.attempts:
                log.warning("could not %s (attempt %d): %s; retrying", what, attempt, last)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise BackendError(
            f"Kubernetes API: could not {what} after {self.attempts} attempts: {last}",
            temporary=True,
            reason=UNREACHABLE,
        )

    async def _get(self, path: str, what: str) -> Obj | None:
        try:
            return await self._call("GET", path, what=what)
        except _NotFound:
            return None

    async def _list(self, path: str, what: str, label_selector: str | None = None) -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        items: list[Obj] = []
        token = ""
        while True:
            page_query = [*query, ("limit", "500")]
            if token:
                page_query.append(("continue", token))
            try:
                page = await self._call("GET", path, what=what, query=page_query)
            except _NotFound:
                return items
            items += [item for item in page.get("items") or [] if isinstance(item, dict)]
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply one object (create or converge)."""
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        what = f"apply {describe(obj)}"
        try:
            return await self._call(
                "PATCH", path_of(obj), what=what, query=query, body=obj,
                content_type=APPLY_CONTENT_TYPE,
            )  # fmt: skip
        except _NotFound as exc:
            # The namespace vanished under us (a racing teardown): worth a retry later.
            raise BackendError(
                f"could not {what}: not found: {exc}", temporary=True, reason=UNREACHABLE
            ) from exc

    # -- helpers -------------------------------------------------------------------

    def _namespace(self, slug: str) -> str:
        return f"{self.settings.namespace_prefix}{self.settings.installation_id}-{slug}"

    @property
    def _ours(self) -> str:
        """The label selector of this installation's namespaces."""
        return f"{MANAGED_BY_SELECTOR},{km.INSTALLATION_LABEL}={self.settings.installation_id}"

    async def _check_ours(self, namespace: str, deployment_id: str) -> bool:
        """True when the namespace does not exist yet (this deploy builds it).

        Refuse to apply into a namespace this very deployment did not make: server-side
        apply with force would take its objects over — another installation's, or an
        earlier course's with the same slug whose users' volumes are still there."""
        found = await self._get(object_path("Namespace", namespace), f"read namespace {namespace}")
        if found is None:
            return True
        meta = found.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(km.INSTALLATION_LABEL) != self.settings.installation_id:
            raise BackendError(
                f"namespace {namespace} exists and does not belong to this installation "
                f"({self.settings.installation_id!r}); it was left untouched",
                temporary=False,
                reason="the hub's namespace is taken by something else on the cluster",
            )
        if labels.get(DEPLOYMENT_ID_LABEL) != deployment_id:
            # An earlier course with this slug: wait while it is being deleted.
            going = bool(meta.get("deletionTimestamp"))
            raise BackendError(
                f"namespace {namespace} belongs to deployment "
                f"{labels.get(DEPLOYMENT_ID_LABEL)!r}, not {deployment_id!r}"
                + ("; it is being deleted" if going else "; it was left untouched"),
                temporary=going,
                reason="an earlier course with the same name still has its hub on the cluster",
            )
        if meta.get("deletionTimestamp"):  # an earlier failed attempt, still going
            raise BackendError(
                f"namespace {namespace} is still being deleted",
                temporary=True,
                reason="the hub's earlier attempt is still being cleared away; it will try again",
            )
        return False

    def _url(self, slug: str) -> str:
        return f"https://{slug}.{self.settings.domain}/"

    async def _find_namespace(self, deployment_id: str) -> Obj | None:
        found = await self._list(
            collection_path("Namespace"),
            f"find the namespace of deployment {deployment_id}",
            f"{self._ours},{DEPLOYMENT_ID_LABEL}={deployment_id}",
        )
        return found[0] if found else None

    async def _existing_secrets(self, namespace: str) -> km.HubSecrets | None:
        secret = await self._get(
            object_path("Secret", km.SECRET_NAME, namespace),
            f"read Secret {km.SECRET_NAME} in namespace {namespace}",
        )
        if secret is None:
            return None
        data = secret.get("data") or {}
        try:
            proxy = base64.b64decode(data[km.KEY_PROXY_TOKEN], validate=True).decode()
            cookie = base64.b64decode(data[km.KEY_COOKIE_SECRET], validate=True).decode()
        except (KeyError, TypeError, ValueError, binascii.Error):
            log.warning("Secret %s in %s is incomplete: new values", km.SECRET_NAME, namespace)
            return None
        if not proxy or not cookie:
            return None
        return km.HubSecrets(proxy_auth_token=proxy, cookie_secret_hex=cookie)

    @staticmethod
    def _available(deployment: Obj | None) -> bool:
        """Rolled out as `kubectl rollout status` decides: the controller saw the latest
        spec, every replica runs it, none of an older one is left, all are available."""
        if deployment is None:
            return False
        status = deployment.get("status") or {}
        generation = (deployment.get("metadata") or {}).get("generation")
        observed = status.get("observedGeneration")
        if generation is not None and (observed is None or observed < generation):
            return False  # the controller has not seen the latest spec yet
        wanted = int((deployment.get("spec") or {}).get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        return (
            updated >= wanted
            and int(status.get("replicas") or 0) <= updated
            and int(status.get("availableReplicas") or 0) >= max(wanted, 1)
        )

    async def _not_ready(self, namespace: str) -> list[str]:
        ready, _ = await self._list_readiness(namespace)
        return [name for name, available in ready.items() if not available]

    async def _list_readiness(self, namespace: str) -> tuple[dict[str, bool], str]:
        """Which of the hub's Deployments are available, and the list's resourceVersion
        (where a watch picks up without missing a change)."""
        path = collection_path("Deployment", namespace)
        try:
            page = await self._call("GET", path, what=f"list Deployments in namespace {namespace}")
        except _NotFound:
            page = {}
        found = {
            str((item.get("metadata") or {}).get("name")): item
            for item in page.get("items") or []
            if isinstance(item, dict)
        }
        ready = {name: self._available(found.get(name)) for name in READY_DEPLOYMENTS}
        return ready, str((page.get("metadata") or {}).get("resourceVersion") or "")

    async def _wait_available(self, namespace: str, what: str) -> None:
        """Wait until the hub's Deployments are available: list once, then watch
        from the list's resourceVersion, so every change arrives as it happens
        instead of at the next poll. A watch that ends (the server's timeout, a
        dropped connection) or whose version expired (410 Gone) starts over with
        a fresh list; nothing is missed in between."""
        deadline = time.monotonic() + self.ready_timeout
        first = True
        while True:
            ready, version = await self._list_readiness(namespace)
            if all(ready.values()):
                return
            remaining = deadline - time.monotonic()
            if not first or remaining <= 0:
                await self._explain(namespace, what, final_only=remaining > 0)
            first = False
            if remaining <= 0:
                waiting = ", ".join(name for name, ok in ready.items() if not ok)
                raise BackendError(
                    f"{what}: Deployment(s) {waiting} in namespace {namespace} "
                    f"not available within {self.ready_timeout:.0f}s",
                    temporary=True,
                    reason=f"the hub did not become ready within {self.ready_timeout / 60:.0f} min",
                )
            try:
                async with asyncio.timeout(remaining):
                    if await self._watch_until_available(namespace, version, ready, remaining):
                        return
            except TimeoutError:
                continue  # the deadline: one last list decides
            except (aiohttp.ClientError, OSError, ValueError, BackendError) as exc:
                log.warning("watch in %s broke off: %s; listing again", namespace, exc)
                await asyncio.sleep(min(self.poll_interval, max(0.0, remaining)))

    async def _watch_until_available(
        self, namespace: str, version: str, ready: dict[str, bool], remaining: float
    ) -> bool:
        """Follow one watch stream; True once every Deployment is available, False
        when the stream ends first (the caller lists again)."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            # Short enough to look at the pods now and then: a hub that cannot start
            # fails with its reason instead of waiting out `ready_timeout`.
            ("timeoutSeconds", str(max(1, min(int(remaining) + 1, self.explain_every)))),
        ]
        if version:
            query.append(("resourceVersion", version))
        response = await (await self._client()).call_api(
            collection_path("Deployment", namespace),
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=WATCH_SECONDS + self.request_timeout,
        )
        try:
            if not 200 <= response.status < 300:
                text = (await response.text())[:500]
                raise BackendError(
                    f"watch Deployments in {namespace}: HTTP {response.status}: {text}",
                    temporary=True,
                    reason=UNREACHABLE,
                )
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # 410 Gone: the version is too old; list again
                    log.info("watch in %s ended: %s", namespace, obj.get("message"))
                    return False
                name = str((obj.get("metadata") or {}).get("name"))
                if name not in ready:
                    continue  # a BOOKMARK, or a Deployment that is not the hub's
                ready[name] = kind != "DELETED" and self._available(obj)
                if all(ready.values()):
                    return True
            return False
        finally:
            response.release()

    async def _wait_allowed(self, namespace: str) -> None:
        """The deployer's rights in a new namespace come from the RoleBinding it just
        applied there; the API server's authorizer learns of it a moment later. Ask
        (SelfSubjectAccessReview, which anyone may) until it applies, instead of
        failing the next apply with a 403."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace, "verb": "patch",
                    "group": "apps", "resource": "deployments",
                }
            },
        }  # fmt: skip
        deadline = time.monotonic() + min(self.ready_timeout, 60.0)
        while True:
            answer = await self._call(
                "POST", SELF_REVIEW, what=f"ask whether the deployer may act in {namespace}",
                body=review,
            )  # fmt: skip
            if (answer.get("status") or {}).get("allowed"):
                return
            if time.monotonic() >= deadline:
                said = (answer.get("status") or {}).get("reason") or "no reason given"
                raise BackendError(
                    f"the deployer's RoleBinding {km.DEPLOYER_BINDING} in {namespace} does not "
                    f"let it act there (is the ClusterRole {km.DEPLOYER_COURSE_ROLE} of "
                    f"deploy/kubernetes/deployer-rbac.yaml installed?): {said}",
                    temporary=True,
                    reason=REFUSED,
                )
            await asyncio.sleep(self.poll_interval)

    # -- why a hub is not ready, and whether it serves --------------------------------

    async def _explain(self, namespace: str, what: str, *, final_only: bool) -> None:
        """Raise with the reason the API server gives for a hub that does not start:
        only a final one (no retry helps) while there is time left, any at the end."""
        lists = [
            self._list(collection_path(kind, namespace), f"list {kind}s in namespace {namespace}")
            for kind in ("Pod", "ReplicaSet", "Event")
        ]
        pods, replicasets, events = await asyncio.gather(*lists)
        finding = k8s_diagnose.diagnose(pods, replicasets, events)
        if finding is None or (final_only and not finding.final):
            return
        raise BackendError(
            f"{what}: {finding.detail}", temporary=not finding.final, reason=finding.reason
        )

    async def _serving(self, hub: HubDeployment, namespace: str) -> str | None:
        """None when students can reach the hub; else what is still missing."""
        ingress = await self._get(
            object_path("Ingress", "hub", namespace), f"read Ingress hub in {namespace}"
        )
        if ingress is None:
            missing = await self._route_missing(namespace)
            if missing is None:  # behind a Gateway that accepted the route
                return await self._certificate_and_health(hub, namespace, None, {})
            if missing != "no route":
                return missing
        balancer = ((ingress or {}).get("status") or {}).get("loadBalancer") or {}
        if not balancer.get("ingress"):
            return "the ingress controller has not given the hub's web address an IP address yet"
        annotations = ((ingress or {}).get("metadata") or {}).get("annotations") or {}
        return await self._certificate_and_health(hub, namespace, ingress, annotations)

    async def _route_missing(self, namespace: str) -> str | None:
        """For a course behind a Gateway: None once a Gateway accepted its HTTPRoute
        (TLS is the Gateway listener's); "no route" when it has none either."""
        route = await self._get(
            object_path("HTTPRoute", "hub", namespace), f"read HTTPRoute hub in {namespace}"
        )
        if route is None:
            return "no route"
        for parent in ((route.get("status") or {}).get("parents")) or []:
            conditions = parent.get("conditions") or []
            if any(c.get("type") == "Accepted" and c.get("status") == "True" for c in conditions):
                return None
        return "the Gateway has not accepted the hub's route yet"

    async def _certificate_and_health(
        self, hub: HubDeployment, namespace: str, ingress: Obj | None, annotations: Obj
    ) -> str | None:
        if any(key.startswith("cert-manager.io/") for key in annotations):
            for tls in (ingress or {}).get("spec", {}).get("tls") or []:
                name = str(tls.get("secretName"))
                cert = await self._get(
                    object_path("Certificate", name, namespace), f"read Certificate {name}"
                )
                conditions = ((cert or {}).get("status") or {}).get("conditions") or []
                ready: Obj = next((c for c in conditions if c.get("type") == "Ready"), {})
                if ready.get("status") != "True":
                    said = ready.get("message") or "not issued yet"
                    return f"the hub's TLS certificate is not ready (cert-manager: {said})"
        url = self.hub_health_url.format(
            slug=hub.slug, namespace=namespace, domain=self.settings.domain
        )
        try:
            timeout = aiohttp.ClientTimeout(total=self.request_timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, allow_redirects=False) as answer,
            ):
                if answer.status == 200:
                    return None
                return f"the hub answers its health check with HTTP {answer.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"the hub does not answer its health check ({type(exc).__name__})"

    async def _wait_serving(self, hub: HubDeployment, namespace: str, deadline: float) -> None:
        """Running pods are not yet a hub students reach: wait for the Ingress's address,
        the TLS certificate and the hub's health through the proxy's Service."""
        while (missing := await self._serving(hub, namespace)) is not None:
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"hub {hub.deployment_id} in {namespace}: {missing}",
                    temporary=True,
                    reason=f"The hub runs but cannot be reached yet: {missing}",
                )
            await asyncio.sleep(self.poll_interval)

    async def _undo(self, namespace: str) -> None:
        """Delete a namespace this deploy created and could not finish, and wait (bounded)
        until it is gone, so the scheduler's next attempt starts clean."""
        log.warning("deploy into %s failed; deleting what it built", namespace)
        try:
            stuck = await self._delete_namespace(namespace)
        except BackendError as exc:
            log.error("could not delete %s after a failed deploy: %s", namespace, exc)
            return
        if stuck:
            log.error("namespace %s still exists; waiting on: %s", namespace, ", ".join(stuck))

    # -- HubBackend ------------------------------------------------------------------

    async def deploy(self, hub: HubDeployment) -> HubStatus:
        namespace = self._namespace(hub.slug)
        warnings = self._image_policy(hub)
        building = await self._check_ours(namespace, hub.deployment_id)
        try:
            late = await self._build(hub, namespace, building)
        except BackendError:
            if building:  # a first build failed: leave nothing running until the course ends
                await self._undo(namespace)
            raise
        # The image pulls meanwhile; "running" only once it is on every node. The hub is
        # complete and serves by now: a pull not done in time is no half-built hub, so it
        # is not undone; the puller stays for the operator to inspect and the retry to
        # wait on. A new image a running hub was given (`late`: not on every node
        # within the time it was waited for before the hub was rolled) is not waited for
        # twice: the hub runs with the leader's warning, the puller stays and pulls on,
        # and the next deploy waits for it and deletes it.
        if not late:
            await self._finish_pull(namespace, hub)
        url = self._url(hub.slug)
        return HubStatus(
            phase=HubPhase.READY, url=url, api_url=f"{url}hub/api", warnings=(*warnings, *late)
        )

    async def _build(self, hub: HubDeployment, namespace: str, building: bool) -> tuple[str, ...]:
        """Apply every object of the hub and wait until it serves. A running hub given a
        new image (an approved change) has it pulled onto the nodes first; returns the
        warning for the leader when that pull did not finish in time (`_wait_pulled`)."""
        # A new namespace has no Secret yet, nor the deployer's rights to read one.
        hub_secrets = None if building else await self._existing_secrets(namespace)
        if hub_secrets is None:
            hub_secrets = km.HubSecrets(
                proxy_auth_token=secrets.token_hex(32), cookie_secret_hex=secrets.token_hex(32)
            )
        try:
            made = km.make_hub_objects(hub, self.settings, hub_secrets, self.clock())
        except ValueError as exc:  # a quantity the manifests cannot express
            raise BackendError(
                f"the hub's configuration is not valid: {exc}",
                temporary=False,
                reason="the hub's configuration is not valid",
            ) from exc
        copies = await self._pull_secrets(hub)
        objects = km.server_side_apply_order([*made, *copies])
        late: tuple[str, ...] = ()
        if not building and await self._image_changes(namespace, hub.configuration.image):
            # A running hub gets a new image (an approved change): pulled onto the nodes
            # first (with the registry credentials the pull needs), then the hub is
            # rolled, so its servers start from it. The puller is applied again with the
            # rest, unchanged.
            puller = next(o for o in objects if o["kind"] == "DaemonSet")
            for obj in [*copies, puller]:
                await self.apply(obj)
            late = await self._wait_pulled(namespace, hub.configuration.image)
        for obj in objects:
            await self.apply(obj)
            if obj["kind"] == "RoleBinding" and obj["metadata"]["name"] == km.DEPLOYER_BINDING:
                await self._wait_allowed(namespace)
        log.info("applied %d objects of hub %s to %s", len(objects), hub.deployment_id, namespace)
        deadline = time.monotonic() + self.ready_timeout
        await self._wait_available(namespace, f"hub {hub.deployment_id}")
        await self._wait_serving(hub, namespace, deadline)
        return late

    # -- image policy, pulling, placeholders -------------------------------------------

    async def _pull_secrets(self, hub: HubDeployment) -> list[Obj]:
        """Copies of the operator's registry credentials for the course's namespace."""
        s = self.settings
        copies = []
        for name in s.image_pull_secrets:
            where = f"Secret {name} in namespace {s.pull_secrets_namespace}"
            path = object_path("Secret", name, s.pull_secrets_namespace)
            source = await self._get(path, f"read {where}")
            problem = "is missing" if source is None else ""
            if source is not None:
                try:
                    copies.append(km.copy_pull_secret(hub, s, source))
                except ValueError as exc:
                    problem = f"is not a registry secret ({exc})"
            if problem:
                raise BackendError(
                    f"{where} (images.pull_secrets) {problem}",
                    temporary=True,
                    reason="the cluster's credentials for loading the course's image are "
                    "missing; the operators have been told",
                )
        return copies

    def _image_policy(self, hub: HubDeployment) -> tuple[str, ...]:
        """Refuse an image the operator declared to need root unless root is allowed;
        when it is, the hub runs with a warning the leader sees."""
        if not km.runs_as_root(hub, self.settings):
            return ()
        image = hub.configuration.image
        if not self.settings.allow_root_images:
            raise BackendError(
                f"image {image} is listed in root_images and root_images.allowed is false",
                temporary=False,
                reason=ROOT_REFUSED.format(image=image),
            )
        return (ROOT_WARNING.format(image=image),)

    @staticmethod
    def _pulled(puller: Obj) -> bool:
        """Every node the DaemonSet wants has a ready pod of its current spec: the
        image is on every node the course's users will use."""
        status = puller.get("status") or {}
        generation = (puller.get("metadata") or {}).get("generation")
        if status.get("observedGeneration") is None or (
            generation is not None and status["observedGeneration"] < generation
        ):
            return False
        desired = int(status.get("desiredNumberScheduled") or 0)
        done = min(int(status.get(k) or 0) for k in ("updatedNumberScheduled", "numberReady"))
        return done >= desired

    async def _image_changes(self, namespace: str, image: str) -> bool:
        """Whether the hub in the namespace is configured with another image than
        `image` (its ConfigMap names the image its servers start from): a hub that runs,
        changed. Without a hub's configuration the image pulls alongside the rest, as
        on a first deploy (the puller is deleted after each pull, so it cannot tell)."""
        what = f"ConfigMap {km.CONFIG_NAME} in namespace {namespace}"
        found = await self._get(object_path("ConfigMap", km.CONFIG_NAME, namespace), f"read {what}")
        return found is not None and km.configured_image(found) != image

    async def _wait_pulled(self, namespace: str, image: str) -> tuple[str, ...]:
        """Wait until every node the pre-puller runs on has `image` (its pods with the
        new image are available), at most `ready_timeout`. Past it the hub is rolled
        anyway, with a warning for the leader: its first servers pull the image
        themselves (slower, not broken)."""
        path = object_path("DaemonSet", km.PULLER, namespace)
        what = f"DaemonSet {km.PULLER} in namespace {namespace}"
        deadline = time.monotonic() + self.ready_timeout
        while True:
            found = await self._get(path, f"read {what}")
            if found is not None and self._pulled(found):
                return ()
            if time.monotonic() >= deadline:
                log.warning(
                    "%s: %s not pulled onto every node within %.0f s; rolling the hub anyway",
                    what,
                    image,
                    self.ready_timeout,
                )
                return (
                    f"the new image {image} was not on every node within "
                    f"{self.ready_timeout / 60:.0f} min; the first servers may start slowly",
                )
            await asyncio.sleep(self.poll_interval)

    async def _finish_pull(self, namespace: str, hub: HubDeployment) -> None:
        """Wait until the course's image is on every node, then delete the puller: the
        hub is not called ready before students can start in seconds."""
        path = object_path("DaemonSet", km.PULLER, namespace)
        what = f"DaemonSet {km.PULLER} in namespace {namespace}"
        deadline = time.monotonic() + self.ready_timeout
        while (puller := await self._get(path, f"read {what}")) is not None:
            if self._pulled(puller):
                break
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{what}: the image {hub.configuration.image} was not pulled onto every "
                    f"node within {self.ready_timeout:.0f}s",
                    temporary=True,
                    reason="the course's image could not be loaded onto the cluster's "
                    f"machines within {self.ready_timeout / 60:.0f} min",
                )
            await asyncio.sleep(self.poll_interval)
        with contextlib.suppress(_NotFound):
            await self._call("DELETE", path, what=f"delete {what}")

    async def adjust_capacity(self, deployment_id: str, participants: int | None = None) -> None:
        """Set the placeholders to what the hour and the roster call for (`k8s_capacity`);
        `participants`: the accepted roster's size, kept on the Deployment for later."""
        ns = await self._find_namespace(deployment_id)
        if ns is None:
            return
        namespace = str(ns["metadata"]["name"])
        path = object_path("Deployment", km.PLACEHOLDERS, namespace)
        found = await self._get(path, f"read the placeholders in namespace {namespace}")
        if found is None:
            return
        notes = (found.get("metadata") or {}).get("annotations") or {}
        try:
            course = cap.CourseTimes(
                starts_at=datetime.fromisoformat(notes[km.STARTS_AT]),
                ends_at=datetime.fromisoformat(notes[km.ENDS_AT]),
                expected_participants=int(notes[km.EXPECTED]),
            )
            if participants is None and km.PARTICIPANTS in notes:
                participants = int(notes[km.PARTICIPANTS])
        except (KeyError, TypeError, ValueError):
            log.warning("placeholders in %s lack their course's times; left as they are", namespace)
            return
        s = self.settings
        want = cap.placeholder_count(
            course, ratio=s.placeholder_ratio, hours=s.placeholder_hours,
            timezone=s.placeholder_timezone, now=self.clock(), participants=participants,
        )  # fmt: skip
        patch: Obj = {"spec": {"replicas": want}}
        if participants is not None:
            patch["metadata"] = {"annotations": {km.PARTICIPANTS: str(participants)}}
        if (found.get("spec") or {}).get("replicas") == want and "metadata" not in patch:
            return
        await self._call(
            "PATCH", path, what=f"scale the placeholders in namespace {namespace}", body=patch,
            query=[("fieldManager", SCALER)], content_type=MERGE_CONTENT_TYPE,
        )  # fmt: skip

    async def status(self, deployment_id: str) -> HubStatus:
        ns = await self._find_namespace(deployment_id)
        if ns is None:
            return HubStatus(phase=HubPhase.ABSENT)
        meta = ns.get("metadata") or {}
        name = str(meta.get("name"))
        slug = (meta.get("labels") or {}).get(INSTANCE_LABEL)
        url = self._url(str(slug)) if slug else None
        api_url = f"{url}hub/api" if url else None
        if meta.get("deletionTimestamp"):
            detail = f"namespace {name} is being deleted"
            return HubStatus(phase=HubPhase.STARTING, url=url, api_url=api_url, detail=detail)
        waiting = await self._not_ready(name)
        if not waiting:
            return HubStatus(phase=HubPhase.READY, url=url, api_url=api_url)
        detail = f"Deployment(s) {', '.join(waiting)} in {name} not available"
        return HubStatus(phase=HubPhase.STARTING, url=url, api_url=api_url, detail=detail)

    async def _contents(self, namespace: str) -> list[str]:
        """`kind/name` of everything in the namespace we know how to list."""
        found: list[str] = []
        for kind, (_, _, namespaced) in RESOURCES.items():
            if not namespaced:
                continue
            items = await self._list(
                collection_path(kind, namespace), f"list {kind}s in namespace {namespace}"
            )
            names = sorted(str((item.get("metadata") or {}).get("name")) for item in items)
            found += [f"{kind.lower()}/{name}" for name in names]
        return found

    async def teardown(self, deployment_id: str) -> DeletionRecord:
        ns = await self._find_namespace(deployment_id)
        if ns is None:
            return DeletionRecord(backend=self.name, deleted_at=datetime.now(UTC), objects=())
        name = str(ns["metadata"]["name"])
        contents = await self._contents(name)
        retained = await self._retained_volumes(name)
        stuck = await self._delete_namespace(name)
        if stuck:
            raise BackendError(
                f"namespace {name} still exists {self.teardown_timeout:.0f}s after deletion; "
                f"waiting on: {'; '.join(stuck)}",
                temporary=True,
                reason="the cluster has not finished deleting the hub",
            )
        log.info("deleted namespace %s of deployment %s", name, deployment_id)
        return DeletionRecord(
            backend=self.name,
            deleted_at=datetime.now(UTC),
            objects=(f"namespace/{name}", *contents, *retained),
        )

    async def _retained_volumes(self, namespace: str) -> list[str]:
        """PersistentVolumes bound to the namespace's claims that deleting it keeps
        (reclaim policy Retain): participants' data an operator must still delete."""
        volumes = await self._list(collection_path("PersistentVolume"), "list PersistentVolumes")
        found = []
        for pv in volumes:
            spec = pv.get("spec") or {}
            claim = spec.get("claimRef") or {}
            if claim.get("namespace") == namespace and (
                spec.get("persistentVolumeReclaimPolicy") == "Retain"
            ):
                pv_name = (pv.get("metadata") or {}).get("name")
                found.append(
                    f"retained: persistentvolume/{pv_name} (reclaim policy Retain, was claim "
                    f"{claim.get('name')}): still holds data; delete it once it is not needed"
                )
        return sorted(found)

    async def _delete_namespace(self, name: str) -> list[str]:
        """Delete the namespace and wait, at most `teardown_timeout`, until it is gone.
        [] once it is; else what it still waits on (objects with finalizers)."""
        path = object_path("Namespace", name)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
        with contextlib.suppress(_NotFound):  # gone already: fine
            await self._call(
                "DELETE", path, what=f"delete namespace {name}", body=body,
                query=[("propagationPolicy", "Foreground")],
            )  # fmt: skip
        deadline = time.monotonic() + self.teardown_timeout
        while (ns := await self._get(path, f"read namespace {name}")) is not None:
            if time.monotonic() >= deadline:
                return await self._stuck(name, ns)
            await asyncio.sleep(self.poll_interval)
        return []

    async def _stuck(self, namespace: str, ns: Obj) -> list[str]:
        """The objects a terminating namespace waits on: those with finalizers, and
        the namespace's own conditions (the API server names what remains there)."""
        found = []
        for kind, (_, _, namespaced) in RESOURCES.items():
            if not namespaced:
                continue
            path = collection_path(kind, namespace)
            try:
                items = await self._list(path, f"list {kind}s in namespace {namespace}")
            except BackendError as exc:  # the deployer's RoleBinding went with the rest
                log.info("cannot look into terminating namespace %s: %s", namespace, exc)
                break
            for item in items:
                meta = item.get("metadata") or {}
                if meta.get("finalizers"):
                    finalizers = ", ".join(map(str, meta["finalizers"]))
                    found.append(f"{kind.lower()}/{meta.get('name')} (finalizers: {finalizers})")
        for condition in (ns.get("status") or {}).get("conditions") or []:
            if condition.get("status") == "True" and condition.get("message"):
                found.append(f"namespace {condition.get('type')}: {condition['message']}")
        return found or [f"namespace/{namespace} (phase {(ns.get('status') or {}).get('phase')})"]

    async def list_managed(self) -> list[str]:
        namespaces = await self._list(
            collection_path("Namespace"), "list this installation's namespaces", self._ours
        )
        ids = {
            str(labels[DEPLOYMENT_ID_LABEL])
            for ns in namespaces
            if DEPLOYMENT_ID_LABEL in (labels := (ns.get("metadata") or {}).get("labels") or {})
        }
        return sorted(ids)

    async def sync_roster(self, deployment_id: str, roster: Roster) -> None:
        ns = await self._find_namespace(deployment_id)
        if ns is None:
            raise BackendError(f"hub {deployment_id} does not exist", temporary=True)
        namespace = str(ns["metadata"]["name"])
        slug = str((ns["metadata"].get("labels") or {}).get(INSTANCE_LABEL, ""))
        secret = await self._get(
            object_path("Secret", km.SECRET_NAME, namespace),
            f"read Secret {km.SECRET_NAME} in namespace {namespace}",
        )
        try:
            raw = (secret or {})["data"][km.KEY_DEPLOYER_TOKEN]
            token = base64.b64decode(raw, validate=True).decode()
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise BackendError(
                f"hub {deployment_id} has no deployer API token in its Secret", temporary=True
            ) from exc
        base = self.hub_api_url.format(slug=slug, namespace=namespace, domain=self.settings.domain)
        await sync_hub_users(deployment_id, base, token, roster)
        await self.adjust_capacity(deployment_id, len(roster.participants))

    async def close(self) -> None:
        if self.api is not None:
            await self.api.close()
