"""Every Kubernetes object of one course's hub, as plain dicts, from pure functions.

Modelled on the Zero to JupyterHub chart (hub, proxy, KubeSpawner, RBAC,
pre-puller, placeholders), in one namespace `jhaas-<slug>` per course. No I/O,
no randomness, no clock: the random secret values come in as `HubSecrets`, so
two calls with the same inputs give the same objects, byte for byte.

Secrets live only in the `hub-secrets` Secret and reach the hub and the proxy
as `secretKeyRef` environment variables; the ConfigMap holds the fixed
`jupyterhub_config.py` and the hub's settings as JSON, which name those
variables (`hub_settings`).

For the API client that applies these: apply in `server_side_apply_order` with one
field manager (`jhaas-deployer`) and force; keep `HubSecrets` (a redeploy with new
random values restarts the hub and proxy via their checksum annotations and logs
everybody out); the hub is ready when `GET /hub/health` answers through
`proxy-public`; deleting the Namespace deletes everything, user PVCs included
(KubeSpawner creates those at spawn time, labelled `app.kubernetes.io/instance`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import k8s_capacity as cap
from . import k8s_hub_config as hc
from .base import HubDeployment
from .hub_settings import CONFIG_FILE, SETTINGS_FILE

Obj = dict[str, Any]

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
METADATA_CIDR = "169.254.169.254/32"
# What user pods never reach unless the operator names a destination in them: the
# RFC 1918 ranges (as z2jh), link-local (the cloud metadata service at 169.254.169.254
# and its neighbours) and carrier-grade NAT (100.64/10: pod/node networks on some
# clouds, Tailscale). DNS (53) to all of them stays open, as z2jh's dnsPortsPrivateIPs.
PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")
SECRET_NAME = "hub-secrets"  # noqa: S105 (a name, not a value)
CONFIG_NAME = "hub-config"
# Keys of the `hub-secrets` Secret.
KEY_DEPLOYER_TOKEN = "deployer-api-token"  # noqa: S105 (a name, not a value)
KEY_PROXY_TOKEN = "proxy-auth-token"  # noqa: S105 (a name, not a value)
KEY_COOKIE_SECRET = "cookie-secret"  # noqa: S105 (a name, not a value)
KEY_OAUTH_SECRET = "oauth-client-secret"  # noqa: S105 (a name, not a value)
HUB_DB_SIZE = 2**30
# Priority classes (cluster-scoped, one pair per installation, kept across courses).
PLACEHOLDER_PRIORITY_CLASS = "placeholder"
PULLER_CPU_M = 10  # a puller pod's limits (its pause container; the pull is not a container's)
PULLER_MEMORY = 16 * 2**20
USER_PRIORITY_CLASS = "user"


@dataclass(frozen=True, kw_only=True)
class EgressDestination:
    """A destination the operator lets user pods reach despite the private-range block
    (a campus licence server, an S3 endpoint): TCP to `cidr` on `ports` only."""

    name: str
    cidr: str
    ports: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class GatewayRef:
    """The Gateway API Gateway courses attach an HTTPRoute to, instead of an Ingress
    (its listener terminates TLS, typically with a wildcard certificate)."""

    name: str
    namespace: str
    section_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class K8sSettings:
    """The operator's settings (`k8s_settings.load_k8s_settings` reads and checks them)."""

    domain: str
    # Every object carries it, and namespaces are named `<prefix><installation>-<slug>`:
    # a deployer touches only its own installation's hubs, even on a shared cluster.
    installation_id: str = "local"
    namespace_prefix: str = "jhaas-"
    hub_image: str = "quay.io/jupyterhub/k8s-hub:4.1.0"
    proxy_image: str = "quay.io/jupyterhub/configurable-http-proxy:4.6.3"
    puller_image: str = PAUSE_IMAGE  # the pause container of pullers and placeholders
    storage_class: str | None = None
    ingress_class: str = "nginx"
    ingress_annotations: dict[str, str] = field(default_factory=dict)
    cluster_issuer: str = "letsencrypt"  # cert-manager ClusterIssuer; "": none
    image_pull_secrets: tuple[str, ...] = ()
    # Where the operator keeps those Secrets; the deployer copies them into each course's
    # namespace (a pod can only use a pull secret of its own namespace).
    pull_secrets_namespace: str = "jhaas"
    user_node_selector: dict[str, str] = field(default_factory=dict)
    user_tolerations: list[dict[str, Any]] = field(default_factory=list)
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    gpu_tolerations: list[dict[str, Any]] = field(default_factory=list)
    placeholder_ratio: float = 0.1
    # Local hours [start, end) in `placeholder_timezone` when placeholders are kept
    # outside a class start; none overnight (k8s_capacity).
    placeholder_hours: tuple[int, int] = (7, 21)
    placeholder_timezone: str = "UTC"
    # Nodes a course's puller may run on at once (its pods count against the quota).
    max_nodes: int = 100
    ingress_namespace: str = "ingress-nginx"  # where the ingress controller's pods run
    gateway_namespace: str = "jhaas"  # the gateway the hub calls for OAuth token/userdata
    # Extra CIDRs user pods must not reach (the cluster's pod and service CIDRs):
    # plain NetworkPolicy cannot say "not other namespaces" for ipBlock traffic on
    # every CNI, so the operator may list them here.
    internal_cidrs: tuple[str, ...] = ()
    egress_allowed: tuple[EgressDestination, ...] = ()
    # Image references (prefixes) whose servers must run as root, and whether the
    # cluster's policy admits them (a namespace at PodSecurity `baseline`).
    root_images: tuple[str, ...] = ()
    # Names of the governance policy's presets whose image needs root (a course that
    # picked one is treated as a root image, whatever its reference).
    root_presets: tuple[str, ...] = ()
    allow_root_images: bool = False
    # Set: an HTTPRoute to this Gateway per course instead of an Ingress.
    gateway: GatewayRef | None = None


