"""`python -m deployer_svc`: settings from the environment -> build_app -> run."""

from __future__ import annotations

from deployer_svc.app import SERVICE, build_app
from deployer_svc.settings import DeployerSettings
from jhaas_runtime.logs import configure_logging
from jhaas_runtime.service import run_service


def main() -> None:
    settings = DeployerSettings.from_env()
    configure_logging(SERVICE, level=settings.runtime.log_level, fmt=settings.runtime.log_format)
    run_service(build_app(settings))


if __name__ == "__main__":
    main()
