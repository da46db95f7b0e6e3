"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy.engine import Connection

from governance_svc import audit, domain
from governance_svc.calendar import (
    CalendarSettings,
    capacity_amounts,
    check_fit,
    conflict_fields,
    refuses,
    reservation_for,
    steps_over,
)
from governance_svc.changes import ChangeRecord, ChangeRepository, ensure_decidable, require_reason
from governance_svc.checks import ensure_within_policy, review_checks
from governance_svc.envelope import outside_auto_approval, raises
from governance_svc.published import policy_view
from governance_svc.reservations import ReservationRepository
from governance_svc.store import ReviewRepository
from jhaas_runtime.logs import get_logger
from jhaas_runtime.rpc import CallContext
from jhaas_runtime.service import ServiceRuntime, UnitOfWork
from jhaas_schemas.envelope import Envelope, Event, envelope
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput
from jhaas_schemas.events import (
    ChangeApproved,
    ChangeProposed,
    ChangeRejected,
    HubDeleted,
    RequestCancelled,
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
)
from jhaas_schemas.model import HubSpec, Principal, Role
from jhaas_schemas.policy import PolicySource, PublishedPolicy, fixed
from jhaas_schemas.rpc import (
    CALENDAR_MAX_DAYS,
    ApproveRequest,
    AuditAction,
    CalendarCheck,
    CalendarView,
    ChangeReview,
    ChangeState,
    DecideChange,
    Decision,
    GetCalendar,
    GetPolicy,
    GetReview,
    GovernanceAuditPage,
    ListAudit,
    ListReviews,
    PolicyView,
    RejectRequest,
    RequestChanges,
    ReservationView,
    Review,
    ReviewChecks,
    ReviewList,
    ReviewState,
)

