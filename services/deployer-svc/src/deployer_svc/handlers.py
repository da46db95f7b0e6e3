"""Thin handlers: decode, load, call the domain, save with the outbox.

The event handlers run inside their consumer's batch transaction, in a
database thread: plain functions of a connection, nothing awaited.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection

from deployer_svc import domain, schedule
from deployer_svc.backends.base import oauth_callback_url
from deployer_svc.credentials import CredentialBox
from deployer_svc.domain import DeploymentRecord
from deployer_svc.store import DeploymentRepository
from jhaas_runtime.logs import correlation, get_logger
from jhaas_runtime.rpc import CallContext
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import Envelope, Event, envelope
from jhaas_schemas.errors import NotFound
from jhaas_schemas.events import (
    ChangeApproved,
    DeploymentScheduled,
    RequestApproved,
    RequestCancelled,
)
from jhaas_schemas.model import Principal
from jhaas_schemas.rpc import (
    Deployment,
    DeploymentList,
    DeploymentState,
    GetOAuthClient,
    ListDeployments,
    OAuthClient,
    RedeployHub,
)

SOURCE = "deployer-svc"
Clock = Callable[[], datetime]
Notify = Callable[[datetime | None], None]

log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class DueTimes:
    """When what a consumer's handlers changed falls due (None: now), kept until
    the batch is over and then told to the scheduler.

    A handler runs inside its batch's transaction: told from there, the
    scheduler could read the schedule before the commit, miss the change and
    sleep past it. After a batch that was rolled back, it looks once for nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # added to in a database thread, taken on the loop
        self._times: list[datetime | None] = []

    def add(self, at: datetime | None) -> None:
        with self._lock:
            self._times.append(at)

    def tell(self, notify: Notify) -> None:
        """Tell `notify` the earliest time added since the last call, if any."""
        with self._lock:
            times, self._times = self._times, []
        if times:
            notify(None if None in times else min(t for t in times if t is not None))


def _list(
    conn: Connection, leader_id: str | None, request_id: str | None
) -> list[DeploymentRecord]:
    return DeploymentRepository(conn).list_deployments(leader_id=leader_id, request_id=request_id)


def _redeploy(
    conn: Connection, request_id: str, principal: Principal, now: datetime
) -> DeploymentRecord:
    repo = DeploymentRepository(conn)
    record = repo.for_request(request_id, for_update=True)
    if record is None:
        raise NotFound(f"no deployment for request {request_id}")
    new = schedule.redeploy(record, principal, now)
    repo.save(new)
    return new


def _oauth_client(
    conn: Connection, client_id: str, box: CredentialBox
) -> tuple[DeploymentRecord, str] | None:
    return DeploymentRepository(conn).oauth_client(client_id, box)


# A hub signs nobody in before it has a URL, nor once its course is over.
_NO_SIGN_IN = (DeploymentState.DELETED, DeploymentState.CANCELLED)


