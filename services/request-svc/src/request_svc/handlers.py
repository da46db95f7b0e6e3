"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from jhaas_runtime.rpc import CallContext
from jhaas_runtime.service import ServiceRuntime, UnitOfWork
from jhaas_schemas.envelope import Envelope, Event, envelope
from jhaas_schemas.errors import Forbidden
from jhaas_schemas.events import (
    ChangesRequested,
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    RequestRejected,
)
from jhaas_schemas.model import Role
from jhaas_schemas.policy import PolicySource, fixed
from jhaas_schemas.rpc import (
    CancelRequest,
    GetRequest,
    HubRequest,
    HubRequestList,
    ListRequests,
    SubmitRequest,
    UpdateRequest,
    UserRef,
    WithdrawRequest,
)
from request_svc import domain
from request_svc.store import HubRequestRepository

SOURCE = "request-svc"
Clock = Callable[[], datetime]
Change = Callable[
    [domain.HubRequestState, datetime, Envelope], tuple[domain.HubRequestState, Event | None]
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class RequestHandlers:
    def __init__(
        self, runtime: ServiceRuntime, clock: Clock = utcnow, policy: PolicySource | None = None
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        # The policy in force, read at each use (it may be reloaded meanwhile).
        self.policy = policy or fixed()

    def _env(self, ctx: CallContext, now: datetime) -> Envelope:
        return envelope(source=SOURCE, correlation_id=ctx.correlation_id, now=now)

    async def submit(self, ctx: CallContext, payload: SubmitRequest) -> HubRequest:
        now = self.clock()
        state, event = domain.submit_request(
            principal=ctx.principal,
            spec=payload.spec,
            request_id=str(uuid.uuid4()),
            now=now,
            env=self._env(ctx, now),
        )

        def add(uow: UnitOfWork) -> None:
            HubRequestRepository(uow.conn).add(state)
            uow.emit(event)

        await self.runtime.write(add)
        return state.view()

    async def get(self, ctx: CallContext, payload: GetRequest) -> HubRequest:
        state = await self.runtime.db.lookup(_get, payload.request_id)
        return domain.ensure_visible(state, ctx.principal, payload.request_id).view()

    async def list(self, ctx: CallContext, payload: ListRequests) -> HubRequestList:
        leader_id: str | None = ctx.principal.user_id
        if payload.scope == "all":
            if not ctx.principal.has(Role.GOVERNANCE, Role.ADMIN):
                raise Forbidden("only governance and admins can list every request")
            leader_id = None
        states = await self.runtime.db.read(
            lambda conn: HubRequestRepository(conn).list(leader_id=leader_id, status=payload.status)
        )
        return HubRequestList(items=[s.view() for s in states])

    async def leading(self, ctx: CallContext, payload: UserRef) -> HubRequestList:
        domain.ensure_self_or_admin(ctx.principal, payload.user_id)
        states = await self.runtime.db.read(
            lambda conn: HubRequestRepository(conn).list(
                leader_id=payload.user_id, statuses=domain.NOT_OVER
            )
        )
        return HubRequestList(items=[s.view() for s in states])

    async def update(self, ctx: CallContext, payload: UpdateRequest) -> HubRequest:
        return await self._change(
            ctx,
            payload.request_id,
            lambda state, now, env: domain.update_request(
                state,
                principal=ctx.principal,
                changes=payload.changes,
                expected_revision=payload.expected_revision,
                now=now,
                env=env,
            ),
        )

    async def withdraw(self, ctx: CallContext, payload: WithdrawRequest) -> HubRequest:
        return await self._change(
            ctx,
            payload.request_id,
            lambda state, now, env: domain.withdraw_request(
                state, principal=ctx.principal, now=now, env=env
            ),
        )

    async def cancel(self, ctx: CallContext, payload: CancelRequest) -> HubRequest:
        return await self._change(
            ctx,
            payload.request_id,
            lambda state, now, env: domain.cancel_request(
                state, principal=ctx.principal, reason=payload.reason, now=now, env=env
            ),
        )

    async def _change(self, ctx: CallContext, request_id: str, change: Change) -> HubRequest:
        """Load the request under a lock, apply the domain change, save it and
        emit its event in one transaction (nothing when the change is a no-op)."""
        now = self.clock()

        def apply(uow: UnitOfWork) -> domain.HubRequestState:
            repo = HubRequestRepository(uow.conn)
            state = domain.ensure_visible(
                repo.get(request_id, for_update=True), ctx.principal, request_id
            )
            new, event = change(state, now, self._env(ctx, now))
            if event is not None:
                repo.save(new)
                uow.emit(event)
            return new

        return (await self.runtime.write(apply)).view()

    def on_review_decision(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestApproved | RequestRejected | ChangesRequested)
        repo = HubRequestRepository(conn)
        state = repo.get(event.request_id, for_update=True)
        if state is None:
            return ()
        new = domain.on_review_decision(state, event, self.clock())
        if new is not None:
            repo.save(new)
        return ()

    def on_deployment_event(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, HubDeploying | HubReady | HubFailed | CourseEnded | HubDeleted)
        repo = HubRequestRepository(conn)
        state = repo.get(event.request_id, for_update=True)
        if state is None:
            return ()
        new = domain.on_deployment_event(state, event, self.clock())
        if new is not None:
            repo.save(new)
        return ()


def _get(conn: Connection, request_id: str) -> domain.HubRequestState | None:
    return HubRequestRepository(conn).get(request_id)
