"""Composition root: the only place that builds governance-svc's adapters."""

from __future__ import annotations

from governance_svc.calendar import CalendarSettings
from governance_svc.handlers import Clock, GovernanceHandlers, utcnow
from governance_svc.policy_audit import PolicyAudit
from governance_svc.store import VERSIONS_DIR, messaging, metadata
from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.policy_holder import PolicyHolder
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.bus import GOVERNANCE_SVC_DEPLOYER, GOVERNANCE_SVC_REQUESTS
from jhaas_schemas.events import (
    ChangeProposed,
    HubDeleted,
    RequestCancelled,
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
    decode_event,
)
from jhaas_schemas.policy import PolicySource
from jhaas_schemas.rpc import (
    ApproveRequest,
    DecideChange,
    GetCalendar,
    GetPolicy,
    GetReview,
    GovernanceOps,
    ListAudit,
    ListReviews,
    RejectRequest,
    RequestChanges,
)

SERVICE = "governance-svc"
REQUESTS_CONSUMER = GOVERNANCE_SVC_REQUESTS.name
DEPLOYER_CONSUMER = GOVERNANCE_SVC_DEPLOYER.name


def build_app(
    settings: RuntimeSettings,
    clock: Clock = utcnow,
    policy: PolicySource | None = None,
    calendar: CalendarSettings | None = None,
) -> ServiceRuntime:
    runtime = ServiceRuntime(
        settings, metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    handlers = GovernanceHandlers(runtime, clock, policy, calendar or CalendarSettings.from_env())
    runtime.rpc.route(GovernanceOps.LIST_REVIEWS, ListReviews, handlers.list_reviews)
    runtime.rpc.route(GovernanceOps.GET_REVIEW, GetReview, handlers.get_review)
    runtime.rpc.route(GovernanceOps.APPROVE, ApproveRequest, handlers.approve)
    runtime.rpc.route(GovernanceOps.REJECT, RejectRequest, handlers.reject)
    runtime.rpc.route(GovernanceOps.REQUEST_CHANGES, RequestChanges, handlers.request_changes)
    runtime.rpc.route(GovernanceOps.GET_POLICY, GetPolicy, handlers.get_policy)
    runtime.rpc.route(GovernanceOps.CALENDAR, GetCalendar, handlers.calendar)
    runtime.rpc.route(GovernanceOps.APPROVE_CHANGE, DecideChange, handlers.approve_change)
    runtime.rpc.route(GovernanceOps.REJECT_CHANGE, DecideChange, handlers.reject_change)
    runtime.rpc.route(GovernanceOps.LIST_AUDIT, ListAudit, handlers.list_audit)
    # The policy in force at start, and each reload that changes it, goes into the audit trail.
    policy_audit = PolicyAudit(runtime, handlers.policy, clock)
    if isinstance(policy, PolicyHolder):
        policy.subscribe(policy_audit.notify)
    runtime.add_background("policy-audit", policy_audit.run)
    runtime.add_consumer(
        EventConsumer(
            name=REQUESTS_CONSUMER,
            stream=GOVERNANCE_SVC_REQUESTS.stream.name,
            handlers={
                RequestSubmitted: handlers.on_request_submitted,
                RequestUpdated: handlers.on_request_updated,
                RequestWithdrawn: handlers.on_request_withdrawn,
                RequestCancelled: handlers.on_request_cancelled,
                ChangeProposed: handlers.on_change_proposed,
            },
            decode=decode_event,
        )
    )
    runtime.add_consumer(
        EventConsumer(
            name=DEPLOYER_CONSUMER,
            stream=GOVERNANCE_SVC_DEPLOYER.stream.name,
            handlers={HubDeleted: handlers.on_hub_deleted},
            decode=decode_event,
        )
    )
    return runtime
