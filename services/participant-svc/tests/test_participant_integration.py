"""participant-svc's skeleton against a real NATS JetStream and a real database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
import sqlalchemy as sa

from jhaas_runtime.rpc import RpcClient
from jhaas_runtime.service import Health, HealthCheck
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import cloudevents_headers, envelope
from jhaas_schemas.events import HubDeleted, encode_event
from jhaas_schemas.model import DeletionRecord, Principal, Role
from jhaas_schemas.streams import rpc_subject
from participant_svc.app import DEPLOYER_CONSUMER, build_app
from participant_svc.store import purged_courses

pytestmark = pytest.mark.integration


def env(source: str, correlation_id: str, **more: Any) -> dict[str, Any]:
    """A new event's envelope, typed for `**` into an event's constructor."""
    return envelope(source=source, correlation_id=correlation_id, **more)


OPERATOR = Principal(user_id="u-admin", username="ada", roles=(Role.ADMIN,))


def hub_deleted(request_id: str, deleted_at: datetime) -> HubDeleted:
    return HubDeleted(
        **env(source="deployer-svc", correlation_id="c-delete"),
        deployment_id=str(uuid.uuid4()),
        request_id=request_id,
        record=DeletionRecord(backend="local", deleted_at=deleted_at, objects=("hub",)),
    )


async def test_starts_answers_health_and_records_a_deleted_hub_once(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    runtime = build_app(settings_for("participant-svc"))
    await runtime.start()
    nc = await nats.connect(runtime.settings.nats_url)
    try:
        health = await RpcClient(nc).call(
            rpc_subject("participant", "health"),
            HealthCheck(),
            Health,
            principal=OPERATOR,
            correlation_id="c-health",
        )
        assert (health.service, health.status) == ("participant-svc", "ok")

        js = nc.jetstream()
        deleted_at = datetime(2027, 7, 11, 18, 0, tzinfo=UTC)
        deleted = hub_deleted(str(uuid.uuid4()), deleted_at)
        headers = cloudevents_headers(deleted)
        await js.publish(deleted.subject, encode_event(deleted), headers=headers)
        # Redelivered under another Nats-Msg-Id, so JetStream keeps both copies.
        await js.publish(
            deleted.subject, encode_event(deleted), headers={**headers, "Nats-Msg-Id": "again"}
        )
        # And reported once more under a new event id.
        repeated = hub_deleted(deleted.request_id, deleted_at)
        await js.publish(
            repeated.subject, encode_event(repeated), headers=cloudevents_headers(repeated)
        )

        [consumer] = [c for c in runtime.consumers if c.name == DEPLOYER_CONSUMER]
        deadline = time.monotonic() + 10
        while consumer.handled + consumer.duplicates < 3:
            assert time.monotonic() < deadline, f"handled {consumer.handled} of 3 events"
            await asyncio.sleep(0.05)
        assert consumer.dead_lettered == 0
        assert consumer.duplicates == 1

        rows = await runtime.db.read(lambda conn: conn.execute(sa.select(purged_courses)).all())
        inbox = await runtime.db.read(
            lambda conn: conn.scalar(sa.select(sa.func.count()).select_from(runtime.tables.inbox))
        )
        assert [(r.request_id, r.deployment_id, r.hub_deleted_at) for r in rows] == [
            (deleted.request_id, deleted.deployment_id, deleted_at)
        ]
        assert inbox == 2  # the redelivered copy was skipped before the handler ran
    finally:
        await nc.close()
        await runtime.stop()
