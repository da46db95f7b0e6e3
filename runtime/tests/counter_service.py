"""A minimal service built on the runtime kit, for the kit's own recovery tests.

It counts every `RequestSubmitted` it handles in a table with no unique key,
so a second effect of one event would show as a second row.
Run as `python counter_service.py` with the usual JHAAS_* environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jhaas_runtime.logs import configure_logging
from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime, run_service
from jhaas_runtime.settings import RuntimeSettings
from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.envelope import Event
from jhaas_schemas.events import RequestSubmitted, decode_event
from jhaas_schemas.streams import REQUEST_STREAM

SERVICE = "counter-svc"
CONSUMER = "counter-svc-requests"
metadata = sa.MetaData()
messaging = add_messaging_tables(metadata)
effects = sa.Table(
    "effects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("handled_at", UtcDateTime(), nullable=False),
)


def count(conn: Connection, event: Event) -> Sequence[Event]:
    assert isinstance(event, RequestSubmitted)
    if event.spec.title.startswith("fail"):
        raise RuntimeError("this handler fails for titles starting with 'fail'")
    conn.execute(effects.insert().values(request_id=event.request_id, handled_at=datetime.now(UTC)))
    return ()


def build(settings: RuntimeSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(
        settings,
        metadata=metadata,
        tables=messaging,
        versions_dir=Path(__file__).parent / "counter_migrations",
    )
    runtime.add_consumer(
        EventConsumer(
            name=CONSUMER,
            stream=REQUEST_STREAM.name,
            handlers={RequestSubmitted: count},
            decode=decode_event,
        )
    )
    return runtime


if __name__ == "__main__":
    settings = RuntimeSettings.from_env(SERVICE)
    configure_logging(SERVICE, level=settings.log_level, fmt="console")
    run_service(build(settings))
