"""Keeps every running hub's users in step with its course's roster.

A roster event bumps its course's version (roster_store); the consumer wakes
this loop once its batch is committed. The loop brings each hub that is behind
in step with its WHOLE roster (never a replay of single events, so a hub that
missed changes while down, or was built anew, converges all the same), one
sync at a time per hub: events arriving during a sync make the hub behind
again, and the next sync takes all of them. A burst of events for one hub is
thus a handful of syncs, whatever its size.

A hub that cannot be reached is tried again with a growing delay (capped),
and after each reconciliation pass every running hub is synced once more, so
one that came back (or was changed by hand) is brought in step. The loop also
looks every `poll` for hubs behind, for changes another replica consumed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

from sqlalchemy.engine import Connection

from deployer_svc.backends.base import BackendError, HubBackend
from deployer_svc.roster import hub_roster
from deployer_svc.roster_store import RosterRepository, RosterSnapshot
from jhaas_runtime.aio import cancel_and_wait, wait_event
from jhaas_runtime.db import Database
from jhaas_runtime.logs import correlation, get_logger

log = get_logger(__name__)

COALESCE_SECONDS = 0.05  # wake-ups this close together make one look
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
MAX_PARALLEL_SYNCS = 8


def _pending(conn: Connection) -> dict[str, int]:
    return RosterRepository(conn).pending()


def _running(conn: Connection) -> list[str]:
    return RosterRepository(conn).running()


def _snapshot(conn: Connection, deployment_id: str) -> RosterSnapshot | None:
    return RosterRepository(conn).snapshot(deployment_id)


def _synced(conn: Connection, request_id: str, version: int) -> None:
    RosterRepository(conn).synced(request_id, version)


class RosterSync:
    def __init__(
        self,
        db: Database,
        backend: HubBackend,
        *,
        poll: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.backend = backend
        self.poll = poll
        self.clock = clock  # monotonic seconds
        self.syncs = 0  # hub syncs done (each with the whole roster)
        self.failures = 0
        self._wake = asyncio.Event()
        self._forced: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}
        self._tries: dict[str, int] = {}

    def changed(self) -> None:
        """A roster changed (its batch is committed) or a hub was built: look now."""
        self._wake.set()

    async def resync_all(self) -> None:
        """Sync every running hub once, behind or not (after a reconciliation pass)."""
        self._forced.update(await self.db.read(_running))
        self._retry_at.clear()
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._look()
                self._wake.clear()
                await wait_event(self._wake, self._sleep())
                await asyncio.sleep(COALESCE_SECONDS)
        finally:
            stuck = await cancel_and_wait(list(self._running.values()), 10.0)
            if stuck:
                log.error("roster syncs did not stop when cancelled", tasks=stuck)

    def _sleep(self) -> float:
        now = self.clock()
        waits = [at - now for d, at in self._retry_at.items() if d not in self._running]
        return max(COALESCE_SECONDS, min([self.poll, *waits]))

    async def _look(self) -> None:
        behind = await self.db.read(_pending)
        now = self.clock()
        forced, self._forced = self._forced, set()
        for deployment_id in sorted(set(behind) | forced):
            if deployment_id in self._running:
                if deployment_id in forced:
                    self._forced.add(deployment_id)  # after the one that runs
                continue
            if self._retry_at.get(deployment_id, now) > now:
                continue
            if len(self._running) >= MAX_PARALLEL_SYNCS:
                if deployment_id in forced:
                    self._forced.add(deployment_id)
                continue
            task = asyncio.create_task(self._sync(deployment_id), name=f"roster-{deployment_id}")
            self._running[deployment_id] = task
            task.add_done_callback(partial(self._done, deployment_id))

    def _done(self, deployment_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(deployment_id, None)
        self._wake.set()  # changes during the sync, or a free slot

    async def _sync(self, deployment_id: str) -> None:
        with correlation(f"deployment-{deployment_id}", action="roster-sync"):
            snapshot = await self.db.read(_snapshot, deployment_id)
            if snapshot is None:
                return  # no hub to keep in step (any more)
            roster = hub_roster(snapshot.leader_id, snapshot.members)
            try:
                await self.backend.sync_roster(deployment_id, roster)
            except BackendError as exc:
                self.failures += 1
                tries = self._tries.get(deployment_id, 0) + 1
                self._tries[deployment_id] = tries
                delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (tries - 1))
                self._retry_at[deployment_id] = self.clock() + delay
                log.warning(
                    "roster sync failed; will try again",
                    reason=str(exc),
                    temporary=exc.temporary,
                    retry_in=delay,
                )
                return
            except Exception:
                self.failures += 1
                self._retry_at[deployment_id] = self.clock() + RETRY_MAX_SECONDS
                log.exception("roster sync failed unexpectedly")
                return
            self._retry_at.pop(deployment_id, None)
            self._tries.pop(deployment_id, None)
            self.syncs += 1
            await self.db.write(_synced, snapshot.request_id, snapshot.version)
            log.info(
                "hub roster in step",
                version=snapshot.version,
                users=len(roster.everyone),
            )
