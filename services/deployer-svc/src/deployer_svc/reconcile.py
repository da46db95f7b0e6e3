"""Reconciliation: what the database says should exist, against what the backend has.

- A running course whose hub does not answer is rebuilt (its start is not
  announced again); the leader sees it deploying, then running at the new URL.
- A hub of a deployment the database knows as finished (deleted) is removed:
  a teardown that left something behind.
- A hub the database does not know at all is NEVER removed here. Every hub a
  deployer builds has its row first (scheduling precedes deploying, rows are
  never deleted), so an unknown hub of this installation means the database
  was reset or restored from an older backup — deleting would wipe a course
  and its users' data. It is reported, and an operator removes it with
  `python -m deployer_svc orphans --remove ID` once sure.

Only this installation's hubs are listed (the backend filters by installation
id), and only the rows of those hubs and of running courses are read, so the
cost follows the live courses, not the history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Connection

from deployer_svc import schedule
from deployer_svc.backends.base import BackendError, HubBackend, HubPhase
from deployer_svc.domain import DeploymentRecord
from deployer_svc.store import DeploymentRepository
from jhaas_runtime.db import Database
from jhaas_runtime.logs import get_logger
from jhaas_schemas.rpc import DeploymentState

log = get_logger(__name__)

ORPHANS_COMMAND = "python -m deployer_svc orphans"


class Reconciler:
    def __init__(
        self,
        db: Database,
        backend: HubBackend,
        clock: Callable[[], datetime],
        notify: Callable[[], None],
    ) -> None:
        self.db = db
        self.backend = backend
        self.clock = clock
        self.notify = notify
        self.passes = 0  # completed passes

    async def find_orphans(self) -> tuple[list[str], dict[str, DeploymentState], bool]:
        """(hubs the database does not know, the states of those it knows, whether the
        database has any deployment at all)."""
        managed = sorted(set(await self.backend.list_managed()))
        known, has_rows = await self.db.read(_known, managed)
        return [d for d in managed if d not in known], known, has_rows

    async def reconcile(self) -> tuple[list[str], list[str]]:
        """One pass; returns (rebuilt deployment ids, removed deployment ids)."""
        orphans, known, has_rows = await self.find_orphans()
        if orphans:
            why = (
                "the database holds no deployment at all: it looks reset or restored"
                if not has_rows
                else "the database does not know them (restored from an older backup?)"
            )
            log.error(
                "hubs of this installation that no deployment explains; left untouched",
                hubs=orphans,
                why=why,
                remove_with=f"{ORPHANS_COMMAND} --remove <deployment id>",
            )
        removed = [d for d, state in sorted(known.items()) if state not in schedule.ACTIVE]
        for deployment_id in list(removed):
            log.warning("removing what is left of a finished hub", deployment_id=deployment_id)
            try:
                await self.backend.teardown(deployment_id)
            except BackendError:
                log.warning("could not remove it yet", exc_info=True)
                removed.remove(deployment_id)
        rebuilt = await self._rebuild_missing()
        if rebuilt:
            self.notify()
        self.passes += 1
        return rebuilt, removed

    async def _rebuild_missing(self) -> list[str]:
        running = await self.db.read(_running)
        rebuilt = []
        for record in running:
            try:
                status = await self.backend.status(record.deployment_id)
            except BackendError:
                log.warning("could not read a hub's status", exc_info=True)
                continue
            if status.phase == HubPhase.READY:
                await self._adjust_capacity(record.deployment_id)
                continue
            if await self.db.write(_rebuild, record.deployment_id, self.clock()):
                rebuilt.append(record.deployment_id)
                log.warning(
                    "hub of a running course is missing; rebuilding",
                    deployment_id=record.deployment_id,
                    phase=status.phase.value,
                    detail=status.detail,
                )
        return rebuilt

    async def _adjust_capacity(self, deployment_id: str) -> None:
        """Backends that hold room for a course's users by the hour (the kubernetes
        backend's placeholders: more before a class, none overnight) follow the clock
        here, once a pass."""
        adjust = getattr(self.backend, "adjust_capacity", None)
        if adjust is None:
            return
        try:
            await adjust(deployment_id)
        except BackendError:
            log.warning("could not adjust a hub's placeholders", exc_info=True)


def _known(conn: Connection, managed: list[str]) -> tuple[dict[str, DeploymentState], bool]:
    repo = DeploymentRepository(conn)
    known = repo.states_of(managed)
    return known, bool(known) or repo.any_deployment()


def _running(conn: Connection) -> list[DeploymentRecord]:
    return DeploymentRepository(conn).running()


def _rebuild(conn: Connection, deployment_id: str, now: datetime) -> bool:
    """Schedule the hub again, unless the row changed since it was read."""
    repo = DeploymentRepository(conn)
    current = repo.get(deployment_id, for_update=True)
    again = schedule.hub_missing(current, now) if current is not None else None
    if again is not None:
        repo.save(again)
    return again is not None
