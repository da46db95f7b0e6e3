"""Generate the published event documentation from the contract types.

`python -m jhaas_schemas.docs` writes `docs/events/asyncapi.json` (AsyncAPI 3.0
with JSON Schema payloads, one channel per subject) and one stored JSON example
per event under `schemas/examples/`. Never edit these files by hand; the
contract tests fail when they drift from the types.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from jhaas_schemas import events as ev
from jhaas_schemas.envelope import Envelope, Event
from jhaas_schemas.model import DeletionRecord, HubSpec, Resources
from jhaas_schemas.streams import ALL_STREAMS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES_DIR = ROOT / "schemas" / "examples"
ASYNCAPI_PATH = ROOT / "docs" / "events" / "asyncapi.json"

_T0 = datetime(2027, 4, 12, 7, 0, tzinfo=UTC)
_SPEC = HubSpec(
    title="Data Science 101",
    slug="ds101",
    description="Introductory course",
    starts_at=_T0,
    ends_at=_T0 + timedelta(days=90),
    image="quay.io/jupyter/scipy-notebook:2024-12-02",
    default_interface="lab",
    resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
    expected_participants=30,
)
_COMMON: dict[str, Any] = {
    "request_id": "8d7f4c2e-0000-4000-8000-000000000001",
    "deployment_id": "8d7f4c2e-0000-4000-8000-000000000002",
    "review_id": "8d7f4c2e-0000-4000-8000-000000000003",
    "participation_id": "8d7f4c2e-0000-4000-8000-000000000004",
    "change_id": "8d7f4c2e-0000-4000-8000-000000000005",
    "leader_id": "user-leader",
    "user_id": "user-participant",
    "decided_by": "user-governance",
    "removed_by": "user-leader",
    "added_by": "user-leader",
    "cancelled_by": "user-leader",
    "revision": 1,
    "spec": _SPEC,
    "configuration": _SPEC,
    "comment": "Fine for the course size.",
    "reason": "Please use a pinned image tag.",
    "purged_participations": 31,
    "deploy_at": _T0 - timedelta(minutes=30),
    "starts_at": _T0,
    "ends_at": _T0 + timedelta(days=90),
    "attempt": 1,
    "attempts": 3,
    "url": "https://ds101.hubs.example.org/",
    "record": DeletionRecord(
        backend="kubernetes",
        deleted_at=_T0 + timedelta(days=90, minutes=5),
        objects=("namespace/jhaas-ds101",),
    ),
}


def example(event_type: type[Event]) -> Event:
    """A deterministic example of an event type, filled from `_COMMON`."""
    fields = {f.name for f in msgspec.structs.fields(event_type)}
    envelope: Envelope = {
        "event_id": "3f0e1c52-0000-4000-8000-00000000000a",
        "occurred_at": _T0 - timedelta(days=30),
        "correlation_id": "corr-0001",
        "causation_id": None,
        "source": event_type.type_name().split(".")[2] + "-svc",
    }
    values = {k: v for k, v in _COMMON.items() if k in fields}
    return event_type(**envelope, **values)


def asyncapi() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        ev.ALL_EVENTS, ref_template="#/components/schemas/{name}"
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type in ev.ALL_EVENTS:
        name = event_type.__name__
        subject = event_type.type_name()
        stream = next(s.name for s in ALL_STREAMS if subject.startswith(s.subjects[0][:-1]))
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (event_type.__doc__ or name).strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
        channels[name] = {
            "address": subject,
            "description": f"JetStream stream {stream}",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"receive{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
        }
    components["CloudEventsHeaders"] = {
        "type": "object",
        "description": "CloudEvents 1.0 binary-mode attributes carried as NATS headers",
        "required": ["ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time", "Nats-Msg-Id"],
        "properties": {
            "ce-specversion": {"const": "1.0"},
            "ce-id": {"type": "string", "description": "= event_id"},
            "ce-type": {"type": "string", "description": "= the subject"},
            "ce-source": {"type": "string"},
            "ce-time": {"type": "string", "format": "date-time"},
            "ce-correlationid": {"type": "string"},
            "ce-causationid": {"type": "string"},
            "Nats-Msg-Id": {"type": "string", "description": "= event_id; JetStream dedup"},
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "JHaaS events",
            "version": "1.0.0",
            "description": "Events of JupyterHub as a Service. Generated from jhaas_schemas; "
            "do not edit. Events carry ids, never secrets or e-mail addresses.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


def render(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[Path, str]:
    files = {ASYNCAPI_PATH: render(asyncapi())}
    for event_type in ev.ALL_EVENTS:
        data = json.loads(ev.encode_event(example(event_type)))
        files[EXAMPLES_DIR / f"{event_type.type_name()}.json"] = render(data)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args()
    stale = []
    for path, text in expected_files().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        raise SystemExit(
            f"out of date: {', '.join(map(str, stale))}; run python -m jhaas_schemas.docs"
        )


if __name__ == "__main__":
    main()
