"""The event envelope and its CloudEvents view.

Every event is a frozen msgspec Struct whose tag is its type name, which is
also the NATS subject it is published on (``jhaas.evt.<context>.<event>.v<N>``).
The envelope fields sit on every event; CloudEvents attributes are derived
from them for the NATS headers so that other institutions can consume the
stream with any CloudEvents SDK.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, TypedDict

import msgspec

CLOUDEVENTS_SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every published event: the envelope."""

    event_id: str
    occurred_at: datetime
    correlation_id: str
    causation_id: str | None = None
    source: str

    context: ClassVar[str] = ""

    @classmethod
    def type_name(cls) -> str:
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str), f"{cls.__name__} has no string tag"
        return tag

    @property
    def subject(self) -> str:
        return self.type_name()


def event_tag(context: str, name: str, version: int = 1) -> str:
    """The type name (and NATS subject) of an event."""
    return f"jhaas.evt.{context}.{name}.v{version}"


def new_event_id() -> str:
    return str(uuid.uuid4())


class Envelope(TypedDict):
    """The envelope fields of a new event, to splat into its constructor."""

    event_id: str
    occurred_at: datetime
    correlation_id: str
    causation_id: str | None
    source: str


def envelope(
    *,
    source: str,
    correlation_id: str,
    causation_id: str | None = None,
    now: datetime | None = None,
    event_id: str | None = None,
) -> Envelope:
    """Keyword arguments that fill the envelope of a new event."""
    return {
        "event_id": event_id or new_event_id(),
        "occurred_at": now or datetime.now(UTC),
        "correlation_id": correlation_id,
        "causation_id": causation_id,
        "source": source,
    }


def cloudevents_headers(event: Event) -> dict[str, str]:
    """CloudEvents 1.0 binary-mode attributes for NATS headers.

    ``Nats-Msg-Id`` makes JetStream drop a republished duplicate inside the
    stream's duplicate window.
    """
    headers = {
        "ce-specversion": CLOUDEVENTS_SPEC_VERSION,
        "ce-id": event.event_id,
        "ce-type": event.type_name(),
        "ce-source": event.source,
        "ce-time": event.occurred_at.isoformat(),
        "ce-correlationid": event.correlation_id,
        "content-type": CONTENT_TYPE,
        "Nats-Msg-Id": event.event_id,
    }
    if event.causation_id:
        headers["ce-causationid"] = event.causation_id
    return headers