SOURCE = "governance-svc"
# The decider of what the system approves by itself.
SYSTEM = Principal(user_id="system", username="system", roles=(Role.GOVERNANCE,))
AUTO_COMMENT = "approved by the system: inside the auto-approval envelope and fits the calendar"
CHANGE_AUTO_COMMENT = "applied by the system: inside the approved envelope and fits the calendar"
# The review states whose changes are listed beside them.
_CHANGE_STATES = {
    ReviewState.PENDING: ChangeState.PENDING,
    ReviewState.APPROVED: ChangeState.APPROVED,
    ReviewState.REJECTED: ChangeState.REJECTED,
}
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
        self,
        runtime: ServiceRuntime,
        clock: Clock = utcnow,
        policy: PolicySource | None = None,
        calendar: CalendarSettings | None = None,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        # The policy in force, read at each use (it may be reloaded meanwhile).
        self.policy = policy or fixed()
        self.windows = calendar or CalendarSettings()

    def _env(self, ctx: CallContext, now: datetime) -> Envelope:
        # An RPC call starts a chain of events: nothing caused it but the caller.
        return envelope(source=SOURCE, correlation_id=ctx.correlation_id, now=now)

    # --- the calendar -----------------------------------------------------------

    def _calendar_check(
        self,
        conn: Connection,
        request_id: str,
        leader_id: str,
        spec: HubSpec,
        policy: PublishedPolicy,
    ) -> tuple[CalendarCheck, ReservationView]:
        """Whether `spec` fits the calendar beside every other approved course
        (the course's own reservation, if any, left out: a change replaces it)."""
        new = reservation_for(request_id, leader_id, spec, self.windows)
        overlapping = ReservationRepository(conn).overlapping(
            new.window_start, new.window_end, besides=request_id
        )
        return check_fit(new, overlapping, policy.policy.capacity), new

    def _reserve(
        self,
        conn: Connection,
        request_id: str,
        leader_id: str,
        spec: HubSpec,
        policy: PublishedPolicy,
        now: datetime,
    ) -> CalendarCheck:
        """Under the calendar's lock: check, refuse (409) when an enforced calendar
        is overbooked, else hold the course's reservation; in the caller's transaction."""
        ReservationRepository(conn).lock()
        check, reservation = self._calendar_check(conn, request_id, leader_id, spec, policy)
        if refuses(check):
            raise Conflict(check.message, conflict_fields(check))
        ReservationRepository(conn).hold(reservation, now)
        return check

    @staticmethod
    def _with_calendar(checks: ReviewChecks, calendar: CalendarCheck) -> ReviewChecks:
        return msgspec.structs.replace(
            checks, calendar=calendar, passed=checks.passed and not refuses(calendar)
        )

    def _checks(
        self, conn: Connection, request_id: str, leader_id: str, spec: HubSpec
    ) -> ReviewChecks:
        """The automatic checks against the policy in force now, the calendar included."""
        policy = self.policy()
        checks = review_checks(spec, policy, self.clock())
        calendar, _ = self._calendar_check(conn, request_id, leader_id, spec, policy)
        return self._with_calendar(checks, calendar)

    # --- RPC ------------------------------------------------------------------

    def _review_view(
        self, conn: Connection, record: domain.ReviewRecord, changes: list[ChangeRecord]
    ) -> Review:
        """The review with its checks, and its course's changes with theirs."""
        checks = self._checks(conn, record.request_id, record.leader_id, record.spec)
        return msgspec.structs.replace(
            record.view(), checks=checks, changes=[self._change_view(conn, c) for c in changes]
        )

    def _change_view(self, conn: Connection, change: ChangeRecord) -> ChangeReview:
        if change.state != ChangeState.PENDING:
            return change.view()
        return change.view(self._checks(conn, change.request_id, change.leader_id, change.proposed))

    async def list_reviews(self, ctx: CallContext, payload: ListReviews) -> ReviewList:
        domain.ensure_can_list(ctx.principal)

        def read(conn: Connection) -> ReviewList:
            records = ReviewRepository(conn).list_reviews(state=payload.state)
            change_state = _CHANGE_STATES.get(payload.state) if payload.state else None
            changes = (
                ChangeRepository(conn).list(state=change_state)
                if change_state is not None or payload.state is None
                else []
            )
            return ReviewList(
                items=[self._review_view(conn, r, []) for r in records],
                changes=[self._change_view(conn, c) for c in changes],
            )

        return await self.runtime.db.read(read)

    async def get_review(self, ctx: CallContext, payload: GetReview) -> Review:
        def read(conn: Connection) -> Review:
            record = domain.ensure_visible(
                ReviewRepository(conn).get(payload.request_id), ctx.principal, payload.request_id
            )
            changes = ChangeRepository(conn).list(request_id=record.request_id)
            return self._review_view(conn, record, changes)

        return await self.runtime.db.read(read)

    async def get_policy(self, ctx: CallContext, _payload: GetPolicy) -> PolicyView:
        return policy_view(self.policy(), ctx.principal)

    async def calendar(self, ctx: CallContext, payload: GetCalendar) -> CalendarView:
        domain.ensure_can_list(ctx.principal)
        start, end = payload.start, payload.end
        for name, value in (("from", start), ("to", end)):
            if value.tzinfo is None:
                raise InvalidInput(
                    f"{name} needs a time zone (for example 2026-01-31T00:00:00Z)",
                    {name: "must include a time zone"},
                )
        if end <= start:
            raise InvalidInput("to must be later than from", {"to": "must be after from"})
        if end - start > timedelta(days=CALENDAR_MAX_DAYS):
            raise InvalidInput(
                f"the period is longer than {CALENDAR_MAX_DAYS} days",
                {"to": f"at most {CALENDAR_MAX_DAYS} days after from"},
            )
        capacity = self.policy().policy.capacity
        held = await self.runtime.db.read(
            lambda conn: ReservationRepository(conn).overlapping(start, end)
        )
        return CalendarView(
            start=start,
            end=end,
            capacity=capacity_amounts(capacity),
            enforced=capacity.enforced,
            reservations=held,
            steps=steps_over(held, capacity, start, end),
        )

    async def list_audit(self, ctx: CallContext, payload: ListAudit) -> GovernanceAuditPage:
        domain.ensure_can_read_audit(ctx.principal)
        audit.check_filters(payload)
        return await self.runtime.db.read(lambda conn: audit.list_entries(conn, payload))

    async def approve(self, ctx: CallContext, payload: ApproveRequest) -> Review:
        now = self.clock()

        def apply(uow: UnitOfWork) -> Review:
            repo = ReviewRepository(uow.conn)
            record = self._for_decision(repo, ctx, payload.request_id)
            new, decision, event = domain.approve(
                record,
                principal=ctx.principal,
                comment=payload.comment,
                revision=payload.revision,
                now=now,
                env=self._env(ctx, now),
            )
            # After the reviewer's own checks (who, which revision): the policy may
            # have been tightened since the request was submitted.
            policy = self.policy()
            ensure_within_policy(record.spec, policy, now)
            # Then the calendar, under its lock until this transaction ends.
            calendar = self._reserve(
                uow.conn, record.request_id, record.leader_id, record.spec, policy, now
            )
            repo.save(new)
            repo.record_decision(new.review_id, decision)
            audit.record(
                uow.conn,
                at=now,
                actor=decision.decided_by,
                action=AuditAction.APPROVED,
                request_id=new.request_id,
                revision=decision.revision,
                comment=decision.comment,
                checks=self._with_calendar(review_checks(record.spec, policy, now), calendar),
            )
            uow.emit(event)
            return self._review_view(uow.conn, new, [])

        return await self.runtime.write(apply)

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

        def apply(uow: UnitOfWork) -> Review:
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
            return self._review_view(uow.conn, new, [])

        return await self.runtime.write(apply)

    def _for_decision(
        self, repo: ReviewRepository, ctx: CallContext, request_id: str
    ) -> domain.ReviewRecord:
        record = repo.get(request_id, for_update=True)
        return domain.ensure_visible(record, ctx.principal, request_id)

    # --- changes of approved courses: a reviewer's decision ----------------------

    async def approve_change(self, ctx: CallContext, payload: DecideChange) -> ChangeReview:
        now = self.clock()

        def apply(uow: UnitOfWork) -> ChangeReview:
            review, change = self._change_for_decision(uow.conn, ctx, payload)
            policy = self.policy()
            ensure_within_policy(change.proposed, policy, now)
            calendar = self._reserve(
                uow.conn, review.request_id, review.leader_id, change.proposed, policy, now
            )
            decided = change.decided(
                ChangeState.APPROVED, ctx.principal.user_id, now, payload.comment
            )
            event = self._apply_change(uow.conn, review, decided, self._env(ctx, now), now)
            self._audit_change(
                uow.conn,
                decided,
                AuditAction.CHANGE_APPROVED,
                self._with_calendar(review_checks(change.proposed, policy, now), calendar),
            )
            uow.emit(event)
            return decided.view()

        return await self.runtime.write(apply)

    async def reject_change(self, ctx: CallContext, payload: DecideChange) -> ChangeReview:
        now = self.clock()

        def apply(uow: UnitOfWork) -> ChangeReview:
            review, change = self._change_for_decision(uow.conn, ctx, payload)
            require_reason(payload.comment)
            decided = change.decided(
                ChangeState.REJECTED, ctx.principal.user_id, now, payload.comment
            )
            ChangeRepository(uow.conn).save(decided)
            checks = self._checks(uow.conn, review.request_id, review.leader_id, change.proposed)
            self._audit_change(uow.conn, decided, AuditAction.CHANGE_REJECTED, checks)
            uow.emit(
                ChangeRejected(
                    **self._env(ctx, now),
                    request_id=review.request_id,
                    change_id=decided.change_id,
                    decided_by=ctx.principal.user_id,
                    revision=decided.revision,
                    reason=payload.comment,
                )
            )
            return decided.view()

        return await self.runtime.write(apply)

    def _change_for_decision(
        self, conn: Connection, ctx: CallContext, payload: DecideChange
    ) -> tuple[domain.ReviewRecord, ChangeRecord]:
        # The review's row first, then the change's: the order every decision takes.
        review = domain.ensure_visible(
            ReviewRepository(conn).get(payload.request_id, for_update=True),
            ctx.principal,
            payload.request_id,
        )
        if not ctx.principal.has(*domain.DECIDERS):
            raise Forbidden("only governance and admins decide on changes of courses")
        change = ChangeRepository(conn).get(payload.change_id, for_update=True)
        return review, ensure_decidable(review, change, ctx.principal, payload.change_id)

    def _apply_change(
        self,
        conn: Connection,
        review: domain.ReviewRecord,
        decided: ChangeRecord,
        env: Envelope,
        now: datetime,
    ) -> ChangeApproved:
        """The course now runs with the change (its reservation was replaced by
        `_reserve`): the review shows the configuration in force."""
        ChangeRepository(conn).save(decided)
        ReviewRepository(conn).save(
            replace(review, spec=decided.proposed, revision=decided.revision, updated_at=now)
        )
        return ChangeApproved(
            **env,
            request_id=review.request_id,
            change_id=decided.change_id,
            decided_by=decided.decided_by or SYSTEM.user_id,
            revision=decided.revision,
            configuration=decided.proposed,
            comment=decided.reason,
        )

    # --- request events -------------------------------------------------------

    def _caused_by(self, event: Event, now: datetime) -> Envelope:
        return envelope(
            source=SOURCE, correlation_id=event.correlation_id, causation_id=event.event_id, now=now
        )

    def _auto_approve(
        self, conn: Connection, review: domain.ReviewRecord, cause: Event
    ) -> Sequence[Event]:
        """Approve a pending review at once as the system when it passes every rule,
        lies inside the auto-approval envelope and fits the calendar; else leave it
        to a reviewer."""
        policy = self.policy()
        now = self.clock()
        outside = outside_auto_approval(review.spec, policy.policy)
        checks = review_checks(review.spec, policy, now)
        if outside or not checks.passed:
            log.info(
                "left for a reviewer",
                request_id=review.request_id,
                outside=outside,
                broken=[r.rule for r in checks.rules if not r.passed],
            )
            return ()
        ReservationRepository(conn).lock()
        calendar, reservation = self._calendar_check(
            conn, review.request_id, review.leader_id, review.spec, policy
        )
        if refuses(calendar):
            log.info("left for a reviewer: calendar full", request_id=review.request_id)
            return ()
        new, decision, approved = domain.approve(
            review,
            principal=SYSTEM,
            comment=AUTO_COMMENT,
            revision=review.revision,
            now=now,
            env=self._caused_by(cause, now),
        )
        repo = ReviewRepository(conn)
        repo.save(new)
        repo.record_decision(new.review_id, decision)
        ReservationRepository(conn).hold(reservation, now)
        self._audit_auto(conn, new, self._with_calendar(checks, calendar), now)
        return (approved,)

    @staticmethod
    def _audit_auto(
        conn: Connection, review: domain.ReviewRecord, checks: ReviewChecks, now: datetime
    ) -> None:
        """The audit entry of an automatic approval, with the checks the system made."""
        audit.record(
            conn,
            at=now,
            actor=SYSTEM.user_id,
            action=AuditAction.AUTO_APPROVED,
            request_id=review.request_id,
            revision=review.revision,
            comment=AUTO_COMMENT,
            checks=checks,
        )

    @staticmethod
    def _audit_change(
        conn: Connection, change: ChangeRecord, action: AuditAction, checks: ReviewChecks
    ) -> None:
        assert change.decided_at is not None and change.decided_by is not None
        audit.record(
            conn,
            at=change.decided_at,
            actor=change.decided_by,
            action=action,
            request_id=change.request_id,
            change_id=change.change_id,
            revision=change.revision,
            comment=change.reason,
            checks=checks,
        )

    def on_request_submitted(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestSubmitted)
        repo = ReviewRepository(conn)
        existing = repo.get(event.request_id, for_update=True)
        new = domain.on_request_submitted(
            existing, event, review_id=str(uuid.uuid4()), now=self.clock()
        )
        if new is None:
            return ()
        if not repo.add(new):
            log.info("review already opened by another replica", request_id=event.request_id)
            return ()
        return self._auto_approve(conn, new, event)

    def on_request_updated(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestUpdated)
        repo = ReviewRepository(conn)
        existing = repo.get(event.request_id, for_update=True)
        new = domain.on_request_updated(
            existing, event, review_id=str(uuid.uuid4()), now=self.clock()
        )
        if new is None:
            log.info("request update no longer applies", request_id=event.request_id)
            return ()
        if existing is None:
            if not repo.add(new):
                return ()
        else:
            repo.save(new)
        return self._auto_approve(conn, new, event)

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
        now = self.clock()
        new = domain.on_request_cancelled(existing, event, now=now)
        if new is not None:
            repo.save(new)
        ReservationRepository(conn).release(event.request_id, now)
        return ()

    def on_hub_deleted(self, conn: Connection, event: Event) -> Sequence[Event]:
        """The hub and its data are gone: its course holds nothing any more."""
        assert isinstance(event, HubDeleted)
        if ReservationRepository(conn).release(event.request_id, self.clock()):
            log.info("reservation released: hub deleted", request_id=event.request_id)
        return ()

    def on_change_proposed(self, conn: Connection, event: Event) -> Sequence[Event]:
        """A change of an approved course: applied at once when it lies inside the
        approved envelope and fits the calendar, else left for a reviewer while
        the course keeps its approved configuration."""
        assert isinstance(event, ChangeProposed)
        repo = ReviewRepository(conn)
        review = repo.get(event.request_id, for_update=True)
        if review is None:
            raise SubmissionNotSeenYet(event.request_id)
        changes = ChangeRepository(conn)
        if changes.get(event.change_id) is not None:
            return ()  # seen before (a redelivery)
        now = self.clock()
        change = ChangeRecord(
            change_id=event.change_id,
            request_id=event.request_id,
            leader_id=review.leader_id,
            state=ChangeState.PENDING,
            revision=event.revision,
            approved=review.spec,
            proposed=event.configuration,
            comment=event.comment,
            proposed_at=event.occurred_at,
        )
        if review.state != ReviewState.APPROVED or event.revision <= review.revision:
            # request-svc refuses changes of courses that are over; one that still
            # arrives (a cancellation crossed it, or it is older than what the course
            # runs with) is refused at once, so that nobody waits for it.
            reason = (
                f"the course is {review.state.value}; it can no longer change"
                if review.state != ReviewState.APPROVED
                else f"the course is at revision {review.revision} already; propose it again"
            )
            log.info("change refused: stale", request_id=event.request_id, reason=reason)
            refused = change.decided(ChangeState.REJECTED, SYSTEM.user_id, now, reason)
            changes.add(refused)
            checks = self._checks(conn, review.request_id, review.leader_id, change.proposed)
            self._audit_change(conn, refused, AuditAction.CHANGE_REJECTED, checks)
            return (
                ChangeRejected(
                    **self._caused_by(event, now),
                    request_id=event.request_id,
                    change_id=event.change_id,
                    decided_by=SYSTEM.user_id,
                    revision=event.revision,
                    reason=reason,
                ),
            )
        policy = self.policy()
        checks = review_checks(change.proposed, policy, now)
        raised = raises(review.spec, change.proposed)
        outside = outside_auto_approval(change.proposed, policy.policy) if raised else []
        if not checks.passed or outside:
            log.info("change left for a reviewer", request_id=event.request_id, raised=raised)
            changes.add(change)
            return ()
        ReservationRepository(conn).lock()
        calendar, reservation = self._calendar_check(
            conn, review.request_id, review.leader_id, change.proposed, policy
        )
        if refuses(calendar):
            log.info("change left for a reviewer: calendar full", request_id=event.request_id)
            changes.add(change)
            return ()
        ReservationRepository(conn).hold(reservation, now)
        decided = change.decided(ChangeState.APPROVED, SYSTEM.user_id, now, CHANGE_AUTO_COMMENT)
        changes.add(decided)
        applied = self._apply_change(conn, review, decided, self._caused_by(event, now), now)
        self._audit_change(
            conn,
            decided,
            AuditAction.CHANGE_AUTO_APPROVED,
            self._with_calendar(checks, calendar),
        )
        return (applied,)