@dataclass(frozen=True, kw_only=True)
class HubSecrets:
    """The random values a hub needs, generated by the caller (and kept by it)."""

    proxy_auth_token: str
    cookie_secret_hex: str  # 32 random bytes, hex-encoded (JupyterHub's format)

    def __repr__(self) -> str:  # never print secret values in logs or tracebacks
        return "HubSecrets(<redacted>)"


INSTALLATION_LABEL = "jhaas.io/installation"
MANAGED_BY = "jhaas-deployer"
DEPLOYER_APP = "deployer-svc"  # the deployer's own pods' app.kubernetes.io/name
# The deployer's rights inside a course namespace: this ClusterRole (deploy/kubernetes/
# deployer-rbac.yaml), bound in each namespace it creates by the RoleBinding below.
DEPLOYER_SERVICE_ACCOUNT = "deployer-svc"
DEPLOYER_COURSE_ROLE = "jhaas-deployer-course"
DEPLOYER_BINDING = "jhaas-deployer"


def namespace_name(hub: HubDeployment, settings: K8sSettings) -> str:
    return f"{settings.namespace_prefix}{settings.installation_id}-{hub.slug}"


def public_url(hub: HubDeployment, settings: K8sSettings) -> str:
    return f"https://{hub.slug}.{settings.domain}/"


