"""Who does what on the bus: each service's own events, RPC subjects and
durable consumers. Part of the contract because NATS permissions are derived
from it (`jhaas_launcher.natsauth`): a consumer a service builds under another
name than the one declared here is refused by the server."""

from __future__ import annotations

import msgspec

from jhaas_schemas.streams import (
    DEAD_LETTER_STREAM,
    DEPLOYER_STREAM,
    GOVERNANCE_STREAM,
    PARTICIPANT_STREAM,
    REQUEST_STREAM,
    StreamDefinition,
)


class DurableConsumer(msgspec.Struct, frozen=True):
    name: str
    stream: StreamDefinition


class BusRole(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    # The context whose events the service publishes and whose RPC subjects it answers.
    context: str
    stream: StreamDefinition
    consumers: tuple[DurableConsumer, ...] = ()


REQUEST_SVC_GOVERNANCE = DurableConsumer("request-svc-governance", GOVERNANCE_STREAM)
REQUEST_SVC_DEPLOYER = DurableConsumer("request-svc-deployer", DEPLOYER_STREAM)
GOVERNANCE_SVC_REQUESTS = DurableConsumer("governance-svc-requests", REQUEST_STREAM)
# A deleted hub releases its course's reservation in the capacity calendar.
GOVERNANCE_SVC_DEPLOYER = DurableConsumer("governance-svc-deployer", DEPLOYER_STREAM)
PARTICIPANT_SVC_DEPLOYER = DurableConsumer("participant-svc-deployer", DEPLOYER_STREAM)
PARTICIPANT_SVC_GOVERNANCE = DurableConsumer("participant-svc-governance", GOVERNANCE_STREAM)
PARTICIPANT_SVC_REQUESTS = DurableConsumer("participant-svc-requests", REQUEST_STREAM)
DEPLOYER_SVC_GOVERNANCE = DurableConsumer("deployer-svc-governance", GOVERNANCE_STREAM)
DEPLOYER_SVC_REQUESTS = DurableConsumer("deployer-svc-requests", REQUEST_STREAM)
DEPLOYER_SVC_PARTICIPANTS = DurableConsumer("deployer-svc-participants", PARTICIPANT_STREAM)

ROLES: dict[str, BusRole] = {
    role.service: role
    for role in (
        BusRole(
            service="request-svc",
            context="request",
            stream=REQUEST_STREAM,
            consumers=(REQUEST_SVC_GOVERNANCE, REQUEST_SVC_DEPLOYER),
        ),
        BusRole(
            service="governance-svc",
            context="governance",
            stream=GOVERNANCE_STREAM,
            consumers=(GOVERNANCE_SVC_REQUESTS, GOVERNANCE_SVC_DEPLOYER),
        ),
        BusRole(
            service="participant-svc",
            context="participant",
            stream=PARTICIPANT_STREAM,
            consumers=(
                PARTICIPANT_SVC_DEPLOYER,
                PARTICIPANT_SVC_GOVERNANCE,
                PARTICIPANT_SVC_REQUESTS,
            ),
        ),
        BusRole(
            service="deployer-svc",
            context="deployer",
            stream=DEPLOYER_STREAM,
            consumers=(DEPLOYER_SVC_GOVERNANCE, DEPLOYER_SVC_REQUESTS, DEPLOYER_SVC_PARTICIPANTS),
        ),
    )
}


def owned_streams(service: str) -> tuple[StreamDefinition, ...]:
    """The streams a service creates and updates: its own context's stream and
    the dead-letter stream. Another context's stream is its owner's to shape;
    a consumer of it waits until it exists."""
    role = ROLES.get(service)
    return (role.stream, DEAD_LETTER_STREAM) if role else (DEAD_LETTER_STREAM,)
