"""`python -m request_svc`: settings from the environment -> build_app -> run."""

from __future__ import annotations

import os

from jhaas_runtime.logs import configure_logging
from jhaas_runtime.policy_holder import holder_or_exit
from jhaas_runtime.service import run_service
from jhaas_runtime.settings import RuntimeSettings
from request_svc.app import SERVICE, build_app


def main() -> None:
    settings = RuntimeSettings.from_env(SERVICE)
    configure_logging(SERVICE, level=settings.log_level, fmt=settings.log_format)
    policy = holder_or_exit(SERVICE, os.environ)
    runtime = build_app(settings, policy=policy)
    runtime.add_background("policy-reload", policy.watch)
    run_service(runtime)


if __name__ == "__main__":
    main()