def cpu_quantity(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def byte_quantity(size: int) -> str:
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def labels(hub: HubDeployment, s: K8sSettings, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "jupyterhub",
        "app.kubernetes.io/instance": hub.slug,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "jhaas",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        INSTALLATION_LABEL: s.installation_id,
    }


def selector(hub: HubDeployment, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": hub.slug, "app.kubernetes.io/component": component}


def _meta(hub: HubDeployment, s: K8sSettings, name: str, component: str) -> Obj:
    return {"name": name, "namespace": namespace_name(hub, s), "labels": labels(hub, s, component)}


def _obj(api: str, kind: str, metadata: Obj, **body: Any) -> Obj:
    return {"apiVersion": api, "kind": kind, "metadata": metadata, **body}


def _resources(req_cpu_m: int, req_mem: int, lim_cpu_m: int, lim_mem: int) -> Obj:
    return {
        "requests": {"cpu": cpu_quantity(req_cpu_m), "memory": byte_quantity(req_mem)},
        "limits": {"cpu": cpu_quantity(lim_cpu_m), "memory": byte_quantity(lim_mem)},
    }


def _scaled_resources(r: cap.PodResources) -> Obj:
    return _resources(r.cpu_request_m, r.mem_request, r.cpu_limit_m, r.mem_limit)


_RESTRICTED_CONTAINER: Obj = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _container_security(uid: int) -> Obj:
    return {**_RESTRICTED_CONTAINER, "runAsUser": uid, "runAsGroup": uid}


# --- namespace, secrets, configuration -------------------------------------------------


def runs_as_root(hub: HubDeployment, s: K8sSettings) -> bool:
    """The operator declared the course's image (or the preset it came from) one that
    must run as root."""
    preset = getattr(hub.configuration, "preset", None)  # HubSpec.preset, where it exists
    if isinstance(preset, str) and preset in s.root_presets:
        return True
    return cap.needs_root(hub.configuration.image, s.root_images)


def pod_security_level(hub: HubDeployment, s: K8sSettings) -> str:
    """`restricted` unless the image needs root and the operator allows that (the
    deployer refuses a root image the operator does not allow before applying)."""
    return "baseline" if runs_as_root(hub, s) and s.allow_root_images else "restricted"


def make_namespace(hub: HubDeployment, s: K8sSettings) -> Obj:
    meta_labels = {
        **labels(hub, s, "namespace"),
        "jhaas.io/deployment-id": hub.deployment_id,
        "jhaas.io/request-id": hub.request_id,
        "pod-security.kubernetes.io/enforce": pod_security_level(hub, s),
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    return _obj("v1", "Namespace", {"name": namespace_name(hub, s), "labels": meta_labels})


def secret_values(hub: HubDeployment, secrets: HubSecrets) -> dict[str, str]:
    data = {
        KEY_DEPLOYER_TOKEN: hub.api_token,
        KEY_PROXY_TOKEN: secrets.proxy_auth_token,
        KEY_COOKIE_SECRET: secrets.cookie_secret_hex,
    }
    if hub.oauth is not None:
        data[KEY_OAUTH_SECRET] = hub.oauth.client_secret
    return data


def make_secret(hub: HubDeployment, s: K8sSettings, secrets: HubSecrets) -> Obj:
    # `data` (base64), not `stringData`: stringData is write-only and merges into data,
    # so server-side apply could never remove a key written through it.
    values = secret_values(hub, secrets)
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    meta = _meta(hub, s, SECRET_NAME, "hub")
    return _obj("v1", "Secret", meta, type="Opaque", data=data)


PULL_SECRET_TYPES = ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg")


def copy_pull_secret(hub: HubDeployment, s: K8sSettings, source: Obj) -> Obj:
    """The operator's registry credentials (`source`, from `pull_secrets_namespace`) as a
    Secret of the course's namespace, for `imagePullSecrets`; ValueError: not a pull secret."""
    name, kind = source["metadata"]["name"], source.get("type")
    if kind not in PULL_SECRET_TYPES:
        raise ValueError(f"secret {name} has type {kind}, not {PULL_SECRET_TYPES[0]}")
    meta = _meta(hub, s, name, "image-pull-secret")
    return _obj("v1", "Secret", meta, type=kind, data=dict(source.get("data") or {}))


def checksum(value: Any) -> str:
    """A pod-template annotation that changes when `value` does, so pods restart on
    a new secret or configuration (as z2jh does); a sha256 reveals nothing of secrets."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def make_config_map(hub: HubDeployment, s: K8sSettings) -> Obj:
    """Both files of the hub's configuration, mounted together in `CONFIG_DIR`: the
    fixed config finds its settings beside it."""
    files = hc.render_hub_config(
        hub,
        public_url=public_url(hub, s),
        pods=user_pods(hub, s),
        common_labels={
            **labels(hub, s, hc.SINGLEUSER_COMPONENT),
            "app.kubernetes.io/managed-by": "kubespawner",
        },
    )
    data = {CONFIG_FILE: files.config, SETTINGS_FILE: files.settings}
    return _obj("v1", "ConfigMap", _meta(hub, s, CONFIG_NAME, "hub"), data=data)


def configured_image(config_map: Obj) -> str | None:
    """The image a hub's ConfigMap (`make_config_map`) starts its users' servers from;
    None when it names none (not written by us, or unreadable)."""
    try:
        settings = json.loads((config_map.get("data") or {})[SETTINGS_FILE])
        image = settings["config"]["KubeSpawner"]["image"]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return image if isinstance(image, str) else None


def priority_class_name(s: K8sSettings, which: str) -> str:
    return f"{s.namespace_prefix}{s.installation_id}-{which}"


def user_pods(hub: HubDeployment, s: K8sSettings) -> hc.UserPods:
    return hc.UserPods(
        storage_class=s.storage_class,
        node_selector=s.user_node_selector,
        tolerations=s.user_tolerations,
        gpu_resource=s.gpu_resource,
        gpu_node_selector=s.gpu_node_selector,
        gpu_tolerations=s.gpu_tolerations,
        image_pull_secrets=s.image_pull_secrets,
        priority_class=priority_class_name(s, USER_PRIORITY_CLASS),
        run_as_root=runs_as_root(hub, s) and s.allow_root_images,
    )


# --- RBAC (namespace-scoped, as z2jh's hub Role) -----------------------------------------


def make_service_account(hub: HubDeployment, s: K8sSettings) -> Obj:
    return _obj("v1", "ServiceAccount", _meta(hub, s, "hub", "hub"))


def make_role(hub: HubDeployment, s: K8sSettings) -> Obj:
    # z2jh grants get/watch/list/create/delete on pods, PVCs, secrets and services
    # (secrets only for KubeSpawner's internal_ssl, which we do not use) and read
    # on events; patch lets KubeSpawner update labels of existing user PVCs.
    # No delete on PVCs: a participant's volume goes with the namespace, after export,
    # never when the roster drops them (KubeSpawner's delete_pvc is off as well).
    rules = [
        {
            "apiGroups": [""],
            "resources": ["pods", "services"],
            "verbs": ["get", "watch", "list", "create", "delete", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims"],
            "verbs": ["get", "watch", "list", "create", "patch"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
    ]
    return _obj("rbac.authorization.k8s.io/v1", "Role", _meta(hub, s, "hub", "hub"), rules=rules)


def make_deployer_binding(hub: HubDeployment, s: K8sSettings) -> Obj:
    """The deployer's own rights in this namespace (and nowhere else it did not create)."""
    subject = {
        "kind": "ServiceAccount",
        "name": DEPLOYER_SERVICE_ACCOUNT,
        "namespace": s.gateway_namespace,
    }
    role_ref = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": DEPLOYER_COURSE_ROLE,
    }
    meta = _meta(hub, s, DEPLOYER_BINDING, "deployer")
    return _obj(
        "rbac.authorization.k8s.io/v1", "RoleBinding", meta, subjects=[subject], roleRef=role_ref
    )


def make_role_binding(hub: HubDeployment, s: K8sSettings) -> Obj:
    subject = {"kind": "ServiceAccount", "name": "hub", "namespace": namespace_name(hub, s)}
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hub"}
    meta = _meta(hub, s, "hub", "hub")
    return _obj(
        "rbac.authorization.k8s.io/v1", "RoleBinding", meta, subjects=[subject], roleRef=role_ref
    )


def make_hub_db_pvc(hub: HubDeployment, s: K8sSettings) -> Obj:
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": byte_quantity(HUB_DB_SIZE)}},
    }
    if s.storage_class is not None:
        spec["storageClassName"] = s.storage_class
    return _obj("v1", "PersistentVolumeClaim", _meta(hub, s, "hub-db", "hub"), spec=spec)


# --- hub and proxy -----------------------------------------------------------------------


def _secret_env(name: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}}


