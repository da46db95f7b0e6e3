"""The durable schedule's worker: finds what is due, claims it, does it.

Every decision is in the database, so a restart resumes where the last run
stopped: a trigger that fell due while the service was down is simply due
now. Several replicas may run this loop against one database: claiming
happens under row locks (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one
writer at a time), so each instant action happens once and each long action
has one owner at a time.

Long actions (deploy, teardown) run as tasks of their own, at most
`max_parallel_actions` at a time, so one slow hub never holds up another
course's start, end or deletion. While one runs, its lease is renewed; an
action whose lease is lost (or whose course was cancelled under it) is
stopped before it records or emits anything.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.engine import Connection

from deployer_svc import schedule
from deployer_svc.backends.base import BackendError, HubBackend, HubDeployment, OAuthClient
from deployer_svc.credentials import CredentialBox, CredentialError
from deployer_svc.domain import DeploymentRecord
from deployer_svc.reconcile import Reconciler
from deployer_svc.roster_store import RosterRepository
from deployer_svc.schedule import Action
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository
from jhaas_runtime.aio import cancel_and_wait, wait_event
from jhaas_runtime.alive import Heartbeat
from jhaas_runtime.logs import correlation, get_logger
from jhaas_runtime.service import ServiceRuntime, UnitOfWork
from jhaas_schemas.envelope import Envelope, envelope
from jhaas_schemas.model import DeletionRecord, HubSpec
from jhaas_schemas.rpc import DeploymentState

log = get_logger(__name__)

SOURCE = "deployer-svc"
Clock = Callable[[], datetime]
T = TypeVar("T")

# Wake-ups from the event consumers come in bursts (one per batch); ticks they
# cause are this far apart at least, so a burst costs one tick, not one per batch.
COALESCE_SECONDS = 0.05


def utcnow() -> datetime:
    return datetime.now(UTC)


Fired = tuple[Action, datetime, datetime]  # an action, when it was planned, when it fired


def _planned(record: DeploymentRecord, action: Action) -> datetime:
    return {
        Action.DEPLOY: record.next_attempt_at or record.deploy_at,
        Action.START_COURSE: record.starts_at,
        Action.END_COURSE: record.ends_at,
        Action.TEARDOWN: record.teardown_at,
    }[action]


# Units of work of one statement each (jhaas_runtime.db: `fn(conn, ...)`).


def _next_due(conn: Connection) -> datetime | None:
    return DeploymentRepository(conn).next_due()


def _release_leases(conn: Connection, owner: str, deployment_ids: list[str]) -> None:
    DeploymentRepository(conn).release_leases(owner, deployment_ids)


def _renew_lease(
    conn: Connection, deployment_id: str, owner: str, until: datetime
) -> DeploymentState | None:
    return DeploymentRepository(conn).renew_lease(deployment_id, owner, until)


def _api_token(conn: Connection, deployment_id: str, new_token: str, box: CredentialBox) -> str:
    return DeploymentRepository(conn).api_token(deployment_id, new_token, box)


def _oauth_secret(
    conn: Connection, deployment_id: str, client_id: str, new_secret: str, box: CredentialBox
) -> str:
    return DeploymentRepository(conn).oauth_secret(deployment_id, client_id, new_secret, box)


def oauth_client_id(deployment_id: str) -> str:
    return f"jhaas-hub-{deployment_id}"


def _nothing() -> None:
    pass


def worker_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class Verdict(enum.Enum):
    KEEP = "keep"
    LOST = "lost"  # the lease is another worker's now (or the row is gone)
    UNWANTED = "unwanted"  # the course was cancelled under a deploy


class ActionStopped(Exception):
    """A long action was stopped before it finished; it records nothing."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.value)
        self.verdict = verdict


