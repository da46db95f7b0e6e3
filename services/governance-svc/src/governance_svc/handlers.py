"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from governance_svc import domain
from governance_svc.store import ReviewRepository
from jhaas_runtime.logs import get_logger
from jhaas_runtime.rpc import CallContext
from jhaas_runtime.service import ServiceRuntime, UnitOfWork
from jhaas_schemas.envelope import Envelope, Event, envelope
from jhaas_schemas.events import (
    RequestCancelled,
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
)
from jhaas_schemas.policy import PolicySource, fixed
from jhaas_schemas.rpc import (
    ApproveRequest,
    Decision,
    GetReview,
    ListReviews,
    RejectRequest,
    RequestChanges,
    Review,
    ReviewList,
)

SOURCE = "governance-svc"
Clock = Callable[[], datetime]
Decide = Callable[
    [domain.ReviewRecord, datetime, Envelope], tuple[domain.ReviewRecord, Decision, Event]
]

log = get_logger(__name__)


class SubmissionNotSeenYet(RuntimeError):
    """A withdrawal or cancellation overtook its submission (the submission's
    handling failed once and is being redelivered). Failing here makes the kit
    redeliver this event too, after the submission, instead of losing it."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"no review for request {request_id} yet; retrying after its submission")


def utcnow() -> datetime:
    return datetime.now(UTC)


class GovernanceHandlers:
    def __init__(
        self, runtime: ServiceRuntime, clock: Clock = utcnow, policy: PolicySource | None = None
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        # The policy in force, read at each use (it may be reloaded meanwhile).
        self.policy = policy or fixed()

    def _env(self, ctx: CallContext, now: datetime) -> Envelope:
        # An RPC call starts a chain of events: nothing caused it but the caller.
        return envelope(source=SOURCE, correlation_id=ctx.correlation_id, now=now)

    # --- RPC ------------------------------------------------------------------

    async def list_reviews(self, ctx: CallContext, payload: ListReviews) -> ReviewList:
        domain.ensure_can_list(ctx.principal)
        records = await self.runtime.db.read(
            lambda conn: ReviewRepository(conn).list_reviews(state=payload.state)
        )
        return ReviewList(items=[r.view() for r in records])

    async def get_review(self, ctx: CallContext, payload: GetReview) -> Review:
        record = await self.runtime.db.read(
            lambda conn: ReviewRepository(conn).get(payload.request_id)
        )
        return domain.ensure_visible(record, ctx.principal, payload.request_id).view()

    async def approve(self, ctx: CallContext, payload: ApproveRequest) -> Review:
        return await self._decide(
            ctx,
            payload.request_id,
            lambda record, now, env: domain.approve(
                record,
                principal=ctx.principal,
                comment=payload.comment,
                revision=payload.revision,
                now=now,
                env=env,
            ),
        )

    async def reject(self, ctx: CallContext, payload: RejectRequest) -> Review:
        return await self._decide(
            ctx,
            payload.request_id,
            lambda record, now, env: domain.reject(
                record,
                principal=ctx.principal,
                reason=payload.reason,
                revision=payload.revision,
                now=now,
                env=env,
            ),
        )

    async def request_changes(self, ctx: CallContext, payload: RequestChanges) -> Review:
        return await self._decide(
            ctx,
            payload.request_id,
            lambda record, now, env: domain.request_changes(
                record,
                principal=ctx.principal,
                comment=payload.comment,
                revision=payload.revision,
                now=now,
                env=env,
            ),
        )

    async def _decide(self, ctx: CallContext, request_id: str, decide: Decide) -> Review:
        """Load the review under a lock, decide, keep the decision's audit row and
        emit its event, all in one transaction."""
        now = self.clock()

        def apply(uow: UnitOfWork) -> domain.ReviewRecord:
            repo = ReviewRepository(uow.conn)
            record = self._for_decision(repo, ctx, request_id)
            new, decision, event = decide(record, now, self._env(ctx, now))
            repo.save(new)
            repo.record_decision(new.review_id, decision)
            uow.emit(event)
            return new

        return (await self.runtime.write(apply)).view()

    def _for_decision(
        self, repo: ReviewRepository, ctx: CallContext, request_id: str
    ) -> domain.ReviewRecord:
        record = repo.get(request_id, for_update=True)
        return domain.ensure_visible(record, ctx.principal, request_id)

    # --- request events -------------------------------------------------------

    def on_request_submitted(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestSubmitted)
        repo = ReviewRepository(conn)
        existing = repo.get(event.request_id, for_update=True)
        new = domain.on_request_submitted(
            existing, event, review_id=str(uuid.uuid4()), now=self.clock()
        )
        if new is not None and not repo.add(new):
            log.info("review already opened by another replica", request_id=event.request_id)
        return ()

    def on_request_updated(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestUpdated)
        repo = ReviewRepository(conn)
        existing = repo.get(event.request_id, for_update=True)
        new = domain.on_request_updated(
            existing, event, review_id=str(uuid.uuid4()), now=self.clock()
        )
        if new is None:
            log.info("request update no longer applies", request_id=event.request_id)
        elif existing is None:
            repo.add(new)
        else:
            repo.save(new)
        return ()

    def on_request_withdrawn(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestWithdrawn)
        repo = ReviewRepository(conn)
        existing = repo.get(event.request_id, for_update=True)
        if existing is None:
            raise SubmissionNotSeenYet(event.request_id)
        new = domain.on_request_withdrawn(existing, event, now=self.clock())
        if new is not None:
            repo.save(new)
        return ()

    def on_request_cancelled(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestCancelled)
        repo = ReviewRepository(conn)
        existing = repo.get(event.request_id, for_update=True)
        if existing is None:
            raise SubmissionNotSeenYet(event.request_id)
        new = domain.on_request_cancelled(existing, event, now=self.clock())
        if new is not None:
            repo.save(new)
        return ()
