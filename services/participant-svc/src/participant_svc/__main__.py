"""`python -m participant_svc`: settings from the environment -> build_app -> run."""

from __future__ import annotations

from jhaas_runtime.logs import configure_logging
from jhaas_runtime.service import run_service
from jhaas_runtime.settings import RuntimeSettings
from participant_svc.app import SERVICE, build_app


def main() -> None:
    settings = RuntimeSettings.from_env(SERVICE)
    configure_logging(SERVICE, level=settings.log_level, fmt=settings.log_format)
    run_service(build_app(settings))


if __name__ == "__main__":
    main()
