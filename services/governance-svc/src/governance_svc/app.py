"""Composition root: the only place that builds governance-svc's adapters."""

from __future__ import annotations

from governance_svc.handlers import Clock, GovernanceHandlers, utcnow
from governance_svc.store import VERSIONS_DIR, messaging, metadata
from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.bus import GOVERNANCE_SVC_REQUESTS
from jhaas_schemas.events import (
    RequestCancelled,
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
    decode_event,
)
from jhaas_schemas.policy import PolicySource
from jhaas_schemas.rpc import (
    ApproveRequest,
    GetReview,
    GovernanceOps,
    ListReviews,
    RejectRequest,
    RequestChanges,
)

SERVICE = "governance-svc"
REQUESTS_CONSUMER = GOVERNANCE_SVC_REQUESTS.name


def build_app(
    settings: RuntimeSettings, clock: Clock = utcnow, policy: PolicySource | None = None
) -> ServiceRuntime:
    runtime = ServiceRuntime(
        settings, metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    handlers = GovernanceHandlers(runtime, clock, policy)
    runtime.rpc.route(GovernanceOps.LIST_REVIEWS, ListReviews, handlers.list_reviews)
    runtime.rpc.route(GovernanceOps.GET_REVIEW, GetReview, handlers.get_review)
    runtime.rpc.route(GovernanceOps.APPROVE, ApproveRequest, handlers.approve)
    runtime.rpc.route(GovernanceOps.REJECT, RejectRequest, handlers.reject)
    runtime.rpc.route(GovernanceOps.REQUEST_CHANGES, RequestChanges, handlers.request_changes)
    runtime.add_consumer(
        EventConsumer(
            name=REQUESTS_CONSUMER,
            stream=GOVERNANCE_SVC_REQUESTS.stream.name,
            handlers={
                RequestSubmitted: handlers.on_request_submitted,
                RequestUpdated: handlers.on_request_updated,
                RequestWithdrawn: handlers.on_request_withdrawn,
                RequestCancelled: handlers.on_request_cancelled,
            },
            decode=decode_event,
        )
    )
    return runtime
