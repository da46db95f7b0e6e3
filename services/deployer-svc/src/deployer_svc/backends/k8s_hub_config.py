"""The configuration of one course's hub on Kubernetes: the settings beside the fixed config.

Pure and deterministic. The hub's `jupyterhub_config.py` is `hub_settings`'
fixed text; what varies is its JSON settings (`render_hub_config`), and every
secret in them is a marker naming an environment variable that the hub
Deployment fills from the `hub-secrets` Secret: both files may sit in a ConfigMap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jhaas_schemas.model import HubSpec
from jhaas_schemas.quantities import byte_size, cpu_millicores

from .base import HubDeployment
from .hub_roles import hub_groups, hub_roles, oauth_traits, sign_in_traits
from .hub_settings import HubConfigFiles, Traits, env, from_hex, render

# Environment variables of the hub container (filled by `secretKeyRef`, see k8s_manifests).
ENV_NAMESPACE = "POD_NAMESPACE"
ENV_DEPLOYER_TOKEN = "JHAAS_DEPLOYER_API_TOKEN"  # noqa: S105 (a name, not a value)
ENV_PROXY_TOKEN = "CONFIGPROXY_AUTH_TOKEN"  # noqa: S105 (a name, not a value)
ENV_COOKIE_SECRET = "JPY_COOKIE_SECRET"  # noqa: S105 (hex, as JupyterHub reads it)
ENV_OAUTH_SECRET = "OAUTH_CLIENT_SECRET"  # noqa: S105 (a name, not a value)

CONFIG_DIR = "/usr/local/etc/jupyterhub"  # both files of the hub-config ConfigMap
DATA_DIR = "/srv/jupyterhub"  # the hub-db PVC (the k8s-hub image's working directory)
HUB_PORT = 8081
PROXY_API_PORT = 8001
PROXY_HTTP_PORT = 8000
SINGLEUSER_PORT = 8888
DEPLOYER_SERVICE = "jhaas-deployer"
CULLER_SERVICE = "idle-culler"
SINGLEUSER_COMPONENT = "singleuser-server"  # KubeSpawner's default `component_label`

MIN_CPU_GUARANTEE_M = 250
MIN_MEM_GUARANTEE = 256 * 2**20
CONCURRENT_SPAWN_LIMIT = 64
START_TIMEOUT = 600
HTTP_TIMEOUT = 120
CULL_TIMEOUT = 3600
CULL_EVERY = 600
PROXY_ROUTE_CHECK = 60  # seconds between the hub's checks of the proxy's routes
# As z2jh: jovyan of the Jupyter Docker Stacks images, group `users`, which owns a
# fresh home volume through fsGroup, so a new PVC is writable.
USER_UID = 1000
USER_FS_GID = 100


@dataclass(frozen=True, kw_only=True)
class UserSize:
    """One user's server, in exact integers: millicores and bytes."""

    cpu_guarantee_m: int
    cpu_limit_m: int
    mem_guarantee: int
    mem_limit: int
    storage: int
    gpus: int


def user_size(spec: HubSpec) -> UserSize:
    """guarantee = max(0.5 x per-user, floor), limit = per-user (REFERENCE.md).

    The guarantee is capped at the limit: a course asking for 100m CPU must not
    get a pod whose request exceeds its limit (the API server rejects that).
    """
    cpu = cpu_millicores(spec.resources.cpu)
    mem = byte_size(spec.resources.memory)
    return UserSize(
        cpu_guarantee_m=min(max(math.ceil(cpu / 2), MIN_CPU_GUARANTEE_M), cpu),
        cpu_limit_m=cpu,
        mem_guarantee=min(max(math.ceil(mem / 2), MIN_MEM_GUARANTEE), mem),
        mem_limit=mem,
        storage=byte_size(spec.resources.storage),
        gpus=spec.resources.gpus,
    )


@dataclass(frozen=True, kw_only=True)
class UserPods:
    """The operator's settings for user servers (from `K8sSettings`)."""

    storage_class: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    gpu_tolerations: list[dict[str, Any]] = field(default_factory=list)
    image_pull_secrets: tuple[str, ...] = ()
    priority_class: str | None = None
    # The operator declared the image to need root and allows it (PodSecurity baseline).
    run_as_root: bool = False


