"""The `jupyterhub_config.py` of one course's hub on Kubernetes, generated as text.

Pure and deterministic. Every value is written as a Python literal with
`repr()` (never pasted into code by string formatting), and every secret is
read from an environment variable that the hub Deployment fills from the
`hub-secrets` Secret: the generated text may sit in a ConfigMap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jhaas_schemas.model import HubSpec
from jhaas_schemas.quantities import byte_size, cpu_millicores

from .base import HubDeployment

# Environment variables of the hub container (filled by `secretKeyRef`, see k8s_manifests).
ENV_NAMESPACE = "POD_NAMESPACE"
ENV_DEPLOYER_TOKEN = "JHAAS_DEPLOYER_API_TOKEN"  # noqa: S105 (a name, not a value)
ENV_PROXY_TOKEN = "CONFIGPROXY_AUTH_TOKEN"  # noqa: S105 (a name, not a value)
ENV_COOKIE_SECRET = "JPY_COOKIE_SECRET"  # noqa: S105 (hex, as JupyterHub reads it)
ENV_OAUTH_SECRET = "OAUTH_CLIENT_SECRET"  # noqa: S105 (a name, not a value)

CONFIG_DIR = "/usr/local/etc/jupyterhub"
CONFIG_FILE = "jupyterhub_config.py"
DATA_DIR = "/srv/jupyterhub"  # the hub-db PVC (the k8s-hub image's working directory)
HUB_PORT = 8081
PROXY_API_PORT = 8001
PROXY_HTTP_PORT = 8000
SINGLEUSER_PORT = 8888
DEPLOYER_SERVICE = "jhaas-deployer"
DEPLOYER_SCOPES = ("admin:users", "admin:servers", "list:users", "read:users")
SINGLEUSER_COMPONENT = "singleuser-server"  # KubeSpawner's default `component_label`

MIN_CPU_GUARANTEE_M = 250
MIN_MEM_GUARANTEE = 256 * 2**20
CONCURRENT_SPAWN_LIMIT = 64
START_TIMEOUT = 600
HTTP_TIMEOUT = 120
CULL_TIMEOUT = 3600
CULL_EVERY = 600


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


def _line(key: str, value: Any) -> str:
    return f"c.{key} = {value!r}"


def _env(name: str) -> str:
    return f"os.environ[{name!r}]"


def spawner_lines(
    hub: HubDeployment,
    *,
    storage_class: str | None,
    gpu_resource: str,
    gpu_node_selector: dict[str, str],
    gpu_tolerations: list[dict[str, Any]],
    common_labels: dict[str, str],
) -> list[str]:
    spec = hub.configuration
    size = user_size(spec)
    lines = [
        _line("JupyterHub.spawner_class", "kubespawner.KubeSpawner"),
        f"c.KubeSpawner.namespace = {_env(ENV_NAMESPACE)}",
        # The full reference, never split on ':' (registry ports, digests).
        _line("KubeSpawner.image", spec.image),
        _line("KubeSpawner.cpu_guarantee", size.cpu_guarantee_m / 1000),
        _line("KubeSpawner.cpu_limit", size.cpu_limit_m / 1000),
        _line("KubeSpawner.mem_guarantee", size.mem_guarantee),
        _line("KubeSpawner.mem_limit", size.mem_limit),
        _line("KubeSpawner.default_url", "/lab" if spec.default_interface == "lab" else "/tree"),
        _line("KubeSpawner.start_timeout", START_TIMEOUT),
        _line("KubeSpawner.http_timeout", HTTP_TIMEOUT),
        _line("KubeSpawner.port", SINGLEUSER_PORT),
        _line("KubeSpawner.common_labels", common_labels),
        _line("KubeSpawner.automount_service_account_token", False),
        # One PVC per user, created by KubeSpawner, mounted as the home directory.
        _line("KubeSpawner.storage_pvc_ensure", True),
        _line("KubeSpawner.storage_capacity", spec.resources.storage),
        _line("KubeSpawner.storage_access_modes", ["ReadWriteOnce"]),
        _line("KubeSpawner.pvc_name_template", "claim-{user_server}"),
        _line(
            "KubeSpawner.volumes",
            [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
        ),
        _line("KubeSpawner.volume_mounts", [{"name": "home", "mountPath": "/home/jovyan"}]),
    ]
    if storage_class is not None:
        lines.append(_line("KubeSpawner.storage_class", storage_class))
    if size.gpus > 0:
        lines += [
            _line("KubeSpawner.extra_resource_limits", {gpu_resource: str(size.gpus)}),
            _line("KubeSpawner.extra_resource_guarantees", {gpu_resource: str(size.gpus)}),
            _line("KubeSpawner.node_selector", dict(gpu_node_selector)),
            _line("KubeSpawner.tolerations", list(gpu_tolerations)),
        ]
    return lines


def auth_lines(hub: HubDeployment, public_url: str) -> list[str]:
    oauth = hub.oauth
    if oauth is None:  # no sign-in yet: only the deployer's API token works
        return [_line("JupyterHub.authenticator_class", "null")]
    return [
        _line("JupyterHub.authenticator_class", "generic-oauth"),
        _line("GenericOAuthenticator.client_id", oauth.client_id),
        f"c.GenericOAuthenticator.client_secret = {_env(ENV_OAUTH_SECRET)}",
        _line("GenericOAuthenticator.oauth_callback_url", f"{public_url}hub/oauth_callback"),
        _line("GenericOAuthenticator.authorize_url", oauth.authorize_url),
        _line("GenericOAuthenticator.token_url", oauth.token_url),
        _line("GenericOAuthenticator.userdata_url", oauth.userdata_url),
        _line("GenericOAuthenticator.username_claim", "preferred_username"),
        _line("GenericOAuthenticator.login_service", "JHaaS"),
        # Sorted: frozensets have no stable order, the output must be deterministic.
        _line("GenericOAuthenticator.allowed_users", sorted(oauth.allowed_users)),
        _line("GenericOAuthenticator.admin_users", sorted(oauth.admin_users)),
        # As the local backend: users the deployer creates through the API (sync_roster)
        # may sign in at once, users it deletes may not.
        _line("GenericOAuthenticator.allow_existing_users", True),
        _line("GenericOAuthenticator.allow_all", False),
    ]


def services_lines() -> list[str]:
    services = [
        f"    {{'name': {DEPLOYER_SERVICE!r}, 'api_token': {_env(ENV_DEPLOYER_TOKEN)}}},",
        "    {'name': 'idle-culler', 'command': [sys.executable, '-m', 'jupyterhub_idle_culler',"
        f" '--timeout={CULL_TIMEOUT}', '--cull-every={CULL_EVERY}']}},",
    ]
    roles = [
        # The same grants as the local backend (local_config), so sync_roster is one code path.
        {"name": DEPLOYER_SERVICE, "scopes": list(DEPLOYER_SCOPES), "services": [DEPLOYER_SERVICE]},
        # Making the course leader an admin needs an admin: the deployer is one.
        {"name": "admin", "services": [DEPLOYER_SERVICE]},
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        },
    ]
    return ["c.JupyterHub.services = [", *services, "]", _line("JupyterHub.load_roles", roles)]


def render_hub_config(
    hub: HubDeployment,
    *,
    public_url: str,
    storage_class: str | None,
    gpu_resource: str,
    gpu_node_selector: dict[str, str],
    gpu_tolerations: list[dict[str, Any]],
    common_labels: dict[str, str],
) -> str:
    """The whole configuration file; secrets appear only as `os.environ[...]` reads."""
    spec = hub.configuration
    head = [
        f"# jupyterhub_config.py of course {spec.slug!r}, generated by jhaas-deployer.",
        "# Do not edit: the deployer rewrites it. Secrets come from the environment only.",
        "import os",
        "import sys",
        "",
        "c = get_config()  # noqa: F821",
        _line("JupyterHub.public_url", public_url),
        _line("JupyterHub.hub_bind_url", f"http://:{HUB_PORT}"),
        _line("JupyterHub.hub_connect_url", f"http://hub:{HUB_PORT}"),
        _line("JupyterHub.db_url", f"sqlite:///{DATA_DIR}/jupyterhub.sqlite"),
        f"c.JupyterHub.cookie_secret = bytes.fromhex({_env(ENV_COOKIE_SECRET)})",
        _line("JupyterHub.cleanup_servers", False),  # a hub restart must not stop users
        _line("JupyterHub.concurrent_spawn_limit", CONCURRENT_SPAWN_LIMIT),
        _line("JupyterHub.active_server_limit", spec.expected_participants),
        # The proxy runs in its own Deployment; the hub only talks to its API.
        _line("ConfigurableHTTPProxy.should_start", False),
        _line("ConfigurableHTTPProxy.api_url", f"http://proxy-api:{PROXY_API_PORT}"),
        f"c.ConfigurableHTTPProxy.auth_token = {_env(ENV_PROXY_TOKEN)}",
    ]
    spawner = spawner_lines(
        hub,
        storage_class=storage_class,
        gpu_resource=gpu_resource,
        gpu_node_selector=gpu_node_selector,
        gpu_tolerations=gpu_tolerations,
        common_labels=common_labels,
    )
    body = [*head, *spawner, *auth_lines(hub, public_url), *services_lines()]
    return "\n".join(body) + "\n"
