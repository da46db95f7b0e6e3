"""Contract tests: every event round-trips against its stored JSON example, the
CloudEvents headers say what the event is, and the generated documentation
matches the types."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest

from jhaas_schemas import docs
from jhaas_schemas import events as ev
from jhaas_schemas.envelope import cloudevents_headers
from jhaas_schemas.model import HubSpecDraft, Principal, Role
from jhaas_schemas.rpc import HubRequest, RpcCall, RpcError, RpcReply, SubmitRequest
from jhaas_schemas.streams import ALL_STREAMS, EVENT_STREAMS

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("event_type", ev.ALL_EVENTS, ids=lambda t: t.__name__)
def test_stored_example_round_trips(event_type: type[ev.Event]) -> None:
    path = docs.EXAMPLES_DIR / f"{event_type.type_name()}.json"
    stored = path.read_bytes()
    decoded = ev.decode_event(stored)
    assert type(decoded) is event_type
    assert json.loads(ev.encode_event(decoded)) == json.loads(stored)
    assert json.loads(stored)["type"] == event_type.type_name()


@pytest.mark.parametrize("event_type", ev.ALL_EVENTS, ids=lambda t: t.__name__)
def test_cloudevents_headers_describe_the_event(event_type: type[ev.Event]) -> None:
    event = docs.example(event_type)
    headers = cloudevents_headers(event)
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == event.event_id == headers["Nats-Msg-Id"]
    assert headers["ce-type"] == event_type.type_name() == event.subject
    assert headers["ce-source"] == event.source
    assert datetime.fromisoformat(headers["ce-time"]) == event.occurred_at
    assert headers["content-type"] == "application/json"


def test_every_event_subject_belongs_to_exactly_one_stream() -> None:
    for event_type in ev.ALL_EVENTS:
        subject = event_type.type_name()
        owners = [s.name for s in EVENT_STREAMS if subject.startswith(s.subjects[0][:-1])]
        assert len(owners) == 1, (subject, owners)
    assert len({s.name for s in ALL_STREAMS}) == len(ALL_STREAMS)


def test_events_carry_no_email_or_secret_fields() -> None:
    forbidden = ("email", "mail", "password", "secret", "token")
    for event_type in ev.ALL_EVENTS:
        for field in msgspec.structs.fields(event_type):
            assert not any(word in field.name for word in forbidden), (event_type, field.name)


def test_an_unknown_event_type_is_refused() -> None:
    unknown = r"Invalid value 'jhaas\.evt\.request\.x\.v9'"
    with pytest.raises(msgspec.ValidationError, match=unknown):
        ev.decode_event(b'{"type": "jhaas.evt.request.x.v9"}')


def test_events_are_immutable() -> None:
    event = docs.example(ev.RequestSubmitted)
    with pytest.raises(AttributeError):
        event.request_id = "other"  # type: ignore[misc]


def test_rpc_call_and_reply_round_trip() -> None:
    principal = Principal(user_id="u1", username="lea", roles=(Role.LEADER,))
    call = RpcCall[SubmitRequest](
        principal=principal, correlation_id="c1", payload=SubmitRequest(spec=docs._SPEC)
    )
    data = msgspec.json.encode(call)
    # A complete HubSpec is sent; request-svc reads it as the draft it may be.
    draft = HubSpecDraft(**msgspec.structs.asdict(docs._SPEC))
    decoded = msgspec.json.decode(data, type=RpcCall[SubmitRequest])
    assert decoded == msgspec.structs.replace(call, payload=SubmitRequest(spec=draft))
    now = datetime(2027, 1, 1, tzinfo=UTC)
    ok = RpcReply[HubRequest](
        ok=HubRequest(
            request_id="r",
            leader_id="u1",
            status="submitted",
            revision=1,
            spec=docs._SPEC,
            created_at=now,
            updated_at=now,
        )
    )
    assert msgspec.json.decode(msgspec.json.encode(ok), type=RpcReply[HubRequest]) == ok
    err = RpcReply[HubRequest](error=RpcError(code="conflict", message="taken"))
    assert json.loads(msgspec.json.encode(err)) == {
        "error": {"code": "conflict", "message": "taken", "fields": {}}
    }


def test_generated_documentation_is_current() -> None:
    stale = [
        p for p, text in docs.expected_files().items() if not p.exists() or p.read_text() != text
    ]
    assert not stale, f"run `uv run python -m jhaas_schemas.docs`: {stale}"


def test_asyncapi_lists_every_event_on_its_subject() -> None:
    document = docs.asyncapi()
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {t.type_name() for t in ev.ALL_EVENTS}
    approved = document["components"]["schemas"]["RequestApproved"]
    assert "configuration" in approved["required"]