def hub_env(hub: HubDeployment) -> list[Obj]:
    env = [
        {"name": hc.ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        _secret_env(hc.ENV_DEPLOYER_TOKEN, KEY_DEPLOYER_TOKEN),
        _secret_env(hc.ENV_PROXY_TOKEN, KEY_PROXY_TOKEN),
        _secret_env(hc.ENV_COOKIE_SECRET, KEY_COOKIE_SECRET),
    ]
    if hub.oauth is not None:
        env.append(_secret_env(hc.ENV_OAUTH_SECRET, KEY_OAUTH_SECRET))
    return env


def _http_probe(path: str, port: int, period: int, failures: int, timeout: int = 3) -> Obj:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


# As z2jh for its single-replica hub and proxy: readiness only signals the first start
# (there is no other pod to send traffic to, so turning unready later only cuts everyone
# off: 2 s x 1000 failures never drops the pod at a busy lecture start); liveness restarts
# a wedged process after ~5 min of silence, and not before a slow start (a database
# upgrade) has had its time.
def _ready_probe(path: str, port: int) -> Obj:
    return _http_probe(path, port, 2, 1000, timeout=1)


def _live_probe(path: str, port: int, initial_delay: int) -> Obj:
    return {**_http_probe(path, port, 10, 30), "initialDelaySeconds": initial_delay}


def _pod_template(
    hub: HubDeployment,
    s: K8sSettings,
    component: str,
    spec: Obj,
    annotations: dict[str, str] | None = None,
) -> Obj:
    metadata: Obj = {"labels": labels(hub, s, component)}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": spec}


def _deployment(
    hub: HubDeployment,
    s: K8sSettings,
    name: str,
    pod_spec: Obj,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    body = {
        "replicas": 1,
        "selector": {"matchLabels": selector(hub, name)},
        **spec,
        "template": _pod_template(hub, s, name, pod_spec, annotations),
    }
    return _obj("apps/v1", "Deployment", _meta(hub, s, name, name), spec=body)


def make_hub_deployment(hub: HubDeployment, s: K8sSettings, secrets: HubSecrets) -> Obj:
    container = {
        "name": "hub",
        "image": s.hub_image,
        # --upgrade-db: a newer hub image migrates the course's database on start.
        "command": ["jupyterhub", "--config", f"{hc.CONFIG_DIR}/{CONFIG_FILE}", "--upgrade-db"],
        "workingDir": hc.DATA_DIR,
        "env": hub_env(hub),
        "ports": [{"name": "http", "containerPort": hc.HUB_PORT}],
        "volumeMounts": [
            {"name": "config", "mountPath": hc.CONFIG_DIR, "readOnly": True},
            {"name": "db", "mountPath": hc.DATA_DIR},
        ],
        "resources": _scaled_resources(cap.hub_resources(hub.configuration.expected_participants)),
        "securityContext": _container_security(1000),
        "readinessProbe": _ready_probe("/hub/health", hc.HUB_PORT),
        "livenessProbe": _live_probe("/hub/health", hc.HUB_PORT, 300),
    }
    pod = {
        "serviceAccountName": "hub",
        "automountServiceAccountToken": True,  # KubeSpawner talks to the API server
        "securityContext": {"fsGroup": 1000, "runAsNonRoot": True},
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": CONFIG_NAME}},
            {"name": "db", "persistentVolumeClaim": {"claimName": "hub-db"}},
        ],
    }
    # Recreate: sqlite on a ReadWriteOnce volume admits one hub at a time.
    annotations = {
        "checksum/hub-secrets": checksum(secret_values(hub, secrets)),
        "checksum/hub-config": checksum(make_config_map(hub, s)["data"]),
    }
    return _deployment(hub, s, "hub", pod, annotations, strategy={"type": "Recreate"})


def make_proxy_deployment(hub: HubDeployment, s: K8sSettings, secrets: HubSecrets) -> Obj:
    target = f"http://hub:{hc.HUB_PORT}"
    container = {
        "name": "chp",
        "image": s.proxy_image,
        "command": [
            "configurable-http-proxy",
            "--ip=::",  # as z2jh: all interfaces, IPv6 and IPv4
            "--api-ip=::",
            f"--api-port={hc.PROXY_API_PORT}",
            f"--port={hc.PROXY_HTTP_PORT}",
            f"--default-target={target}",
            f"--error-target={target}/hub/error",
        ],
        "env": [_secret_env(hc.ENV_PROXY_TOKEN, KEY_PROXY_TOKEN)],
        "ports": [
            {"name": "http", "containerPort": hc.PROXY_HTTP_PORT},
            {"name": "api", "containerPort": hc.PROXY_API_PORT},
        ],
        "resources": _scaled_resources(
            cap.proxy_resources(hub.configuration.expected_participants)
        ),
        "securityContext": _container_security(65534),
        "readinessProbe": _ready_probe("/_chp_healthz", hc.PROXY_HTTP_PORT),
        "livenessProbe": _live_probe("/_chp_healthz", hc.PROXY_HTTP_PORT, 60),
    }
    pod = {"automountServiceAccountToken": False, "containers": [container]}
    annotations = {"checksum/proxy-token": checksum(secrets.proxy_auth_token)}
    return _deployment(hub, s, "proxy", pod, annotations, strategy={"type": "Recreate"})


def _service(
    hub: HubDeployment, s: K8sSettings, name: str, component: str, port: int, target: int
) -> Obj:
    spec = {
        "type": "ClusterIP",
        "selector": selector(hub, component),
        "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}],
    }
    return _obj("v1", "Service", _meta(hub, s, name, component), spec=spec)


def make_services(hub: HubDeployment, s: K8sSettings) -> list[Obj]:
    return [
        _service(hub, s, "hub", "hub", hc.HUB_PORT, hc.HUB_PORT),
        _service(hub, s, "proxy-api", "proxy", hc.PROXY_API_PORT, hc.PROXY_API_PORT),
        _service(hub, s, "proxy-public", "proxy", 80, hc.PROXY_HTTP_PORT),
    ]


def make_ingress(hub: HubDeployment, s: K8sSettings) -> Obj:
    host = f"{hub.slug}.{s.domain}"
    meta = _meta(hub, s, "hub", "proxy")
    annotations = dict(s.ingress_annotations)
    if s.cluster_issuer:
        annotations["cert-manager.io/cluster-issuer"] = s.cluster_issuer
    if annotations:
        meta["annotations"] = annotations
    backend = {"service": {"name": "proxy-public", "port": {"number": 80}}}
    spec = {
        "ingressClassName": s.ingress_class,
        "tls": [{"hosts": [host], "secretName": f"{hub.slug}-tls"}],
        "rules": [
            {
                "host": host,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
            }
        ],
    }
    return _obj("networking.k8s.io/v1", "Ingress", meta, spec=spec)


def make_http_route(hub: HubDeployment, s: K8sSettings, gateway: GatewayRef) -> Obj:
    """Gateway API instead of an Ingress: the course's host on the operator's Gateway,
    to `proxy-public` (TLS is the Gateway listener's, so no per-course certificate)."""
    parent: Obj = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": gateway.name,
        "namespace": gateway.namespace,
    }
    if gateway.section_name is not None:
        parent["sectionName"] = gateway.section_name
    backend = {"kind": "Service", "name": "proxy-public", "port": 80}
    spec = {
        "parentRefs": [parent],
        "hostnames": [f"{hub.slug}.{s.domain}"],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [backend]}
        ],
    }
    return _obj(
        "gateway.networking.k8s.io/v1", "HTTPRoute", _meta(hub, s, "hub", "proxy"), spec=spec
    )


