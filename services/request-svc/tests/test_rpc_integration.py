"""request-svc against a real NATS JetStream and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import nats
import pytest

from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.events import RequestSubmitted, decode_event
from jhaas_schemas.model import HubSpec, Principal, Resources, Role
from jhaas_schemas.rpc import ErrorCode, HubRequest, RequestOps, SubmitRequest
from jhaas_schemas.streams import REQUEST_STREAM
from request_svc.app import build_app

pytestmark = pytest.mark.integration

LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))


def spec(**overrides: object) -> HubSpec:
    start = datetime.now(UTC) + timedelta(days=7)
    values: dict[str, object] = {
        "title": "Data Science 101",
        "slug": "ds101",
        "starts_at": start,
        "ends_at": start + timedelta(days=90),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": Resources(cpu="1", memory="2Gi", storage="5Gi"),
        "expected_participants": 30,
    }
    values.update(overrides)
    return HubSpec(**values)  # type: ignore[arg-type]


async def test_submit_stores_and_publishes(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    settings = settings_for("request-svc")
    runtime = build_app(settings)
    await runtime.start()
    try:
        nc = await nats.connect(settings.nats_url)
        client = RpcClient(nc)
        created = await client.call(
            RequestOps.SUBMIT,
            SubmitRequest(spec=spec()),
            HubRequest,
            principal=LEADER,
            correlation_id="c-1",
        )
        assert created.status == "submitted"
        assert created.leader_id == LEADER.user_id

        with pytest.raises(RpcFailure) as taken:
            await client.call(
                RequestOps.SUBMIT,
                SubmitRequest(spec=spec()),
                HubRequest,
                principal=LEADER,
                correlation_id="c-2",
            )
        assert taken.value.error.code == ErrorCode.CONFLICT
        assert taken.value.error.fields == {"spec.slug": "is taken"}

        js = nc.jetstream()
        sub = await js.pull_subscribe(
            f"{REQUEST_STREAM.subjects[0]}", durable="probe", stream=REQUEST_STREAM.name
        )
        msgs = await sub.fetch(10, timeout=5)
        assert len(msgs) == 1
        event = decode_event(msgs[0].data)
        assert isinstance(event, RequestSubmitted)
        assert event.request_id == created.request_id
        assert msgs[0].headers is not None
        assert msgs[0].headers["Nats-Msg-Id"] == event.event_id
        assert msgs[0].headers["ce-type"] == "jhaas.evt.request.submitted.v1"
        assert msgspec.json.decode(msgs[0].data)["correlation_id"] == "c-1"
        await nc.close()
    finally:
        await runtime.stop()
