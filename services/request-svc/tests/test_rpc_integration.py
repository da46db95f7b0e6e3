"""request-svc against a real NATS JetStream and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec
import nats
import pytest

from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import (
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    RequestSubmitted,
    decode_event,
)
from jhaas_schemas.model import HubSpec, Principal, Resources, Role
from jhaas_schemas.rpc import (
    ErrorCode,
    GetRequest,
    HubRequest,
    HubRequestList,
    RequestOps,
    SubmitRequest,
    UserRef,
    WithdrawRequest,
)
from jhaas_schemas.streams import REQUEST_STREAM
from request_svc.app import build_app

pytestmark = pytest.mark.integration

T = TypeVar("T")
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


async def test_the_leader_sees_the_hubs_current_url_and_health(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    # A running course's hub is rebuilt by reconciliation (a new URL on the local
    # backend), fails later, is redeployed; one older event arrives last of all.
    settings = settings_for("request-svc")
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(settings.nats_url)
    try:
        client = RpcClient(nc)
        created = await client.call(
            RequestOps.SUBMIT,
            SubmitRequest(spec=spec()),
            HubRequest,
            principal=LEADER,
            correlation_id="c-1",
        )
        request_id = created.request_id
        js = nc.jetstream()
        t0 = datetime.now(UTC)

        def at(seconds: float) -> dict[str, object]:
            when = t0 + timedelta(seconds=seconds)
            return {
                **envelope(source="deployer-svc", correlation_id="c-d", now=when),
                "deployment_id": "d-1",
                "request_id": request_id,
            }

        approved = RequestApproved(
            **envelope(source="governance-svc", correlation_id="c-g"),
            request_id=request_id,
            review_id="rv-1",
            leader_id=LEADER.user_id,
            decided_by="u-gov",
            revision=1,
            configuration=created.spec,
        )

        async def seen() -> tuple[str, str | None]:
            found = await client.call(
                RequestOps.GET,
                GetRequest(request_id=request_id),
                HubRequest,
                principal=LEADER,
                correlation_id="c-get",
            )
            return found.status, found.hub_url

        async def after(event: Event, expected: tuple[str, str | None]) -> None:
            await publish(js, event)
            await eventually(seen, lambda got: got == expected)

        await after(approved, ("approved", None))
        await after(HubDeploying(**at(1), attempt=1), ("deploying", None))  # type: ignore[arg-type]
        await after(
            HubReady(**at(2), url="http://127.0.0.1:4001/"), ("running", "http://127.0.0.1:4001/")
        )  # type: ignore[arg-type]
        # Reconciliation found the hub gone and rebuilds it on other ports.
        await after(HubDeploying(**at(3), attempt=1), ("deploying", None))  # type: ignore[arg-type]
        await after(
            HubReady(**at(4), url="http://127.0.0.1:4002/"), ("running", "http://127.0.0.1:4002/")
        )  # type: ignore[arg-type]
        # The rebuilt hub dies, and rebuilding it fails for good.
        await after(
            HubFailed(**at(5), reason="the hub did not answer", attempts=3), ("failed", None)
        )  # type: ignore[arg-type]
        # An admin redeploys it.
        await after(HubDeploying(**at(6), attempt=1), ("deploying", None))  # type: ignore[arg-type]
        await after(
            HubReady(**at(7), url="http://127.0.0.1:4003/"), ("running", "http://127.0.0.1:4003/")
        )  # type: ignore[arg-type]
        # A copy of an old event, delivered late (another replica's batch, a retry).
        stale = HubReady(**at(4), url="http://127.0.0.1:4002/")  # type: ignore[arg-type]
        await publish(js, stale, msg_id="late-copy")
        marker = HubReady(**at(8), url="http://127.0.0.1:4003/")  # type: ignore[arg-type]
        await after(marker, ("running", "http://127.0.0.1:4003/"))
        assert await seen() == ("running", "http://127.0.0.1:4003/")
    finally:
        await nc.close()
        await runtime.stop()


async def test_the_courses_a_user_leads_that_are_not_over(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    # The gateway asks before it deletes an account: submitted and approved count,
    # a withdrawn request does not, nor another leader's.
    settings = settings_for("request-svc")
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(settings.nats_url)
    try:
        client = RpcClient(nc)

        async def call(who: Principal, subject: str, payload: msgspec.Struct, typ: type[T]) -> T:
            return await client.call(subject, payload, typ, principal=who, correlation_id="c")

        other = Principal(user_id="u-other", username="oli", roles=(Role.LEADER,))
        admin = Principal(user_id="u-admin", username="adm", roles=(Role.ADMIN,))
        made = {
            slug: await call(
                LEADER, RequestOps.SUBMIT, SubmitRequest(spec=spec(slug=slug)), HubRequest
            )
            for slug in ("waiting", "gone", "approved")
        }
        await call(other, RequestOps.SUBMIT, SubmitRequest(spec=spec(slug="theirs")), HubRequest)
        gone = WithdrawRequest(request_id=made["gone"].request_id)
        await call(LEADER, RequestOps.WITHDRAW, gone, HubRequest)
        approved = made["approved"]
        await publish(
            nc.jetstream(),
            RequestApproved(
                **envelope(source="governance-svc", correlation_id="c-g"),
                request_id=approved.request_id,
                review_id="rv-1",
                leader_id=LEADER.user_id,
                decided_by="u-gov",
                revision=1,
                configuration=approved.spec,
            ),
        )
        mine = UserRef(user_id=LEADER.user_id)

        async def leading(who: Principal) -> list[tuple[str, str]]:
            found = await call(who, RequestOps.LEADING, mine, HubRequestList)
            return sorted((r.spec.slug, r.status) for r in found.items)

        expected = [("approved", "approved"), ("waiting", "submitted")]
        await eventually(lambda: leading(LEADER), lambda got: got == expected)
        assert await leading(admin) == expected
        with pytest.raises(RpcFailure) as refused:
            await leading(other)
        assert refused.value.error.code == ErrorCode.FORBIDDEN
    finally:
        await nc.close()
        await runtime.stop()
