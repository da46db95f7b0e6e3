"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec
from sqlalchemy.engine import Connection

from governance_svc import audit, domain
from governance_svc.checks import ensure_within_policy, review_checks
from governance_svc.published import policy_view
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
    AuditAction,
    Decision,
    GetPolicy,
    GetReview,
    GovernanceAuditPage,
    ListAudit,
    ListReviews,
    PolicyView,
    RejectRequest,
    RequestChanges,
    Review,
    ReviewList,
    ReviewState,
)

SOURCE = "governance-svc"
Clock = Callable[[], datetime]
Decide = Callable[
    [domain.ReviewRecord, datetime, Envelope], tuple[domain.ReviewRecord, Decision, Event]
]

log = get_logger(__name__)

# The audit trail's name for each reviewer's decision.
DECISION_ACTIONS = {
    ReviewState.APPROVED: AuditAction.APPROVED,
    ReviewState.REJECTED: AuditAction.REJECTED,
    ReviewState.CHANGES_REQUESTED: AuditAction.CHANGES_REQUESTED,
}


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

    def _view(self, record: domain.ReviewRecord) -> Review:
        """The review with the automatic checks against the policy in force now."""
        checks = review_checks(record.spec, self.policy(), self.clock())
        return msgspec.structs.replace(record.view(), checks=checks)

    async def list_reviews(self, ctx: CallContext, payload: ListReviews) -> ReviewList:
        domain.ensure_can_list(ctx.principal)
        records = await self.runtime.db.read(
            lambda conn: ReviewRepository(conn).list_reviews(state=payload.state)
        )
        return ReviewList(items=[self._view(r) for r in records])

    async def get_review(self, ctx: CallContext, payload: GetReview) -> Review:
        record = await self.runtime.db.read(
            lambda conn: ReviewRepository(conn).get(payload.request_id)
        )
        return self._view(domain.ensure_visible(record, ctx.principal, payload.request_id))

    async def get_policy(self, ctx: CallContext, _payload: GetPolicy) -> PolicyView:
        return policy_view(self.policy(), ctx.principal)

    async def list_audit(self, ctx: CallContext, payload: ListAudit) -> GovernanceAuditPage:
        domain.ensure_can_read_audit(ctx.principal)
        audit.check_filters(payload)
        return await self.runtime.db.read(lambda conn: audit.list_entries(conn, payload))

    async def approve(self, ctx: CallContext, payload: ApproveRequest) -> Review:
        def approve(
            record: domain.ReviewRecord, now: datetime, env: Envelope
        ) -> tuple[domain.ReviewRecord, Decision, Event]:
            decided = domain.approve(
                record,
                principal=ctx.principal,
                comment=payload.comment,
                revision=payload.revision,
                now=now,
                env=env,
            )
            # After the reviewer's own checks (who, which revision): the policy may
            # have been tightened since the request was submitted.
            ensure_within_policy(record.spec, self.policy(), now)
            return decided

        return await self._decide(ctx, payload.request_id, approve)

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
            # The audit entry keeps the checks as the reviewer saw them when deciding.
            audit.record(
                uow.conn,
                at=now,
                actor=decision.decided_by,
                action=DECISION_ACTIONS[decision.state],
                request_id=new.request_id,
                revision=decision.revision,
                comment=decision.comment,
                checks=review_checks(record.spec, self.policy(), now),
            )
            uow.emit(event)
            return new

        return self._view(await self.runtime.write(apply))

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