def make_route(hub: HubDeployment, s: K8sSettings) -> Obj:
    """The Ingress, or the HTTPRoute when the operator names a Gateway."""
    return make_ingress(hub, s) if s.gateway is None else make_http_route(hub, s, s.gateway)


# --- quota and defaults from the approved resources --------------------------------------


def system_share(hub: HubDeployment, s: K8sSettings) -> tuple[int, int]:
    """(millicores, bytes) of limits outside the users' servers: the hub and proxy (scaled
    with the course) and one puller pod per node (while the image is pulled)."""
    n = hub.configuration.expected_participants
    hub_r, proxy_r = cap.hub_resources(n), cap.proxy_resources(n)
    cpu = hub_r.cpu_limit_m + proxy_r.cpu_limit_m + s.max_nodes * PULLER_CPU_M
    memory = hub_r.mem_limit + proxy_r.mem_limit + s.max_nodes * PULLER_MEMORY
    return cpu, memory


def quota_hard(hub: HubDeployment, s: K8sSettings) -> dict[str, str]:
    """users x per-user + hub, proxy and pullers (REFERENCE.md's formula) + the most
    placeholders the course ever has.

    The placeholder pods live in the namespace and so count against its quota: without
    their share, the last users of a full class would be refused by the quota.
    """
    n = hub.configuration.expected_participants
    size = hc.user_size(hub.configuration)
    held = cap.placeholder_most(hub.configuration, s.placeholder_ratio)
    held_cpu_m, held_mem = held * size.cpu_guarantee_m, held * size.mem_guarantee
    sys_cpu_m, sys_mem = system_share(hub, s)
    hard = {
        "requests.cpu": cpu_quantity(n * size.cpu_guarantee_m + sys_cpu_m + held_cpu_m),
        "limits.cpu": cpu_quantity(n * size.cpu_limit_m + sys_cpu_m + held_cpu_m),
        "requests.memory": byte_quantity(n * size.mem_guarantee + sys_mem + held_mem),
        "limits.memory": byte_quantity(n * size.mem_limit + sys_mem + held_mem),
        "requests.storage": byte_quantity(n * size.storage + HUB_DB_SIZE),
        "persistentvolumeclaims": str(n + 1),
    }
    if size.gpus > 0:
        hard[f"requests.{s.gpu_resource}"] = str((n + held) * size.gpus)
    return hard


