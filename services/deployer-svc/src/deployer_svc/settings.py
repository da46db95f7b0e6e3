"""deployer-svc's settings: the runtime's, plus the schedule and the hub backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from deployer_svc.credentials import MIN_SECRET_LENGTH
from jhaas_runtime.settings import RuntimeSettings, SettingsError, env_int, env_str

SERVICE = "deployer-svc"
DEFAULT_LEAD_MINUTES = 30
BACKENDS = ("local", "kubernetes")


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
    lease: timedelta = timedelta(minutes=10)  # a deploy or teardown longer than this is retried
    # kubernetes backend: hubs at https://<slug>.<hub_domain>/
    hub_domain: str = ""
    max_sleep: timedelta = timedelta(seconds=1)  # the scheduler looks at least this often
    # How often what should exist is compared with what the backend has.
    reconcile_every: timedelta = timedelta(minutes=5)
    # Secrets the hub credentials are encrypted under (first encrypts, all decrypt);
    # none: a key file made in the data folder (single machine only).
    secret_keys: tuple[str, ...] = ()
    # kubernetes backend outside the cluster: this kubeconfig; None: in-cluster config.
    kubeconfig: Path | None = None

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
        return cls(
            runtime=runtime,
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
        )
