"""The leader sees what the course's hub cannot do on its host (HubReady.warnings)
on the request, until a later HubReady without warnings or the hub's deletion
clears it; on a real NATS JetStream and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import nats
import pytest

from jhaas_launcher.testing import eventually, publish, sample_spec
from jhaas_runtime.rpc import RpcClient
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import (
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubReady,
    RequestApproved,
)
from jhaas_schemas.model import DeletionRecord, Principal, Role
from jhaas_schemas.rpc import GetRequest, HubRequest, RequestOps, SubmitRequest
from request_svc.app import build_app

pytestmark = pytest.mark.integration

LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
NO_ROOT = (
    "participants cannot sign in: the deployer does not run as root, so their servers "
    "could not be isolated from each other"
)
NO_LIMITS = "memory and CPU limits are not enforced by the kernel: /sys/fs/cgroup is read-only"


async def test_the_leader_sees_the_hubs_warnings_until_a_hub_without_them_or_its_deletion(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    settings = settings_for("request-svc")
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(settings.nats_url)
    try:
        client = RpcClient(nc)
        created = await client.call(
            RequestOps.SUBMIT,
            SubmitRequest(spec=sample_spec()),
            HubRequest,
            principal=LEADER,
            correlation_id="c-1",
        )
        request_id = created.request_id
        js = nc.jetstream()
        t0 = datetime.now(UTC)

        def at(seconds: float) -> dict[str, object]:
            return {
                **envelope(
                    source="deployer-svc", correlation_id="c-d", now=t0 + timedelta(seconds=seconds)
                ),
                "deployment_id": "d-1",
                "request_id": request_id,
            }

        async def seen() -> tuple[str, list[str]]:
            found = await client.call(
                RequestOps.GET,
                GetRequest(request_id=request_id),
                HubRequest,
                principal=LEADER,
                correlation_id="c-get",
            )
            return found.status, found.hub_warnings

        async def after(event: Event, expected: tuple[str, list[str]]) -> None:
            await publish(js, event)
            await eventually(seen, lambda got: got == expected)

        approved = RequestApproved(
            **envelope(source="governance-svc", correlation_id="c-g"),
            request_id=request_id,
            review_id="rv-1",
            leader_id=LEADER.user_id,
            decided_by="u-gov",
            revision=1,
            configuration=created.spec,
        )
        await after(approved, ("approved", []))
        url = "http://127.0.0.1:4001/"
        warned = HubReady(**at(1), url=url, warnings=(NO_ROOT, NO_LIMITS))  # type: ignore[arg-type]
        await after(warned, ("running", [NO_ROOT, NO_LIMITS]))
        # Rebuilt on the same host: what it cannot do still holds while it comes up.
        await after(HubDeploying(**at(2), attempt=1), ("deploying", [NO_ROOT, NO_LIMITS]))  # type: ignore[arg-type]
        # The operator gave the deployer root: the next hub can do everything.
        await after(HubReady(**at(3), url=url), ("running", []))  # type: ignore[arg-type]
        await after(HubReady(**at(4), url=url, warnings=(NO_LIMITS,)), ("running", [NO_LIMITS]))  # type: ignore[arg-type]
        await after(CourseEnded(**at(5)), ("ending", [NO_LIMITS]))  # type: ignore[arg-type]
        record = DeletionRecord(backend="local", deleted_at=t0 + timedelta(seconds=6))
        await after(HubDeleted(**at(6), record=record), ("deleted", []))  # type: ignore[arg-type]
    finally:
        await nc.close()
        await runtime.stop()
