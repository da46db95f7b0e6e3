"""The outbox survives a crash: request-svc killed between its database commit and
its publish still publishes after restart, and killed between publish and
bookkeeping does not publish twice (JetStream drops the `Nats-Msg-Id` copy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually, sample_spec
from jhaas_runtime.db import Database
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import Health, HealthCheck
from jhaas_schemas.events import RequestSubmitted, decode_event
from jhaas_schemas.model import Principal, Role
from jhaas_schemas.rpc import ErrorCode, HubRequest, RequestOps, SubmitRequest
from jhaas_schemas.streams import REQUEST_STREAM
from request_svc.store import hub_requests, messaging

pytestmark = pytest.mark.integration

LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))


def start_request_svc(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "request_svc"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(client: RpcClient) -> None:
    async def answers() -> bool:
        try:
            await client.call(
                "jhaas.rpc.request.health",
                HealthCheck(),
                Health,
                principal=LEADER,
                correlation_id="ready",
            )
        except RpcFailure:
            return False
        return True

    await eventually(answers, timeout=60)


async def published_submissions(nc: nats.NATS) -> list[RequestSubmitted]:
    js = nc.jetstream()
    info = await js.stream_info(REQUEST_STREAM.name)
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        msg = await js.get_msg(REQUEST_STREAM.name, seq)
        event = decode_event(msg.data or b"")
        assert isinstance(event, RequestSubmitted)
        events.append(event)
    return events


@pytest.mark.parametrize("failpoint", ["after-commit", "after-publish"])
async def test_killed_service_publishes_each_committed_event_exactly_once(
    failpoint: str, nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(
        {
            "JHAAS_NATS_URL": nats_server.url,
            "JHAAS_DATA_DIR": str(tmp_path),
            "JHAAS_REQUEST_SVC_DATABASE_URL": database_url,
            "JHAAS_FAILPOINTS": failpoint,
        }
    )
    nc = await nats.connect(nats_server.url)
    client = RpcClient(nc, timeout=3)
    db = Database(database_url)
    first = start_request_svc(env)
    try:
        await wait_ready(client)
        try:
            await client.call(
                RequestOps.SUBMIT,
                SubmitRequest(spec=sample_spec()),
                HubRequest,
                principal=LEADER,
                correlation_id="c-crash",
            )
            answered: ErrorCode | None = None
        except RpcFailure as exc:
            answered = exc.error.code
        # After the commit the process dies before replying; after the publish
        # it has replied already (the relay runs after the reply).
        assert answered == (None if failpoint == "after-publish" else ErrorCode.UNAVAILABLE)
        assert first.wait(timeout=30) == 137  # died like SIGKILL at the failpoint

        request_id = await db.read(lambda conn: conn.scalar(sa.select(hub_requests.c.request_id)))
        unpublished = await db.read(
            lambda conn: conn.scalar(
                sa.select(sa.func.count()).where(messaging.outbox.c.published_at.is_(None))
            )
        )
        assert request_id is not None, "the request was committed before the crash"
        assert unpublished == 1
        before_restart = await published_submissions(nc)
        assert len(before_restart) == (0 if failpoint == "after-commit" else 1)

        env.pop("JHAAS_FAILPOINTS")
        second = start_request_svc(env)
        try:
            await wait_ready(client)

            async def outbox_pending() -> int:
                return int(
                    await db.read(
                        lambda conn: conn.scalar(
                            sa.select(sa.func.count()).where(
                                messaging.outbox.c.published_at.is_(None)
                            )
                        )
                    )
                    or 0
                )

            await eventually(outbox_pending, lambda n: n == 0)
            events = await published_submissions(nc)
            assert [e.request_id for e in events] == [request_id]
            assert events[0].correlation_id == "c-crash"
        finally:
            second.terminate()
            assert second.wait(timeout=15) == 0
    finally:
        if first.poll() is None:
            first.kill()
        await db.dispose()
        await nc.close()
