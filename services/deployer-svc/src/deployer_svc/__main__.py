"""`python -m deployer_svc`: settings from the environment -> build_app -> run.

`python -m deployer_svc orphans` lists this installation's hubs that no
deployment in the database explains (reconciliation never removes those: the
database may have been reset or restored); `--remove ID` deletes one, with
all its data, once an operator is sure it is not wanted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from deployer_svc.app import SERVICE, build_app, build_backend
from deployer_svc.reconcile import Reconciler
from deployer_svc.scheduler import utcnow
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import VERSIONS_DIR, metadata
from jhaas_runtime.db import Database
from jhaas_runtime.logs import configure_logging
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_runtime.service import run_service
from jhaas_runtime.settings import SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployer_svc", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    orphans = commands.add_parser("orphans", help="list (or remove) hubs no deployment explains")
    orphans.add_argument(
        "--remove", action="append", default=[], metavar="ID", help="delete this hub and its data"
    )
    args = parser.parse_args(argv)
    try:
        settings = DeployerSettings.from_env()
    except SettingsError as exc:  # e.g. the kubernetes settings file: key and line
        print(f"{SERVICE}: refusing to start: {exc}", file=sys.stderr)
        return 2
    configure_logging(SERVICE, level=settings.runtime.log_level, fmt=settings.runtime.log_format)
    if args.command == "orphans":
        return asyncio.run(_orphans(settings, args.remove))
    run_service(build_app(settings))
    return 0


async def _orphans(settings: DeployerSettings, remove: list[str]) -> int:
    backend = build_backend(settings)
    db = Database(settings.runtime.database_url)
    try:
        await upgrade_to_head(db, metadata, VERSIONS_DIR)
        reconciler = Reconciler(db, backend, utcnow, lambda: None)
        orphans, _, has_rows = await reconciler.find_orphans()
        unknown = sorted(set(remove) - set(orphans))
        if unknown:
            print(
                f"not removed: {', '.join(unknown)}: not a hub of this installation that "
                "no deployment explains",
                file=sys.stderr,
            )
            return 2
        for deployment_id in remove:
            record = await backend.teardown(deployment_id)
            print(json.dumps({"removed": deployment_id, "objects": list(record.objects)}))
        if not remove:
            print(json.dumps({"orphans": orphans, "database_has_deployments": has_rows}))
        return 0
    finally:
        await backend.close()
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
