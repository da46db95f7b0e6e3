"""deployer-svc's settings: the runtime's, plus the schedule and the hub backend."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from deployer_svc.backends.k8s_manifests import K8sSettings
from deployer_svc.backends.k8s_settings import load_k8s_settings
from deployer_svc.credentials import MIN_SECRET_LENGTH
from jhaas_runtime.files import write_private_file
from jhaas_runtime.settings import RuntimeSettings, SettingsError, env_bool, env_int, env_str

SERVICE = "deployer-svc"
DEFAULT_SINGLEUSER_VENV = Path("/opt/jhaas/singleuser")
DEFAULT_LEAD_MINUTES = 30
BACKENDS = ("local", "kubernetes")
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, kw_only=True)
class DeployerSettings:
    runtime: RuntimeSettings
    # A hub is deployed this long before its course starts.
    lead_time: timedelta = timedelta(minutes=DEFAULT_LEAD_MINUTES)
    # Hub and data are deleted this long after the course ends.
    grace: timedelta = timedelta(0)
    backend: str = "local"
    hubs_dir: Path | None = None  # local backend: one folder per hub (default <data>/hubs)
    deploy_attempts: int = 3
    retry_backoff: timedelta = timedelta(seconds=30)
    # A deploy or teardown holds its deployment for this long and renews it every
    # third of it while it runs; a worker that dies leaves it to another this late.
    lease: timedelta = timedelta(seconds=90)
    # Deploys and teardowns running at once in one replica (the rest wait their turn;
    # course starts and ends never wait for them).
    max_parallel_actions: int = 8
    # kubernetes backend: hubs at https://<slug>.<hub_domain>/
    hub_domain: str = ""
    max_sleep: timedelta = timedelta(seconds=1)  # the scheduler looks at least this often
    # How often what should exist is compared with what the backend has.
    reconcile_every: timedelta = timedelta(minutes=5)
    # Secrets the hub credentials are encrypted under (first encrypts, all decrypt);
    # none: a key file made in the data folder (single machine only).
    secret_keys: tuple[str, ...] = ()
    # kubernetes backend: the operator's settings (JHAAS_K8S_SETTINGS_FILE, checked at start).
    k8s: K8sSettings | None = None
    # kubernetes backend outside the cluster: this kubeconfig; None: in-cluster config.
    kubeconfig: Path | None = None
    # Names this installation's hubs: a deployer sees and touches only hubs that carry it.
    installation_id: str = "local"
    # The gateway the hubs sign people in through: the browser-facing URL (the
    # hubs' authorize_url) and the one hubs reach it at server to server
    # (token_url, userdata_url); both without a trailing '/'.
    gateway_url: str = DEFAULT_GATEWAY_URL
    gateway_internal_url: str = DEFAULT_GATEWAY_URL
    # local backend: a deploy whose users cannot be isolated (own accounts, kernel
    # limits) fails instead of starting a hub that lets only the leader in.
    require_isolation: bool = False
    # local backend: the venv (on the system Python, readable by every account) the
    # users' servers run from; made by `./jhaas` set-up.
    singleuser_venv: Path = DEFAULT_SINGLEUSER_VENV

    @property
    def local_hubs_dir(self) -> Path:
        return self.hubs_dir or self.runtime.data_dir / "hubs"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeployerSettings:
        env = os.environ if env is None else env
        backend = env_str(env, "JHAAS_HUB_BACKEND", "local")
        if backend not in BACKENDS:
            raise SettingsError(f"JHAAS_HUB_BACKEND must be one of {BACKENDS}, got {backend!r}")
        hubs_dir = env.get("JHAAS_LOCAL_HUBS_DIR")
        hub_domain = env_str(env, "JHAAS_HUB_DOMAIN", "")
        if backend == "kubernetes" and not hub_domain:
            raise SettingsError(
                "JHAAS_HUB_DOMAIN is required with JHAAS_HUB_BACKEND=kubernetes "
                "(hubs are served at https://<slug>.<domain>/)"
            )
        runtime = RuntimeSettings.from_env(SERVICE, env)
        secret_keys = tuple(
            key.strip()
            for key in env.get("JHAAS_DEPLOYER_SECRET_KEYS", "").split(",")
            if key.strip()
        )
        for key in secret_keys:
            if len(key) < MIN_SECRET_LENGTH:
                raise SettingsError(
                    f"JHAAS_DEPLOYER_SECRET_KEYS: each key must be at least {MIN_SECRET_LENGTH} "
                    f"characters (e.g. `openssl rand -hex 32`); one has {len(key)}"
                )
        kubeconfig = env_str(env, "JHAAS_KUBECONFIG", "")
        if kubeconfig and not Path(kubeconfig).is_file():
            raise SettingsError(f"JHAAS_KUBECONFIG: no such file: {kubeconfig}")
        shared = backend == "kubernetes" or not runtime.database_url.startswith("sqlite")
        if shared and not secret_keys:
            raise SettingsError(
                "JHAAS_DEPLOYER_SECRET_KEYS is required with a shared database or the "
                "kubernetes backend: every replica must encrypt hub credentials under the "
                "same key (e.g. `openssl rand -hex 32`)"
            )
        installation_id = env_str(env, "JHAAS_INSTALLATION_ID", "")
        if installation_id:
            check_installation_id(installation_id)
        elif shared:
            raise SettingsError(
                "JHAAS_INSTALLATION_ID is required with a shared database or the kubernetes "
                "backend: every replica must name this installation's hubs alike, and no other "
                "installation on the same cluster may use it (e.g. `uni-prod`)"
            )
        else:
            installation_id = load_or_create_installation_id(runtime.data_dir)
        gateway_url = check_gateway_url(
            "JHAAS_GATEWAY_URL", env_str(env, "JHAAS_GATEWAY_URL", DEFAULT_GATEWAY_URL)
        )
        gateway_internal_url = check_gateway_url(
            "JHAAS_GATEWAY_INTERNAL_URL", env_str(env, "JHAAS_GATEWAY_INTERNAL_URL", gateway_url)
        )
        k8s = None
        if backend == "kubernetes":
            k8s = load_k8s_settings(env, domain=hub_domain, installation_id=installation_id)
        return cls(
            runtime=runtime,
            k8s=k8s,
            installation_id=installation_id,
            gateway_url=gateway_url,
            gateway_internal_url=gateway_internal_url,
            lease=timedelta(seconds=env_int(env, "JHAAS_LEASE_SECONDS", 90, minimum=3)),
            max_parallel_actions=env_int(env, "JHAAS_MAX_PARALLEL_ACTIONS", 8, minimum=1),
            lead_time=timedelta(
                minutes=env_int(env, "JHAAS_DEPLOY_LEAD_MINUTES", DEFAULT_LEAD_MINUTES, minimum=0)
            ),
            grace=timedelta(minutes=env_int(env, "JHAAS_TEARDOWN_GRACE_MINUTES", 0, minimum=0)),
            backend=backend,
            hubs_dir=Path(hubs_dir).resolve() if hubs_dir else None,
            hub_domain=hub_domain,
            deploy_attempts=env_int(env, "JHAAS_DEPLOY_ATTEMPTS", 3, minimum=1),
            retry_backoff=timedelta(
                seconds=env_int(env, "JHAAS_DEPLOY_RETRY_SECONDS", 30, minimum=1)
            ),
            reconcile_every=timedelta(
                seconds=env_int(env, "JHAAS_RECONCILE_SECONDS", 300, minimum=5)
            ),
            secret_keys=secret_keys,
            kubeconfig=Path(kubeconfig).resolve() if kubeconfig else None,
            require_isolation=env_bool(env, "JHAAS_REQUIRE_ISOLATION", False),
            singleuser_venv=Path(
                env_str(env, "JHAAS_SINGLEUSER_VENV", str(DEFAULT_SINGLEUSER_VENV))
            ).resolve(),
        )


def check_gateway_url(name: str, value: str) -> str:
    """An http(s) URL with a host and no query, fragment or credentials, without
    its trailing '/': the hubs' OAuth endpoints are this plus a path."""
    parts = urlsplit(value.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "?" in value
        or "#" in value
        or parts.username is not None
        or any(c.isspace() or ord(c) < 32 for c in value.strip())
    ):
        raise SettingsError(
            f"{name} must be an http(s) URL with a host and no query, fragment or "
            f"user info (e.g. https://jhaas.example.org); got {value!r}"
        )
    try:
        parts.port  # noqa: B018 (raises on a port that is no number)
    except ValueError:
        raise SettingsError(f"{name} has an invalid port: {value!r}") from None
    return value.strip().rstrip("/")


INSTALLATION_ID_FILE = "installation-id"
_INSTALLATION_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$")


def check_installation_id(value: str) -> str:
    """An installation id is a label value and part of namespace names: 1-16 of
    a-z, 0-9 and '-', starting and ending with a letter or digit."""
    if not _INSTALLATION_ID.fullmatch(value):
        raise SettingsError(
            "JHAAS_INSTALLATION_ID must be 1-16 lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit; got {value!r}"
        )
    return value


def load_or_create_installation_id(data_dir: Path) -> str:
    """One machine: an id made once and kept in the data folder, so that a second
    installation on the same machine (another data folder) has another one."""
    path = data_dir / INSTALLATION_ID_FILE
    # Two processes starting together keep the first one's id.
    write_private_file(path, "i" + secrets.token_hex(6) + "\n")
    value = path.read_text().strip()
    try:
        return check_installation_id(value)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None
