"""`python -m deployer_svc`: settings from the environment -> build_app -> run."""

from __future__ import annotations

import asyncio

from deployer_svc.app import SERVICE, build_app
from deployer_svc.settings import DeployerSettings
from jhaas_runtime.logs import configure_logging


def main() -> None:
    settings = DeployerSettings.from_env()
    configure_logging(SERVICE, level=settings.runtime.log_level, fmt=settings.runtime.log_format)
    asyncio.run(build_app(settings).serve())


if __name__ == "__main__":
    main()
