"""deployer-svc's settings: the runtime's, plus when to deploy before a course starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from jhaas_runtime.settings import RuntimeSettings, env_int

SERVICE = "deployer-svc"
DEFAULT_LEAD_MINUTES = 30


@dataclass(frozen=True, kw_only=True)
class DeployerSettings:
    runtime: RuntimeSettings
    # A hub is deployed this long before its course starts.
    lead_time: timedelta = timedelta(minutes=DEFAULT_LEAD_MINUTES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeployerSettings:
        env = os.environ if env is None else env
        minutes = env_int(env, "JHAAS_DEPLOY_LEAD_MINUTES", DEFAULT_LEAD_MINUTES, minimum=0)
        return cls(
            runtime=RuntimeSettings.from_env(SERVICE, env), lead_time=timedelta(minutes=minutes)
        )
