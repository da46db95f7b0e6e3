"""JetStream stream definitions and subject names: part of the contract."""

from __future__ import annotations

import msgspec

EVENT_PREFIX = "jhaas.evt"
RPC_PREFIX = "jhaas.rpc"
DEAD_LETTER_PREFIX = "jhaas.dlq"


class StreamDefinition(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    subjects: tuple[str, ...]
    description: str
    # JetStream drops a message whose Nats-Msg-Id it saw within this window.
    duplicate_window_seconds: float = 600.0
    max_age_days: float = 365.0


REQUEST_STREAM = StreamDefinition(
    name="JHAAS_REQUEST",
    subjects=(f"{EVENT_PREFIX}.request.>",),
    description="Hub requests: submitted, updated, withdrawn, cancelled",
)
GOVERNANCE_STREAM = StreamDefinition(
    name="JHAAS_GOVERNANCE",
    subjects=(f"{EVENT_PREFIX}.governance.>",),
    description="Review decisions on hub requests",
)
PARTICIPANT_STREAM = StreamDefinition(
    name="JHAAS_PARTICIPANT",
    subjects=(f"{EVENT_PREFIX}.participant.>",),
    description="Course participations and rosters",
)
DEPLOYER_STREAM = StreamDefinition(
    name="JHAAS_DEPLOYER",
    subjects=(f"{EVENT_PREFIX}.deployer.>",),
    description="Deployments and hub lifecycle",
)
DEAD_LETTER_STREAM = StreamDefinition(
    name="JHAAS_DEAD_LETTER",
    subjects=(f"{DEAD_LETTER_PREFIX}.>",),
    description="Events a consumer could not handle after bounded redelivery",
)

EVENT_STREAMS = (REQUEST_STREAM, GOVERNANCE_STREAM, PARTICIPANT_STREAM, DEPLOYER_STREAM)
ALL_STREAMS = (*EVENT_STREAMS, DEAD_LETTER_STREAM)


def dead_letter_subject(consumer: str, original_subject: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{consumer}.{original_subject}"


def rpc_subject(service: str, operation: str) -> str:
    return f"{RPC_PREFIX}.{service}.{operation}"