class DeployerHandlers:
    def __init__(
        self,
        runtime: ServiceRuntime,
        *,
        lead_time: timedelta,
        grace: timedelta = timedelta(0),
        clock: Clock = utcnow,
        on_change: Notify = lambda _at: None,
        credentials: CredentialBox | None = None,
    ) -> None:
        self.runtime = runtime
        self.lead_time = lead_time
        self.grace = grace
        # Tells the scheduler when a change falls due (None: now); it would look
        # within a second anyway, this only makes it prompt.
        self.on_change = on_change
        self.clock = clock
        self.credentials = credentials

    async def list_deployments(self, ctx: CallContext, payload: ListDeployments) -> DeploymentList:
        leader_id = domain.visible_leader(ctx.principal)
        records = await self.runtime.db.read(_list, leader_id, payload.request_id)
        return DeploymentList(items=[r.view() for r in records])

    def on_requests_approved(
        self, conn: Connection, events: Sequence[Event], *, due: DueTimes
    ) -> list[Sequence[Event]]:
        """A batch of approvals, in order. The usual case, a request's first
        approval not overtaken by its cancellation, is stored for all of them
        with one statement; each of the others as `on_request_approved` does,
        after it, which decides the same as in order: they add nothing but
        what their own request's row or cancellation decides."""
        now = self.clock()
        planned = [self._scheduled(event, now) for event in events]
        repo = DeploymentRepository(conn)
        repo.lock_requests(record.request_id for record, _ in planned)
        stored = repo.add_all_unless_cancelled([r for r, _ in planned])
        emitted: list[Sequence[Event]] = []
        for event, (record, scheduled) in zip(events, planned, strict=True):
            if record.request_id in stored:
                stored.discard(record.request_id)  # a later one of the request is a second one
                due.add(schedule.next_due(record))
                emitted.append((scheduled,))
                continue
            with correlation(event.correlation_id, event_id=event.event_id):
                emitted.append(self.on_request_approved(conn, event, due=due))
        return emitted

    def _scheduled(
        self, event: Event, now: datetime
    ) -> tuple[DeploymentRecord, DeploymentScheduled]:
        assert isinstance(event, RequestApproved)
        return domain.schedule_deployment(
            event,
            deployment_id=str(uuid.uuid4()),
            lead_time=self.lead_time,
            grace=self.grace,
            now=now,
            env=self._caused_by(event, now),
        )

    def on_request_approved(
        self, conn: Connection, event: Event, *, due: DueTimes
    ) -> Sequence[Event]:
        assert isinstance(event, RequestApproved)
        now = self.clock()
        repo = DeploymentRepository(conn)
        repo.lock_requests([event.request_id])  # see lock_requests: a cancellation at once
        record, emitted = self._scheduled(event, now)
        # The usual case, a request's first approval not overtaken by its
        # cancellation, costs one statement; the others are told apart after.
        if repo.add_unless_cancelled(record):
            due.add(schedule.next_due(record))
            return (emitted,)
        if repo.for_request(event.request_id) is not None:
            log.info("request already has a deployment", request_id=event.request_id)
            return ()
        # Else the cancellation overtook the approval (they travel on different
        # streams): never build this hub; close the request at once.
        log.info("approval of an already cancelled request", request_id=event.request_id)
        record, deleted = schedule.cancel(record, now, self._caused_by(event, now))
        if not repo.add(record):
            log.info("deployment scheduled by another replica", request_id=event.request_id)
            return ()
        return (deleted,) if deleted is not None else ()

    def _caused_by(self, event: Event, now: datetime) -> Envelope:
        return envelope(
            source=SOURCE, correlation_id=event.correlation_id, causation_id=event.event_id, now=now
        )

    def on_change_approved(
        self, conn: Connection, event: Event, *, due: DueTimes
    ) -> Sequence[Event]:
        """The course runs with the changed configuration: stored, its end and teardown
        moved, and the hub converged to it (see schedule.change_configuration). The
        new schedule is announced again (DeploymentScheduled)."""
        assert isinstance(event, ChangeApproved)
        repo = DeploymentRepository(conn)
        record = repo.for_request(event.request_id, for_update=True)
        now = self.clock()
        new = (
            schedule.change_configuration(
                record, event.configuration, revision=event.revision, grace=self.grace, now=now
            )
            if record is not None
            else None
        )
        if new is None:
            log.info("change changes no deployment", request_id=event.request_id)
            return ()
        repo.save(new)
        assert record is not None
        if new.configuration == record.configuration:
            return ()  # a newer revision of the same configuration: nothing to do
        due.add(schedule.next_due(new))
        return (
            DeploymentScheduled(
                **self._caused_by(event, now),
                deployment_id=new.deployment_id,
                request_id=new.request_id,
                deploy_at=new.deploy_at,
                starts_at=new.starts_at,
                ends_at=new.ends_at,
            ),
        )

    def on_request_cancelled(
        self, conn: Connection, event: Event, *, due: DueTimes
    ) -> Sequence[Event]:
        """Unschedule a course that has no hub yet; tear down one that has (or may have)."""
        assert isinstance(event, RequestCancelled)
        repo = DeploymentRepository(conn)
        repo.lock_requests([event.request_id])  # see lock_requests: an approval at once
        record = repo.for_request(event.request_id, for_update=True)
        if record is None:
            # The approval has not reached us yet (or never will): remember, so
            # that it does not schedule a hub when it comes.
            repo.remember_cancellation(event.request_id, self.clock())
            return ()
        now = self.clock()
        new, deleted = schedule.cancel(record, now, self._caused_by(event, now))
        repo.save(new)
        due.add(None)
        return (deleted,) if deleted is not None else ()

    async def redeploy(self, ctx: CallContext, payload: RedeployHub) -> Deployment:
        new = await self.runtime.db.write(
            _redeploy, payload.request_id, ctx.principal, self.clock()
        )
        self.on_change(None)
        return new.view()

    async def oauth_client(self, ctx: CallContext, payload: GetOAuthClient) -> OAuthClient:
        """A hub's registration as an OAuth client, for the gateway (the only
        sender of RPC on the bus). The secret itself stays here: the gateway
        compares the SHA-256 of what a client presents."""
        assert self.credentials is not None, "built by app.build_app with the credential box"
        found = await self.runtime.db.read(_oauth_client, payload.client_id, self.credentials)
        if found is None:
            raise NotFound(f"no hub is the OAuth client {payload.client_id}")
        record, secret = found
        if record.hub_url is None or record.state in _NO_SIGN_IN:
            raise NotFound(f"the hub of OAuth client {payload.client_id} signs nobody in")
        return OAuthClient(
            client_id=payload.client_id,
            deployment_id=record.deployment_id,
            request_id=record.request_id,
            redirect_uri=oauth_callback_url(record.hub_url),
            secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
        )
