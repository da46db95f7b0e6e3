"""Composition root: the only place that builds participant-svc's adapters."""

from __future__ import annotations

from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.bus import PARTICIPANT_SVC_DEPLOYER
from jhaas_schemas.events import HubDeleted, decode_event
from participant_svc.handlers import Clock, ParticipantHandlers, utcnow
from participant_svc.store import VERSIONS_DIR, messaging, metadata

SERVICE = "participant-svc"
DEPLOYER_CONSUMER = PARTICIPANT_SVC_DEPLOYER.name


def build_app(settings: RuntimeSettings, clock: Clock = utcnow) -> ServiceRuntime:
    # The runtime answers jhaas.rpc.participant.health on its own.
    runtime = ServiceRuntime(
        settings, metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    handlers = ParticipantHandlers(runtime, clock)
    runtime.add_consumer(
        EventConsumer(
            name=DEPLOYER_CONSUMER,
            stream=PARTICIPANT_SVC_DEPLOYER.stream.name,
            handlers={HubDeleted: handlers.on_hub_deleted},
            decode=decode_event,
        )
    )
    return runtime