def make_resource_quota(hub: HubDeployment, s: K8sSettings) -> Obj:
    meta = _meta(hub, s, "hub-quota", "quota")
    return _obj("v1", "ResourceQuota", meta, spec={"hard": quota_hard(hub, s)})


def make_limit_range(hub: HubDeployment, s: K8sSettings) -> Obj:
    size = hc.user_size(hub.configuration)
    res = _resources(size.cpu_guarantee_m, size.mem_guarantee, size.cpu_limit_m, size.mem_limit)
    limit = {"type": "Container", "default": res["limits"], "defaultRequest": res["requests"]}
    return _obj(
        "v1", "LimitRange", _meta(hub, s, "user-defaults", "quota"), spec={"limits": [limit]}
    )


# --- network policies --------------------------------------------------------------------


def _pods(hub: HubDeployment, component: str) -> Obj:
    return {"podSelector": {"matchLabels": selector(hub, component)}}


def _in_namespace(name: str) -> Obj:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _deployer(s: K8sSettings) -> Obj:
    """The deployer's pods (deploy/kubernetes/deployer-svc.yaml), in the product's namespace."""
    return {
        **_in_namespace(s.gateway_namespace),
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": DEPLOYER_APP}},
    }


def _tcp(*ports: int) -> list[Obj]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _internet(s: K8sSettings, *, internal_too: bool) -> Obj:
    """Everything but the cloud metadata service (credentials of the node!); for user
    pods also the private ranges and the operator's internal CIDRs."""
    if not internal_too:
        return {"ipBlock": {"cidr": "0.0.0.0/0", "except": [METADATA_CIDR]}}
    excluded = [*PRIVATE_CIDRS, *s.internal_cidrs]  # IPv4 only (k8s_settings checks)
    return {"ipBlock": {"cidr": "0.0.0.0/0", "except": excluded}}


def _dns_rule() -> Obj:
    """DNS, as z2jh: to kube-system's pods and to private addresses (node-local caches
    at 169.254.20.10, resolvers on the node network), port 53 only."""
    ports = [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]
    peers = [_in_namespace("kube-system"), *({"ipBlock": {"cidr": c}} for c in PRIVATE_CIDRS)]
    return {"to": peers, "ports": ports}


def _allowed_destinations(s: K8sSettings) -> list[Obj]:
    """The operator's named destinations, each on its own ports only."""
    return [
        {"to": [{"ipBlock": {"cidr": d.cidr}}], "ports": _tcp(*d.ports)} for d in s.egress_allowed
    ]


def _policy(hub: HubDeployment, s: K8sSettings, name: str, pods: Obj, **rules: list[Obj]) -> Obj:
    types = [t for t, key in (("Ingress", "ingress"), ("Egress", "egress")) if key in rules]
    spec = {"podSelector": pods, "policyTypes": types, **rules}
    return _obj("networking.k8s.io/v1", "NetworkPolicy", _meta(hub, s, name, "network"), spec=spec)


