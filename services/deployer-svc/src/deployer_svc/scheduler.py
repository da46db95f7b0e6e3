"""The durable schedule's worker: finds what is due, claims it, does it.

Every decision is in the database, so a restart resumes where the last run
stopped: a trigger that fell due while the service was down is simply due
now. Several replicas may run this loop against one database: claiming
happens under row locks (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one
writer at a time), so each instant action happens once and each long action
has one owner at a time.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from deployer_svc import schedule
from deployer_svc.backends.base import BackendError, HubBackend, HubDeployment, HubPhase
from deployer_svc.credentials import CredentialBox, CredentialError
from deployer_svc.domain import DeploymentRecord
from deployer_svc.schedule import Action
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository
from jhaas_runtime.aio import wait_event
from jhaas_runtime.logs import correlation, get_logger
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import Envelope, envelope
from jhaas_schemas.rpc import DeploymentState as S

log = get_logger(__name__)

SOURCE = "deployer-svc"
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@dataclass
class Scheduler:
    runtime: ServiceRuntime
    backend: HubBackend
    settings: DeployerSettings
    credentials: CredentialBox
    clock: Clock = utcnow
    owner: str = field(default_factory=worker_id)
    fired: list[tuple[Action, datetime, datetime]] = field(default_factory=list, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def notify(self) -> None:
        """Look again now (a deployment was scheduled, cancelled or redeployed)."""
        self._wake.set()

    async def run(self) -> None:
        last_reconcile: datetime | None = None
        while True:
            now = self.clock()
            if last_reconcile is None or now - last_reconcile >= self.settings.reconcile_every:
                last_reconcile = now
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("reconciliation failed; will try again")
            next_at = await self.tick()
            delay = self.settings.max_sleep.total_seconds()
            if next_at is not None:
                delay = min(delay, max(0.0, (next_at - self.clock()).total_seconds()))
            await wait_event(self._wake, delay)
            self._wake.clear()

    async def tick(self) -> datetime | None:
        """Do everything due now; return when something is next due."""
        claimed = await self._claim_due()
        await asyncio.gather(*(self._perform(record, action) for record, action in claimed))
        async with self.runtime.db.reading() as session:
            return await DeploymentRepository(session).next_due()

    async def reconcile(self) -> tuple[list[str], list[str]]:
        """Compare what the database says should exist with what the backend has:
        rebuild missing hubs of running courses, remove hubs of no known course.
        Returns (rebuilt deployment ids, removed deployment ids)."""
        managed = set(await self.backend.list_managed())
        async with self.runtime.db.reading() as session:
            known = {
                r.deployment_id: r for r in await DeploymentRepository(session).list_deployments()
            }
        removed = []
        for deployment_id in sorted(managed):
            record = known.get(deployment_id)
            if record is None or record.state not in schedule.ACTIVE:
                log.warning("removing a hub of no active course", deployment_id=deployment_id)
                try:
                    await self.backend.teardown(deployment_id)
                except BackendError:
                    log.warning("could not remove it yet", exc_info=True)
                    continue
                removed.append(deployment_id)
        rebuilt = []
        for record in known.values():
            if record.state != S.RUNNING:
                continue
            status = await self.backend.status(record.deployment_id)
            if status.phase == HubPhase.READY:
                continue
            now = self.clock()
            async with self.runtime.db.transaction() as session:
                repo = DeploymentRepository(session)
                current = await repo.get(record.deployment_id, for_update=True)
                again = schedule.hub_missing(current, now) if current is not None else None
                if again is not None:
                    await repo.save(again)
                    rebuilt.append(record.deployment_id)
                    log.warning(
                        "hub of a running course is missing; rebuilding",
                        deployment_id=record.deployment_id,
                        phase=status.phase.value,
                    )
        if rebuilt:
            self.notify()
        return rebuilt, removed

    def _env(self, record: DeploymentRecord, now: datetime) -> Envelope:
        # One correlation id per deployment ties its whole life together.
        return envelope(source=SOURCE, correlation_id=f"deployment-{record.deployment_id}", now=now)

    async def _claim_due(self) -> list[tuple[DeploymentRecord, Action]]:
        """In one transaction: do the instant actions, lease the long ones."""
        long_actions: list[tuple[DeploymentRecord, Action]] = []
        now = self.clock()
        async with self.runtime.unit_of_work() as uow:
            repo = DeploymentRepository(uow.session)
            for record in await repo.due(now, lock=not self.runtime.db.is_sqlite):
                action = schedule.due_action(record, now)
                if action is None:
                    continue
                self._record_lateness(record, action, now)
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
                await repo.save(new)
        return long_actions

    def _record_lateness(self, record: DeploymentRecord, action: Action, now: datetime) -> None:
        planned = {
            Action.DEPLOY: record.next_attempt_at or record.deploy_at,
            Action.START_COURSE: record.starts_at,
            Action.END_COURSE: record.ends_at,
            Action.TEARDOWN: record.teardown_at,
        }[action]
        self.fired.append((action, planned, now))
        del self.fired[:-1000]

    async def _perform(self, record: DeploymentRecord, action: Action) -> None:
        with correlation(f"deployment-{record.deployment_id}", action=action.value):
            try:
                if action == Action.DEPLOY:
                    await self._deploy(record)
                else:
                    await self._teardown(record)
            except Exception:
                # The lease expires and the action is claimed again.
                log.exception("scheduled action failed unexpectedly")

    async def _deploy(self, record: DeploymentRecord) -> None:
        outcome: tuple[str | None, BackendError | None]
        try:
            async with self.runtime.db.transaction() as session:
                token = await DeploymentRepository(session).api_token(
                    record.deployment_id, secrets.token_hex(32), self.credentials
                )
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
            )
            try:
                status = await self.backend.deploy(hub)
                outcome = (status.url or "", None)
            except BackendError as exc:
                outcome = (None, exc)
        now = self.clock()
        async with self.runtime.unit_of_work() as uow:
            repo = DeploymentRepository(uow.session)
            current = await repo.get(record.deployment_id, for_update=True)
            if current is None or current.lease_owner != self.owner:
                log.warning("lost the lease while deploying; the new owner decides")
                return
            url, error = outcome
            if error is None and url is not None:
                new, ready = schedule.deploy_succeeded(current, now, url, self._env(current, now))
                uow.emit(ready)
                log.info("hub ready", url=url)
            else:
                assert error is not None
                new, failed = schedule.deploy_failed(
                    current,
                    now,
                    str(error),
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
            await repo.save(new)
        self.notify()

    async def _teardown(self, record: DeploymentRecord) -> None:
        try:
            deletion = await self.backend.teardown(record.deployment_id)
        except BackendError as exc:
            log.warning("teardown failed; will retry", reason=str(exc))
            async with self.runtime.db.transaction() as session:
                repo = DeploymentRepository(session)
                current = await repo.get(record.deployment_id, for_update=True)
                if current is not None and current.lease_owner == self.owner:
                    await repo.save(
                        schedule.teardown_failed(current, self.clock(), self.settings.retry_backoff)
                    )
            return
        now = self.clock()
        async with self.runtime.unit_of_work() as uow:
            repo = DeploymentRepository(uow.session)
            current = await repo.get(record.deployment_id, for_update=True)
            if current is None:
                return
            new, deleted = schedule.teardown_done(current, now, deletion, self._env(current, now))
            await repo.save(new)
            await repo.forget_credentials(record.deployment_id)
            uow.emit(deleted)
        log.info("hub deleted", objects=len(deletion.objects))


def lateness_summary(fired: list[tuple[Action, datetime, datetime]]) -> tuple[float, float]:
    """Median and worst delay in seconds between when actions were due and when they fired."""
    delays = sorted((actual - planned).total_seconds() for _, planned, actual in fired)
    if not delays:
        return 0.0, 0.0
    return delays[len(delays) // 2], delays[-1]
