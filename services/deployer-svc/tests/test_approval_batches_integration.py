"""Approvals that arrive together, in one fetched batch, follow the same rules
as one by one: one deployment per request (the first approval's), none for a
request cancelled before its approval, a redelivered approval skipped; each
emits what it would alone, and the scheduler hears of them once they are
committed. Real NATS JetStream, SQLite and PostgreSQL."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from sqlalchemy.engine import Connection

from deployer_svc.app import GOVERNANCE_CONSUMER, build_app
from deployer_svc.domain import DeploymentRecord
from deployer_svc.scheduler import Scheduler
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository
from jhaas_launcher.testing import create_streams, eventually, publish, sample_spec
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    DeploymentScheduled,
    HubDeleted,
    RequestApproved,
    RequestCancelled,
)
from jhaas_schemas.rpc import DeploymentState

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import deployer_events

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)


def approval(request_id: str, *, leader: str = "u-leader", days: int = 0) -> RequestApproved:
    start = START + timedelta(days=days)
    return RequestApproved(
        **envelope(source="governance-svc", correlation_id=f"c-{uuid.uuid4().hex[:8]}"),
        request_id=request_id,
        review_id=str(uuid.uuid4()),
        leader_id=leader,
        decided_by="u-gov",
        revision=1,
        configuration=sample_spec(starts_at=start, ends_at=start + timedelta(days=30)),
    )


def stored(conn: Connection) -> dict[str, DeploymentRecord]:
    return {r.request_id: r for r in DeploymentRepository(conn).list_deployments()}


async def handled(runtime: ServiceRuntime, count: int) -> None:
    [consumer] = [c for c in runtime.consumers if c.name == GOVERNANCE_CONSUMER]

    async def done() -> bool:
        return consumer.handled + consumer.duplicates >= count

    await eventually(done)


async def test_approvals_in_one_batch_follow_the_rules_of_one_by_one(
    settings_for: Callable[..., RuntimeSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    told: list[tuple[datetime | None, set[str]]] = []
    original = Scheduler.notify

    def notify(self: Scheduler, at: datetime | None = None) -> None:
        with runtime.db.engine.connect() as conn:  # another connection: sees only commits
            told.append((at, set(stored(conn))))
        original(self, at)

    monkeypatch.setattr(Scheduler, "notify", notify)
    settings = DeployerSettings(runtime=settings_for("deployer-svc"))
    await create_streams(settings.runtime.nats_url)
    nc = await nats.connect(settings.runtime.nats_url)
    js = nc.jetstream()
    runtime = build_app(settings)
    try:
        # Before: a request with a deployment, and a cancellation ahead of its approval.
        earlier = approval("r-earlier")
        await runtime.start()
        await publish(js, earlier)
        await publish(
            js,
            RequestCancelled(
                **envelope(source="request-svc", correlation_id="c"),
                request_id="r-gone",
                cancelled_by="u",
            ),
        )

        def cancelled(conn: Connection) -> bool:
            return DeploymentRepository(conn).cancelled_before_approval("r-gone")

        await eventually(lambda: runtime.db.read(cancelled))
        await handled(runtime, 1)
        before = (await runtime.db.read(stored))["r-earlier"]
        await runtime.stop()

        # Then, while the service is down, a backlog the next start fetches in one batch.
        first = approval("r-1", days=3)
        batch = [
            first,
            approval("r-earlier", leader="u-other"),
            approval("r-gone"),
            approval("r-1", leader="u-other", days=1),  # a second approval of r-1
            approval("r-2", days=2),
        ]
        for event in batch:
            await publish(js, event)
        await publish(js, first, msg_id="redelivered")
        told.clear()
        runtime = build_app(settings)
        await runtime.start()
        await handled(runtime, 6)  # counted anew by the new process

        after = await runtime.db.read(stored)
        assert set(after) == {"r-earlier", "r-1", "r-2", "r-gone"}
        assert after["r-earlier"] == before
        assert (after["r-1"].leader_id, after["r-1"].starts_at) == (
            "u-leader",
            START + timedelta(days=3),
        )
        assert after["r-2"].state == DeploymentState.SCHEDULED
        assert after["r-gone"].state == DeploymentState.DELETED
        # Told once, after the commit, of the earliest that the batch made due.
        deploy_at = START + timedelta(days=2) - settings.lead_time
        assert told[0] == (deploy_at, {"r-earlier", "r-1", "r-2", "r-gone"})

        async def emitted() -> list[tuple[str, str]]:
            events = await deployer_events(js)
            return [(type(e).__name__, getattr(e, "request_id", "")) for e in events]

        expected = [
            ("DeploymentScheduled", "r-earlier"),
            ("DeploymentScheduled", "r-1"),
            ("HubDeleted", "r-gone"),
            ("DeploymentScheduled", "r-2"),
        ]
        assert await eventually(emitted, lambda e: len(e) >= 4) == expected
        causes = {
            e.request_id: e.causation_id
            for e in await deployer_events(js)
            if isinstance(e, DeploymentScheduled | HubDeleted)
        }
        assert causes["r-1"] == first.event_id
        assert causes["r-2"] == batch[4].event_id
        assert causes["r-gone"] == batch[2].event_id
    finally:
        await nc.close()
        await runtime.stop()
