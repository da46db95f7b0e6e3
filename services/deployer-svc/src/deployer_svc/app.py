"""Composition root: the only place that builds deployer-svc's adapters."""

from __future__ import annotations

from deployer_svc.handlers import Clock, DeployerHandlers, utcnow
from deployer_svc.settings import SERVICE, DeployerSettings
from deployer_svc.store import VERSIONS_DIR, messaging, metadata
from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.events import RequestApproved, decode_event
from jhaas_schemas.rpc import DeployerOps, ListDeployments
from jhaas_schemas.streams import GOVERNANCE_STREAM

__all__ = ["SERVICE", "build_app"]

GOVERNANCE_CONSUMER = "deployer-svc-governance"


def build_app(settings: DeployerSettings, clock: Clock = utcnow) -> ServiceRuntime:
    runtime = ServiceRuntime(
        settings.runtime, metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    handlers = DeployerHandlers(runtime, lead_time=settings.lead_time, clock=clock)
    runtime.rpc.route(DeployerOps.LIST_DEPLOYMENTS, ListDeployments, handlers.list_deployments)
    runtime.add_consumer(
        EventConsumer(
            name=GOVERNANCE_CONSUMER,
            stream=GOVERNANCE_STREAM.name,
            handlers={RequestApproved: handlers.on_request_approved},
            decode=decode_event,
        )
    )
    return runtime