@dataclass
class Scheduler:
    runtime: ServiceRuntime
    backend: HubBackend
    settings: DeployerSettings
    credentials: CredentialBox
    clock: Clock = utcnow
    owner: str = field(default_factory=worker_id)
    # Told when a hub was built (it holds nobody yet) and after each reconciliation
    # pass (a hub that came back): roster sync brings it in step.
    hub_built: Callable[[], None] = _nothing
    reconciled: Callable[[], Awaitable[None]] | None = None
    # Touched after every look at the schedule (at least every `max_sleep`): the
    # liveness probe restarts a deployer whose scheduler is wedged (jhaas_runtime.alive).
    heartbeat: Heartbeat = field(default_factory=lambda: Heartbeat.from_env("scheduler"))
    fired: list[Fired] = field(default_factory=list, init=False)
    ticks: int = field(default=0, init=False)  # how many times the schedule was read
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _due_now: bool = field(default=False, init=False)
    _hint: datetime | None = field(default=None, init=False)
    _running: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.runtime.db, self.backend, self.clock, self.notify)

    # -- waking ------------------------------------------------------------------

    def notify(self, at: datetime | None = None) -> None:
        """Something changed that is due at `at` (None: now). A time later than the
        next planned look costs nothing; an earlier one moves the look forward."""
        if at is None:
            self._due_now = True
        elif self._hint is None or at < self._hint:
            self._hint = at
        self._wake.set()

    async def run(self) -> None:
        """Read the schedule whenever something may be due; sleep otherwise."""
        next_at: datetime | None = None  # unknown: look now
        last_tick = float("-inf")
        try:
            while True:
                now = self.clock()
                hint, self._hint = self._hint, None
                if hint is not None and (next_at is None or hint < next_at):
                    next_at = hint
                # Another replica (or an operator) may have changed the schedule: read it
                # at least every `max_sleep` (a read only, unless something is due).
                stale = time.monotonic() - last_tick >= self.settings.max_sleep.total_seconds()
                if self._due_now or stale or next_at is None or next_at <= now:
                    # A burst of wake-ups is coalesced into one tick.
                    gap = last_tick + COALESCE_SECONDS - time.monotonic()
                    if gap > 0:
                        await asyncio.sleep(gap)
                    self._due_now = False
                    next_at = await self.tick()
                    last_tick = time.monotonic()
                    self.heartbeat.beat()
                delay = self.settings.max_sleep.total_seconds()
                until = None if next_at is None else (next_at - self.clock()).total_seconds()
                busy = len(self._running) >= self.settings.max_parallel_actions
                if until is not None and not (until <= 0 and busy):
                    delay = min(delay, max(until, COALESCE_SECONDS))
                # else: what is due waits for a slot; a finishing action wakes us
                # (`notify`), and `max_sleep` bounds the wait for other replicas' work.
                self._wake.clear()
                await wait_event(self._wake, delay)
        finally:
            await self._stop_actions()

    async def reconcile_forever(self) -> None:
        """Compare what should exist with what the backend has, at start and then every
        `reconcile_every` (a loop of its own: it never delays a trigger)."""
        while True:
            try:
                await self.reconciler.reconcile()
                if self.reconciled is not None:
                    await self.reconciled()
            except Exception:
                log.exception("reconciliation failed; will try again")
            await asyncio.sleep(self.settings.reconcile_every.total_seconds())

    # -- one look at the schedule ----------------------------------------------------

    async def tick(self) -> datetime | None:
        """Do the instant actions due now, start the long ones there are slots for;
        return when something is next due."""
        self.ticks += 1
        now = self.clock()
        next_at = await self.runtime.db.read(_next_due)
        if next_at is None or next_at > now:
            return next_at  # nothing due: no write transaction at all
        slots = self.settings.max_parallel_actions - len(self._running)
        claimed, fired, next_at = await self.runtime.write(
            self._claim_due, now, slots, frozenset(self._running)
        )
        self.fired.extend(fired)
        del self.fired[:-1000]
        for record, action in claimed:
            self._start(record, action)
        return next_at

    def _env(self, record: DeploymentRecord, now: datetime) -> Envelope:
        # One correlation id per deployment ties its whole life together.
        return envelope(source=SOURCE, correlation_id=f"deployment-{record.deployment_id}", now=now)

    def _claim_due(
        self, uow: UnitOfWork, now: datetime, slots: int, running: frozenset[str]
    ) -> tuple[list[tuple[DeploymentRecord, Action]], list[Fired], datetime | None]:
        """One unit of work: do the instant actions, lease as many long ones as
        there are free `slots` (the rest stay for later, or for another replica);
        return the long actions claimed, what fired, and when something is next due."""
        long_actions: list[tuple[DeploymentRecord, Action]] = []
        fired: list[Fired] = []
        repo = DeploymentRepository(uow.conn)
        for record in repo.due(now, lock=not self.runtime.db.is_sqlite):
            action = schedule.due_action(record, now)
            if action is None or record.deployment_id in running:
                continue
            if action in schedule.LONG_ACTIONS and len(long_actions) >= slots:
                continue
            fired.append((action, _planned(record, action), now))
            env = self._env(record, now)
            if action == Action.START_COURSE:
                new, started = schedule.start_course(record, now, env)
                uow.emit(started)
            elif action == Action.END_COURSE:
                new, ended = schedule.end_course(record, now, env)
                uow.emit(ended)
            elif action == Action.DEPLOY:
                new, deploying = schedule.begin_deploy(
                    record, now, self.owner, self.settings.lease, env
                )
                uow.emit(deploying)
                long_actions.append((new, action))
            else:
                new = schedule.claim(record, now, self.owner, self.settings.lease)
                long_actions.append((new, action))
            repo.save(new)
        return long_actions, fired, repo.next_due()

    # -- long actions ------------------------------------------------------------------

    def _start(self, record: DeploymentRecord, action: Action) -> None:
        task = asyncio.create_task(
            self._perform(record, action), name=f"{action.value}-{record.deployment_id}"
        )
        self._running[record.deployment_id] = task

        def finished(_: asyncio.Task[None]) -> None:
            self._running.pop(record.deployment_id, None)
            self.notify()  # a slot is free, and the outcome may make something due

        task.add_done_callback(finished)

    async def _perform(self, record: DeploymentRecord, action: Action) -> None:
        with correlation(f"deployment-{record.deployment_id}", action=action.value):
            try:
                if action == Action.DEPLOY:
                    await self._deploy(record)
                else:
                    await self._teardown(record)
            except ActionStopped as stopped:
                log.warning("scheduled action stopped", why=stopped.verdict.value)
                if stopped.verdict == Verdict.UNWANTED:
                    await self._release(record)  # the teardown it made due follows at once
            except Exception:
                # The lease expires and the action is claimed again.
                log.exception("scheduled action failed unexpectedly")

    async def _release(self, record: DeploymentRecord) -> None:
        await self.runtime.db.write(_release_leases, self.owner, [record.deployment_id])

    async def _stop_actions(self) -> None:
        """On shutdown: stop what runs and give its leases back, so the next start
        (or another replica) takes the actions over without waiting for expiry."""
        tasks = dict(self._running)
        if not tasks:
            return
        stuck = await cancel_and_wait(list(tasks.values()), 10.0)
        if stuck:
            log.error("actions did not stop when cancelled", tasks=stuck)
        try:
            async with asyncio.timeout(5.0):
                await self.runtime.db.write(_release_leases, self.owner, list(tasks))
        except Exception:
            log.warning("could not release leases on shutdown; they expire", exc_info=True)

    async def _renew(self, record: DeploymentRecord, action: Action) -> Verdict:
        until = self.clock() + self.settings.lease
        state = await self.runtime.db.write(_renew_lease, record.deployment_id, self.owner, until)
        if state is None:
            return Verdict.LOST
        if not schedule.still_wanted(state, action):
            return Verdict.UNWANTED
        return Verdict.KEEP

    async def _leased(self, record: DeploymentRecord, action: Action, work: Awaitable[T]) -> T:
        """Run `work` while renewing the lease every third of its length. Raise
        `ActionStopped` (with `work` cancelled) when the lease is lost, cannot be
        renewed before it runs out, or the course no longer wants the action."""
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        lease = self.settings.lease.total_seconds()
        every = lease / 3
        # When the lease runs out at the latest, counted from before each renewal is
        # asked for (the database may have written it any time after that).
        expires = time.monotonic() + lease
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=every)
                if done:
                    return task.result()
                asked = time.monotonic()
                try:
                    verdict = await self._renew(record, action)
                except Exception:
                    log.warning("could not renew the lease; will try again", exc_info=True)
                    # Stop now rather than run past the lease before the next try.
                    lost = time.monotonic() + every >= expires
                    verdict = Verdict.LOST if lost else Verdict.KEEP
                else:
                    if verdict == Verdict.KEEP:
                        expires = asked + lease
                if verdict != Verdict.KEEP:
                    raise ActionStopped(verdict)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})

    async def _hub_token(self, record: DeploymentRecord) -> str:
        return await self.runtime.db.write(
            _api_token, record.deployment_id, secrets.token_hex(32), self.credentials
        )

    async def _oauth(self, record: DeploymentRecord) -> OAuthClient:
        """The hub's OAuth client, registered at its first deploy and the same after."""
        client_id = oauth_client_id(record.deployment_id)
        secret = await self.runtime.db.write(
            _oauth_secret,
            record.deployment_id,
            client_id,
            secrets.token_urlsafe(32),
            self.credentials,
        )
        browser, internal = self.settings.gateway_url, self.settings.gateway_internal_url
        return OAuthClient(
            client_id=client_id,
            client_secret=secret,
            authorize_url=f"{browser}/oauth/authorize",
            token_url=f"{internal}/oauth/token",
            userdata_url=f"{internal}/oauth/userinfo",
        )

    async def _deploy(self, record: DeploymentRecord) -> None:
        outcome: tuple[str | None, BackendError | None]
        warnings: tuple[str, ...] = ()
        try:
            token = await self._hub_token(record)
            oauth = await self._oauth(record)
        except CredentialError as exc:
            # Retrying cannot help until an operator restores the key: fail, saying so.
            outcome = (None, BackendError(str(exc), temporary=False))
        else:
            hub = HubDeployment(
                deployment_id=record.deployment_id,
                request_id=record.request_id,
                slug=record.configuration.slug,
                configuration=record.configuration,
                api_token=token,
                oauth=oauth,
            )
            try:
                status = await self._leased(record, Action.DEPLOY, self.backend.deploy(hub))
                outcome, warnings = (status.url or "", None), status.warnings
            except BackendError as exc:
                outcome = (None, exc)
        await self.runtime.write(
            self._deployed,
            record.deployment_id,
            outcome,
            self.clock(),
            warnings,
            record.configuration,
        )
        if outcome[1] is None:
            self.hub_built()

    def _deployed(
        self,
        uow: UnitOfWork,
        deployment_id: str,
        outcome: tuple[str | None, BackendError | None],
        now: datetime,
        warnings: tuple[str, ...] = (),
        deployed: HubSpec | None = None,
    ) -> None:
        """Record a deploy's outcome: only while the lease is still ours, under a row lock."""
        repo = DeploymentRepository(uow.conn)
        current = repo.get(deployment_id, for_update=True)
        if current is None or current.lease_owner != self.owner:
            log.warning("lost the lease while deploying; the new owner decides")
            return
        url, error = outcome
        if error is None and url is not None:
            new, ready = schedule.deploy_succeeded(
                current, now, url, self._env(current, now), warnings, deployed
            )
            RosterRepository(uow.conn).hub_rebuilt(current.request_id)
            if ready is not None:
                uow.emit(ready)
                log.info("hub ready", url=url, warnings=list(warnings))
            else:
                log.info("hub built for a course cancelled meanwhile; tearing it down")
        else:
            assert error is not None
            new, failed = schedule.deploy_failed(
                current,
                now,
                error.reason,  # words for the leader; the details are logged below
                temporary=error.temporary,
                max_attempts=self.settings.deploy_attempts,
                backoff=self.settings.retry_backoff,
                env=self._env(current, now),
            )
            if failed is not None:
                uow.emit(failed)
            log.warning(
                "hub deploy failed",
                reason=str(error),
                attempts=current.attempts,
                final=failed is not None,
            )
        repo.save(new)

    async def _teardown(self, record: DeploymentRecord) -> None:
        try:
            deletion = await self._leased(
                record, Action.TEARDOWN, self.backend.teardown(record.deployment_id)
            )
        except BackendError as exc:
            log.warning("teardown failed; will retry", reason=str(exc))
            await self.runtime.db.write(self._teardown_failed, record.deployment_id, self.clock())
            return
        await self.runtime.write(self._torn_down, record.deployment_id, deletion, self.clock())

    def _teardown_failed(self, conn: Connection, deployment_id: str, now: datetime) -> None:
        repo = DeploymentRepository(conn)
        current = repo.get(deployment_id, for_update=True)
        if current is not None and current.lease_owner == self.owner:
            repo.save(schedule.teardown_failed(current, now, self.settings.retry_backoff))

    def _torn_down(
        self, uow: UnitOfWork, deployment_id: str, deletion: DeletionRecord, now: datetime
    ) -> None:
        """Record a finished teardown: once, and only while the lease is still ours."""
        repo = DeploymentRepository(uow.conn)
        current = repo.get(deployment_id, for_update=True)
        if current is None or current.lease_owner != self.owner:
            log.warning("lost the lease while tearing down; the new owner decides")
            return
        new, deleted = schedule.teardown_done(current, now, deletion, self._env(current, now))
        if deleted is None:
            return
        repo.save(new)
        repo.forget_credentials(deployment_id)
        RosterRepository(uow.conn).forget(current.request_id)
        uow.emit(deleted)
        log.info("hub deleted", objects=len(deletion.objects))


def lateness_summary(fired: list[Fired]) -> tuple[float, float]:
    """Median and worst delay in seconds between when actions were due and when they fired."""
    delays = sorted((actual - planned).total_seconds() for _, planned, actual in fired)
    if not delays:
        return 0.0, 0.0
    return delays[len(delays) // 2], delays[-1]