def security_traits(pods: UserPods) -> dict[str, Any]:
    """PodSecurity `restricted` (uid 1000, fsGroup 100, no escalation, no capabilities,
    seccomp RuntimeDefault), or for an allowed root image only what `baseline` asks."""
    container: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if pods.run_as_root:
        return {"uid": 0, "fs_gid": USER_FS_GID, "container_security_context": container}
    container |= {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    return {
        "uid": USER_UID,
        "fs_gid": USER_FS_GID,
        "allow_privilege_escalation": False,
        "container_security_context": container,
        "pod_security_context": {"seccompProfile": {"type": "RuntimeDefault"}},
    }


def scheduling_traits(size: UserSize, pods: UserPods) -> dict[str, Any]:
    """GPU courses onto the (tainted) GPU nodes, the others onto the user nodes."""
    traits: dict[str, Any] = {
        "node_selector": dict(pods.node_selector),
        "tolerations": list(pods.tolerations),
    }
    if size.gpus > 0:
        traits = {
            "extra_resource_limits": {pods.gpu_resource: str(size.gpus)},
            "extra_resource_guarantees": {pods.gpu_resource: str(size.gpus)},
            "node_selector": dict(pods.gpu_node_selector),
            "tolerations": list(pods.gpu_tolerations),
        }
    if pods.priority_class is not None:
        traits["priority_class_name"] = pods.priority_class
    if pods.image_pull_secrets:
        traits["image_pull_secrets"] = list(pods.image_pull_secrets)
    return traits


def spawner_traits(
    hub: HubDeployment, *, pods: UserPods, common_labels: dict[str, str]
) -> dict[str, Any]:
    spec = hub.configuration
    size = user_size(spec)
    traits: dict[str, Any] = {
        "namespace": env(ENV_NAMESPACE),
        # The full reference, never split on ':' (registry ports, digests).
        "image": spec.image,
        "cpu_guarantee": size.cpu_guarantee_m / 1000,
        "cpu_limit": size.cpu_limit_m / 1000,
        "mem_guarantee": size.mem_guarantee,
        "mem_limit": size.mem_limit,
        "default_url": "/lab" if spec.default_interface == "lab" else "/tree",
        "start_timeout": START_TIMEOUT,
        "http_timeout": HTTP_TIMEOUT,
        "port": SINGLEUSER_PORT,
        "common_labels": common_labels,
        "automount_service_account_token": False,
        # One PVC per user, created by KubeSpawner, mounted as the home directory.
        "storage_pvc_ensure": True,
        # KubeSpawner deletes a user's PVC with the user by default: the roster sync
        # deletes users who leave the course, and their work must outlive that.
        "delete_pvc": False,
        "storage_capacity": spec.resources.storage.strip(),
        "storage_access_modes": ["ReadWriteOnce"],
        "pvc_name_template": "claim-{user_server}",
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
        "volume_mounts": [{"name": "home", "mountPath": "/home/jovyan"}],
        **security_traits(pods),
        **scheduling_traits(size, pods),
    }
    if pods.storage_class is not None:
        traits["storage_class"] = pods.storage_class
    return traits


def auth_traits(hub: HubDeployment, public_url: str) -> tuple[str, Traits]:
    """The authenticator class, and the sections that configure it."""
    oauth = hub.oauth
    if oauth is None:  # no sign-in yet: only the deployer's API token works
        return "null", {}
    return "generic-oauth", {
        "GenericOAuthenticator": oauth_traits(oauth, env(ENV_OAUTH_SECRET), public_url),
        "Authenticator": sign_in_traits(),
    }


def service_traits() -> dict[str, Any]:
    # `python3` of the hub image, as z2jh starts its culler there.
    culler = ["python3", "-m", "jupyterhub_idle_culler"]
    culler += [f"--timeout={CULL_TIMEOUT}", f"--cull-every={CULL_EVERY}"]
    services = [
        {"name": DEPLOYER_SERVICE, "api_token": env(ENV_DEPLOYER_TOKEN)},
        {"name": CULLER_SERVICE, "command": culler},
    ]
    # The same groups and grants as the local backend, so sync_roster is one code path.
    return {
        "services": services,
        "load_groups": hub_groups(),
        "load_roles": hub_roles(deployer_service=DEPLOYER_SERVICE, culler_service=CULLER_SERVICE),
    }


def render_hub_config(
    hub: HubDeployment,
    *,
    public_url: str,
    pods: UserPods,
    common_labels: dict[str, str],
) -> HubConfigFiles:
    """The fixed config and its settings; secrets appear only as environment markers."""
    spec = hub.configuration
    authenticator, auth = auth_traits(hub, public_url)
    traits: Traits = {
        "JupyterHub": {
            "public_url": public_url,
            "hub_bind_url": f"http://:{HUB_PORT}",
            "hub_connect_url": f"http://hub:{HUB_PORT}",
            "db_url": f"sqlite:///{DATA_DIR}/jupyterhub.sqlite",
            "cookie_secret": from_hex(env(ENV_COOKIE_SECRET)),
            "cleanup_servers": False,  # a hub restart must not stop users
            # The proxy keeps its routes in memory: the hub re-checks and restores them
            # this often (z2jh's value; the default is 300 s of 404s after a restart).
            "last_activity_interval": PROXY_ROUTE_CHECK,
            "concurrent_spawn_limit": CONCURRENT_SPAWN_LIMIT,
            "active_server_limit": spec.expected_participants,
            "spawner_class": "kubespawner.KubeSpawner",
            "authenticator_class": authenticator,
            **service_traits(),
        },
        # The proxy runs in its own Deployment; the hub only talks to its API.
        "ConfigurableHTTPProxy": {
            "should_start": False,
            "api_url": f"http://proxy-api:{PROXY_API_PORT}",
            "auth_token": env(ENV_PROXY_TOKEN),
        },
        "KubeSpawner": spawner_traits(hub, pods=pods, common_labels=common_labels),
        **auth,
    }
    about = {"deployment_id": hub.deployment_id, "request_id": hub.request_id, "slug": hub.slug}
    return render(about, traits)
