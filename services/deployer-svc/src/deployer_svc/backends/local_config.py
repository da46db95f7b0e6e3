"""The `local` backend's on-disk layout and each hub's configuration, from pure functions.

A hub's folder holds the fixed `jupyterhub_config.py` of `hub_settings` and the
JSON settings it loads. Neither holds a secret: the cookie secret, the proxy
token, the deployer's API token and the OAuth client secret are files beside
them (mode 0600) that the settings name, so both can be shown, diffed and
logged safely.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer_svc.backends.base import HubDeployment
from deployer_svc.backends.hub_roles import hub_groups, hub_roles, oauth_traits, sign_in_traits
from deployer_svc.backends.hub_settings import (
    CONFIG_FILE,
    SETTINGS_FILE,
    HubConfigFiles,
    Traits,
    render,
    secret_file,
)
from jhaas_schemas.quantities import cpu_millicores

DEPLOYER_SERVICE = "jhaas-deployer"
CULLER_SERVICE = "idle-culler"
CULL_TIMEOUT = 3600
CULL_EVERY = 600
# The secret files beside the config (0600), which the settings name.
PROXY_TOKEN_FILE = "proxy_auth_token"  # noqa: S105 (a file name, not a value)
API_TOKEN_FILE = "api_token"  # noqa: S105 (a file name, not a value)
OAUTH_SECRET_FILE = "oauth_client_secret"  # noqa: S105 (a file name, not a value)

_BINARY = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")


@dataclass(frozen=True, kw_only=True)
class SeparateAccounts:
    """Each user's server as its own system account (the deployer makes them)."""

    account_prefix: str  # account = prefix + hub username
    singleuser_bin: Path  # bin/ of a venv every account can run (not under /root)
    cgroup_procs: tuple[str, ...] = ()  # templates of {account}; () = no kernel limits


# What a user's server inherits of the hub's environment besides JUPYTERHUB_*:
# the locale, nothing that could carry a secret.
SERVER_ENV_KEEP = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")


@dataclass(frozen=True, kw_only=True)
class Ports:
    public: int  # the proxy's public side: where people reach the hub
    hub: int  # the hub's own HTTP server (behind the proxy)
    proxy_api: int  # configurable-http-proxy's REST API


