"""An approval and a cancellation of one request, handled at the same instant by
two transactions on PostgreSQL (the deployer's two consumers, or two replicas):
whichever commits first, the course gets no hub. Under READ COMMITTED each
transaction could miss the other's uncommitted row; the per-request lock makes
the second wait. (On SQLite one writer at a time rules the race out.)"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from deployer_svc.app import build_app
from deployer_svc.domain import DeploymentRecord
from deployer_svc.handlers import DeployerHandlers, DueTimes
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import VERSIONS_DIR, DeploymentRepository, metadata
from jhaas_launcher.processes import NatsServer, PostgresServer
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import RequestApproved, RequestCancelled
from jhaas_schemas.rpc import DeploymentState

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
# Long enough for the second transaction to run to its end when nothing holds it.
RACE_WINDOW = 1.0


def approved(request_id: str) -> RequestApproved:
    return RequestApproved(
        **envelope(source="governance-svc", correlation_id="c-approve"),
        request_id=request_id,
        review_id=str(uuid.uuid4()),
        leader_id="u-leader",
        decided_by="u-gov",
        revision=1,
        configuration=sample_spec(starts_at=START, ends_at=START + timedelta(days=30)),
    )


def cancelled(request_id: str) -> RequestCancelled:
    return RequestCancelled(
        **envelope(source="request-svc", correlation_id="c-cancel"),
        request_id=request_id,
        cancelled_by="u-leader",
    )


@pytest.fixture
async def deployer(
    postgres_server: PostgresServer, nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[tuple[ServiceRuntime, DeployerHandlers]]:
    url = postgres_server.create_database(f"race_{uuid.uuid4().hex[:10]}")
    env = {"JHAAS_NATS_URL": nats_server.url, "JHAAS_DEPLOYER_SVC_DATABASE_URL": url}
    runtime_settings = RuntimeSettings.from_env(
        "deployer-svc", env | {"JHAAS_DATA_DIR": str(tmp_path)}
    )
    runtime = build_app(DeployerSettings(runtime=runtime_settings))
    await upgrade_to_head(runtime.db, metadata, VERSIONS_DIR)
    handlers = DeployerHandlers(runtime, lead_time=timedelta(minutes=30))
    try:
        yield runtime, handlers
    finally:
        await runtime.db.dispose()


Handle = Callable[[Connection], object]


def race(runtime: ServiceRuntime, first: Handle, second: Handle) -> None:
    """`first` runs in a transaction that stays open while `second` runs in another;
    then `first` commits, and `second` is waited for."""
    engine = runtime.db.engine
    first_done, release = threading.Event(), threading.Event()

    def hold_first() -> None:
        with engine.begin() as conn:
            first(conn)
            first_done.set()
            release.wait(10)

    def run_second() -> None:
        with engine.begin() as conn:
            second(conn)

    holder = threading.Thread(target=hold_first)
    holder.start()
    assert first_done.wait(10)
    racer = threading.Thread(target=run_second)
    racer.start()
    racer.join(RACE_WINDOW)  # unlocked, the second one is through by now

    release.set()
    holder.join(10)
    racer.join(10)
    assert not holder.is_alive() and not racer.is_alive()


def deployment_of(runtime: ServiceRuntime, request_id: str) -> DeploymentRecord | None:
    with runtime.db.engine.connect() as conn:
        return DeploymentRepository(conn).for_request(request_id)


def on_approval(handlers: DeployerHandlers, event: Event) -> Handle:
    return lambda conn: handlers.on_requests_approved(conn, [event], due=DueTimes())


def on_cancellation(handlers: DeployerHandlers, event: Event) -> Handle:
    return lambda conn: handlers.on_request_cancelled(conn, event, due=DueTimes())


async def test_a_cancellation_during_the_approval_cancels_the_new_deployment(
    deployer: tuple[ServiceRuntime, DeployerHandlers],
) -> None:
    runtime, handlers = deployer
    race(
        runtime,
        on_approval(handlers, approved("r-1")),
        on_cancellation(handlers, cancelled("r-1")),
    )
    record = deployment_of(runtime, "r-1")
    assert record is not None
    # Cancelled before any hub was built: closed at once, nothing to tear down.
    assert record.state == DeploymentState.DELETED


async def test_an_approval_during_the_cancellation_schedules_nothing(
    deployer: tuple[ServiceRuntime, DeployerHandlers],
) -> None:
    runtime, handlers = deployer
    race(
        runtime,
        on_cancellation(handlers, cancelled("r-2")),
        on_approval(handlers, approved("r-2")),
    )
    record = deployment_of(runtime, "r-2")
    # The approval saw the cancellation: the course is closed at once, never built.
    assert record is not None
    assert record.state == DeploymentState.DELETED
