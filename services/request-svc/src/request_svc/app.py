"""Composition root: the only place that builds request-svc's adapters."""

from __future__ import annotations

from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.bus import REQUEST_SVC_DEPLOYER, REQUEST_SVC_GOVERNANCE
from jhaas_schemas.events import (
    ChangesRequested,
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    RequestRejected,
    decode_event,
)
from jhaas_schemas.policy import PolicySource
from jhaas_schemas.rpc import (
    CancelRequest,
    GetRequest,
    ListRequests,
    RequestOps,
    SubmitRequest,
    UpdateRequest,
    UserRef,
    WithdrawRequest,
)
from request_svc.handlers import Clock, RequestHandlers, utcnow
from request_svc.store import VERSIONS_DIR, messaging, metadata

SERVICE = "request-svc"


def build_app(
    settings: RuntimeSettings, clock: Clock = utcnow, policy: PolicySource | None = None
) -> ServiceRuntime:
    runtime = ServiceRuntime(
        settings, metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    handlers = RequestHandlers(runtime, clock, policy)
    runtime.rpc.route(RequestOps.SUBMIT, SubmitRequest, handlers.submit)
    runtime.rpc.route(RequestOps.GET, GetRequest, handlers.get)
    runtime.rpc.route(RequestOps.LIST, ListRequests, handlers.list)
    runtime.rpc.route(RequestOps.UPDATE, UpdateRequest, handlers.update)
    runtime.rpc.route(RequestOps.WITHDRAW, WithdrawRequest, handlers.withdraw)
    runtime.rpc.route(RequestOps.CANCEL, CancelRequest, handlers.cancel)
    runtime.rpc.route(RequestOps.LEADING, UserRef, handlers.leading)
    runtime.add_consumer(
        EventConsumer(
            name=REQUEST_SVC_GOVERNANCE.name,
            stream=REQUEST_SVC_GOVERNANCE.stream.name,
            handlers={
                RequestApproved: handlers.on_review_decision,
                RequestRejected: handlers.on_review_decision,
                ChangesRequested: handlers.on_review_decision,
            },
            decode=decode_event,
        )
    )
    runtime.add_consumer(
        EventConsumer(
            name=REQUEST_SVC_DEPLOYER.name,
            stream=REQUEST_SVC_DEPLOYER.stream.name,
            handlers={
                HubDeploying: handlers.on_deployment_event,
                HubReady: handlers.on_deployment_event,
                HubFailed: handlers.on_deployment_event,
                CourseEnded: handlers.on_deployment_event,
                HubDeleted: handlers.on_deployment_event,
            },
            decode=decode_event,
        )
    )
    return runtime