@dataclass(frozen=True)
class HubLayout:
    """Where one hub's files live under the backend's root."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / CONFIG_FILE

    @property
    def settings(self) -> Path:
        return self.folder / SETTINGS_FILE

    @property
    def state(self) -> Path:
        return self.folder / "state.json"

    @property
    def db(self) -> Path:
        return self.folder / "jupyterhub.sqlite"

    @property
    def cookie_secret(self) -> Path:
        return self.folder / "cookie_secret"

    @property
    def proxy_token(self) -> Path:
        return self.folder / PROXY_TOKEN_FILE

    @property
    def api_token(self) -> Path:
        return self.folder / API_TOKEN_FILE

    @property
    def oauth_secret(self) -> Path:
        return self.folder / OAUTH_SECRET_FILE

    @property
    def homes(self) -> Path:
        return self.folder / "home"

    @property
    def log(self) -> Path:
        return self.folder / "hub.log"

    @property
    def hub_pid(self) -> Path:
        return self.folder / "jupyterhub.pid"

    @property
    def proxy_pid(self) -> Path:
        return self.folder / "jupyterhub-proxy.pid"


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``2Gi``, ``512M``, ``1000000``) in bytes."""
    match = _QUANTITY.match(quantity.strip())
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    number, unit = match.groups()
    factor = _BINARY.get(unit) or _DECIMAL.get(unit)
    if factor is None:
        raise ValueError(f"unknown memory unit in {quantity!r}")
    return int(float(number) * factor)


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity (``500m``, ``2``) in cores."""
    return cpu_millicores(quantity) / 1000


def _literal_template(text: str) -> str:
    """`text` inside a `str.format` template (JupyterHub formats `home_dir_template`
    with the user's name): braces in the hub's folder stay braces."""
    return text.replace("{", "{{").replace("}", "}}")


def _auth_traits(hub: HubDeployment, public_url: str) -> tuple[str, Traits]:
    """The authenticator class, and the sections that configure it."""
    oauth = hub.oauth
    if oauth is None:  # no sign-in yet: only the deployer's API token reaches the hub
        return "jupyterhub.auth.NullAuthenticator", {}
    return "oauthenticator.generic.GenericOAuthenticator", {
        "GenericOAuthenticator": oauth_traits(oauth, secret_file(OAUTH_SECRET_FILE), public_url),
        "Authenticator": sign_in_traits(),
    }


def _service_traits(layout: HubLayout, python: str) -> dict[str, Any]:
    culler = [
        python,
        "-m",
        "jupyterhub_idle_culler",
        f"--timeout={CULL_TIMEOUT}",
        f"--cull-every={CULL_EVERY}",
    ]
    services = [
        {"name": DEPLOYER_SERVICE, "api_token": secret_file(API_TOKEN_FILE)},
        {"name": CULLER_SERVICE, "command": culler, "cwd": str(layout.folder)},
    ]
    return {
        "services": services,
        "load_groups": hub_groups(),
        "load_roles": hub_roles(deployer_service=DEPLOYER_SERVICE, culler_service=CULLER_SERVICE),
    }


def _spawner_traits(
    layout: HubLayout, bin_dir: Path, as_root: bool, accounts: SeparateAccounts | None
) -> tuple[dict[str, Any], Traits]:
    """How servers start (the `Spawner` section's part, and other sections): as the
    deployer's account in a folder per user, or each as its own account
    (`CONFIG_TEXT`'s IsolatedSpawner) with a short environment free of secrets."""
    if accounts is None:
        home = _literal_template(str(layout.homes)) + "/{username}"
        return {
            "cmd": [str(bin_dir / "jupyterhub-singleuser")],
            "args": ["--allow-root"] if as_root else [],
        }, {"SimpleLocalProcessSpawner": {"home_dir_template": home}}
    path = os.pathsep.join([str(accounts.singleuser_bin), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "cmd": [str(accounts.singleuser_bin / "jupyterhub-singleuser")],
        "args": [],
        "env_keep": list(SERVER_ENV_KEEP),
        # The hub's PATH leads to the deployer's environment; the server gets its own.
        "environment": {"PATH": path},
    }, {
        "IsolatedSpawner": {
            "account_prefix": accounts.account_prefix,
            "cgroup_procs": list(accounts.cgroup_procs),
        }
    }


def proxy_max_clients(participants: int) -> int:
    """Requests the hub's proxy forwards at once: a spawn and a progress stream per
    participant at class start, with a floor for small courses."""
    return max(256, 3 * participants)


def render_config(
    hub: HubDeployment,
    layout: HubLayout,
    ports: Ports,
    *,
    bin_dir: Path,
    python: str,
    public_host: str = "127.0.0.1",
    as_root: bool = False,
    accounts: SeparateAccounts | None = None,
) -> HubConfigFiles:
    """The hub's `jupyterhub_config.py` (fixed) and its settings (no secret inside).

    Raises ValueError when the approved resources are not quantities.
    """
    spec = hub.configuration
    server, spawner_sections = _spawner_traits(layout, bin_dir, as_root, accounts)
    public_url = f"http://{public_host}:{ports.public}"
    authenticator, auth = _auth_traits(hub, public_url)
    traits: Traits = {
        "JupyterHub": {
            "bind_url": f"http://127.0.0.1:{ports.public}/",
            "hub_bind_url": f"http://127.0.0.1:{ports.hub}",
            "db_url": f"sqlite:///{layout.db}",
            "cookie_secret_file": str(layout.cookie_secret),
            "pid_file": str(layout.hub_pid),
            # Single-user servers survive a hub restart (a config change); teardown stops them.
            "cleanup_servers": False,
            "cleanup_proxy": True,
            "active_server_limit": spec.expected_participants,
            "proxy_class": "configurable-http-proxy",
            "spawner_class": "simple" if accounts is None else "jhaas-isolated",
            "authenticator_class": authenticator,
            **_service_traits(layout, python),
        },
        "ConfigurableHTTPProxy": {
            # Our wrapper of it: room for a whole class's requests at once (proxy.py).
            "command": [
                python,
                "-m",
                "deployer_svc.backends.proxy",
                "--max-clients",
                str(proxy_max_clients(spec.expected_participants)),
            ],
            "api_url": f"http://127.0.0.1:{ports.proxy_api}",
            "auth_token": secret_file(PROXY_TOKEN_FILE),
            "pid_file": str(layout.proxy_pid),
            "should_start": True,
        },
        "Spawner": {
            # How long a new server may take to answer before the hub gives up on it.
            # When a whole class starts at once on a small machine (50 servers on 2
            # cores), servers need minutes; a slow start beats a failed one. A restarted
            # hub also waits this long for each running server.
            "http_timeout": 300,
            "default_url": "/lab" if spec.default_interface == "lab" else "/tree",
            "mem_limit": memory_bytes(spec.resources.memory),
            "cpu_limit": cpu_cores(spec.resources.cpu),
            **server,
        },
        **spawner_sections,
        **auth,
    }
    about = {"deployment_id": hub.deployment_id, "request_id": hub.request_id, "slug": hub.slug}
    return render(about, traits)