def make_network_policies(hub: HubDeployment, s: K8sSettings) -> list[Obj]:
    hub_pods, proxy, users = (_pods(hub, c) for c in ("hub", "proxy", hc.SINGLEUSER_COMPONENT))
    sel = {c: {"matchLabels": selector(hub, c)} for c in ("hub", "proxy", hc.SINGLEUSER_COMPONENT)}
    return [
        # Nothing in or out unless a policy below allows it (placeholders, pre-puller: none).
        _policy(hub, s, "default-deny", {}, ingress=[], egress=[]),
        _policy(hub, s, "allow-dns", {}, egress=[_dns_rule()]),
        _policy(
            hub, s, "proxy", sel["proxy"],
            ingress=[
                {"from": [_in_namespace(s.ingress_namespace)], "ports": _tcp(hc.PROXY_HTTP_PORT)},
                {"from": [hub_pods], "ports": _tcp(hc.PROXY_API_PORT)},
                # The deployer asks /hub/health through proxy-public before calling it ready.
                {"from": [_deployer(s)], "ports": _tcp(hc.PROXY_HTTP_PORT)},
            ],
            egress=[
                {"to": [hub_pods], "ports": _tcp(hc.HUB_PORT)},
                {"to": [users], "ports": _tcp(hc.SINGLEUSER_PORT)},
            ],
        ),
        _policy(
            hub, s, "hub", sel["hub"],
            # hub_pods too: the idle culler, in the hub's pod, calls http://hub:8081.
            ingress=[{"from": [proxy, users, hub_pods], "ports": _tcp(hc.HUB_PORT)}],
            egress=[
                {"to": [hub_pods], "ports": _tcp(hc.HUB_PORT)},
                {"to": [proxy], "ports": _tcp(hc.PROXY_API_PORT)},
                {"to": [users], "ports": _tcp(hc.SINGLEUSER_PORT)},
                # The Kubernetes API: its endpoints are not pods, so no selector can name
                # them; 443 (managed clusters) and 6443 (kubeadm) on any address but metadata.
                {"to": [_internet(s, internal_too=False)], "ports": _tcp(443, 6443)},
                # The gateway's OAuth token and userdata endpoints (called server-side).
                {"to": [_in_namespace(s.gateway_namespace)]},
            ],
        ),
        _policy(
            hub, s, "singleuser", sel[hc.SINGLEUSER_COMPONENT],
            ingress=[{"from": [proxy, hub_pods], "ports": _tcp(hc.SINGLEUSER_PORT)}],
            egress=[
                {"to": [hub_pods], "ports": _tcp(hc.HUB_PORT)},
                # The internet but private ranges; no namespaceSelector anywhere, so other
                # courses' pods are reachable only if their IPs are outside the private
                # ranges and `internal_cidrs` (list public pod/service CIDRs there).
                {"to": [_internet(s, internal_too=True)]},
                *_allowed_destinations(s),
            ],
        ),
    ]  # fmt: skip


# --- image puller, placeholders, priorities --------------------------------------------

PULLER = "image-puller"
PLACEHOLDERS = "user-placeholder"
# On the placeholder Deployment: what `k8s_capacity.placeholder_count` needs later,
# when the deployer rescales it without the course's spec at hand.
STARTS_AT = "jhaas.io/starts-at"
ENDS_AT = "jhaas.io/ends-at"
EXPECTED = "jhaas.io/expected-participants"
PARTICIPANTS = "jhaas.io/participants"  # the accepted roster's size, set when it syncs


def make_priority_classes(s: K8sSettings) -> list[Obj]:
    """As z2jh: placeholders at -10 (users preempt them; still high enough for the
    cluster autoscaler to add nodes for them), users and pullers at 0. Cluster-scoped,
    one pair per installation, shared by its courses and never deleted with one."""

    def make(which: str, value: int, preemption: str, description: str) -> Obj:
        meta = {
            "name": priority_class_name(s, which),
            "labels": {
                "app.kubernetes.io/part-of": "jhaas",
                "app.kubernetes.io/managed-by": MANAGED_BY,
                INSTALLATION_LABEL: s.installation_id,
            },
        }
        return _obj(
            "scheduling.k8s.io/v1", "PriorityClass", meta,
            value=value, globalDefault=False, preemptionPolicy=preemption,
            description=description,
        )  # fmt: skip

    return [
        # A placeholder never evicts anything itself: it only waits for room.
        make(PLACEHOLDER_PRIORITY_CLASS, cap.PLACEHOLDER_PRIORITY, "Never",
             "JHaaS user placeholders: any user's server preempts them."),
        make(USER_PRIORITY_CLASS, cap.USER_PRIORITY, "PreemptLowerPriority",
             "JHaaS users' servers and image pullers: above the placeholders."),
    ]  # fmt: skip


def _user_scheduling(hub: HubDeployment, s: K8sSettings) -> Obj:
    """Where user pods go: GPU courses onto the (tainted) GPU nodes, the rest onto the
    user nodes; pullers and placeholders go where the course's users will."""
    pods = user_pods(hub, s)
    gpu = hub.configuration.resources.gpus > 0
    found: Obj = {
        "nodeSelector": dict(pods.gpu_node_selector if gpu else pods.node_selector),
        "tolerations": list(pods.gpu_tolerations if gpu else pods.tolerations),
    }
    if pods.image_pull_secrets:
        found["imagePullSecrets"] = [{"name": name} for name in pods.image_pull_secrets]
    return {key: value for key, value in found.items() if value}


def _tiny(name: str, image: str, command: list[str] | None = None) -> Obj:
    container: Obj = {
        "name": name,
        "image": image,
        "resources": _resources(1, 4 * 2**20, PULLER_CPU_M, PULLER_MEMORY),
        "securityContext": _container_security(65534),
    }
    if command is not None:
        container["command"] = command
    return container


def make_image_puller(hub: HubDeployment, s: K8sSettings) -> Obj:
    """A hook-style puller (as z2jh's hook-image-puller): a DaemonSet on the nodes the
    course's users will use, whose init container pulls the course's image; the deployer
    waits until every one of its pods is ready, then deletes it (`kubernetes.py`), so a
    course never keeps a pod on every node. The init container runs `/bin/sh -c 'echo
    Pulling complete'` as z2jh (every Jupyter image has a shell); the reference is verbatim."""
    pull = _tiny(
        "image-pull-singleuser", hub.configuration.image, ["/bin/sh", "-c", "echo Pulling complete"]
    )
    pod = {
        **_user_scheduling(hub, s),
        "priorityClassName": priority_class_name(s, USER_PRIORITY_CLASS),
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "initContainers": [pull],
        "containers": [_tiny("pause", s.puller_image)],
    }
    spec = {
        "selector": {"matchLabels": selector(hub, PULLER)},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
        "template": _pod_template(hub, s, PULLER, pod),
    }
    return _obj("apps/v1", "DaemonSet", _meta(hub, s, PULLER, PULLER), spec=spec)


def placeholder_replicas(
    hub: HubDeployment, s: K8sSettings, now: datetime, participants: int | None = None
) -> int:
    return cap.placeholder_count(
        hub.configuration,
        ratio=s.placeholder_ratio,
        hours=s.placeholder_hours,
        timezone=s.placeholder_timezone,
        now=now,
        participants=participants,
    )


def make_placeholders(hub: HubDeployment, s: K8sSettings, now: datetime) -> Obj:
    size = hc.user_size(hub.configuration)
    pause = _tiny("pause", s.puller_image)
    # Sized like one user (requests = guarantee, GPUs too), so each keeps room for one
    # user's pod on a node that fits it.
    held = {"cpu": cpu_quantity(size.cpu_guarantee_m), "memory": byte_quantity(size.mem_guarantee)}
    if size.gpus > 0:
        held[s.gpu_resource] = str(size.gpus)
    pause["resources"] = {"requests": dict(held), "limits": dict(held)}
    pod = {
        **_user_scheduling(hub, s),
        "priorityClassName": priority_class_name(s, PLACEHOLDER_PRIORITY_CLASS),
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "containers": [pause],
    }
    obj = _deployment(hub, s, PLACEHOLDERS, pod)
    spec = hub.configuration
    obj["metadata"]["annotations"] = {
        STARTS_AT: spec.starts_at.isoformat(),
        ENDS_AT: spec.ends_at.isoformat(),
        EXPECTED: str(spec.expected_participants),
    }
    obj["spec"]["replicas"] = placeholder_replicas(hub, s, now)
    return obj


# --- everything, in apply order ----------------------------------------------------------

_APPLY_RANK = {
    "PriorityClass": 1,  # cluster-scoped, before any pod that names it
    "Namespace": 0,
    "ServiceAccount": 1,
    "Role": 1,
    "RoleBinding": 1,
    "Secret": 1,
    "ConfigMap": 1,
    "PersistentVolumeClaim": 1,
    "ResourceQuota": 1,  # before any pod: the quota and defaults apply at admission
    "LimitRange": 1,
    "NetworkPolicy": 1,  # before any pod: no pod ever runs unfenced
    "Service": 2,
    "Deployment": 3,
    "DaemonSet": 3,
    "Ingress": 4,
    "HTTPRoute": 4,
}


def _apply_rank(obj: Obj) -> tuple[int, int]:
    # Within its rank, the deployer's own RoleBinding first: right after the namespace,
    # since every later apply into the namespace needs the rights it grants (the
    # cluster-scoped PriorityClasses do not, but need not come before it either).
    own = obj["kind"] == "RoleBinding" and obj["metadata"]["name"] == DEPLOYER_BINDING
    return _APPLY_RANK.get(obj["kind"], 5), 0 if own else 1


def server_side_apply_order(objects: Iterable[Obj]) -> list[Obj]:
    """Namespace, the deployer's RoleBinding there, then PriorityClasses/RBAC/Secrets/
    ConfigMaps/PVCs/policy, then Services, workloads, Ingress."""
    return sorted(objects, key=_apply_rank)


def make_hub_objects(
    hub: HubDeployment, settings: K8sSettings, secrets: HubSecrets, now: datetime | None = None
) -> list[Obj]:
    """Every object of the course's hub, in server-side-apply order; `now` sizes the
    placeholders (default: the course's start, when it has the most)."""
    s = settings
    objects = [
        make_namespace(hub, s),
        make_deployer_binding(hub, s),  # first: every later apply needs it
        *make_priority_classes(s),
        make_service_account(hub, s),
        make_role(hub, s),
        make_role_binding(hub, s),
        make_secret(hub, s, secrets),
        make_config_map(hub, s),
        make_hub_db_pvc(hub, s),
        make_resource_quota(hub, s),
        make_limit_range(hub, s),
        *make_network_policies(hub, s),
        *make_services(hub, s),
        make_hub_deployment(hub, s, secrets),
        make_proxy_deployment(hub, s, secrets),
        make_image_puller(hub, s),
        make_placeholders(hub, s, hub.configuration.starts_at if now is None else now),
        make_route(hub, s),
    ]
    return server_side_apply_order(objects)
