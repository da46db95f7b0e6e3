"""Event consumers on a real JetStream and real databases: one effect per event
(inbox), bounded redelivery, dead letters, and recovery after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually, publish, sample_submitted
from jhaas_runtime.db import Database
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.streams import DEAD_LETTER_STREAM, REQUEST_STREAM

sys.path.insert(0, str(Path(__file__).parent))
import counter_service

pytestmark = pytest.mark.integration


async def effect_count(db: Database, request_id: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(counter_service.effects)
    if request_id:
        query = query.where(counter_service.effects.c.request_id == request_id)
    return int(await db.read(lambda conn: conn.scalar(query)) or 0)


@pytest.fixture
async def counter(settings_for: Callable[..., RuntimeSettings]) -> Iterator[ServiceRuntime]:
    runtime = counter_service.build(settings_for(counter_service.SERVICE, max_deliver=3))
    runtime.consumers[0].backoff_seconds = (0.05, 0.05, 0.05)
    await runtime.start()
    yield runtime  # type: ignore[misc]
    await runtime.stop()


async def jetstream(url: str) -> tuple[nats.NATS, JetStreamContext]:
    nc = await nats.connect(url)
    return nc, nc.jetstream()


async def test_same_event_delivered_twice_has_one_effect(
    counter: ServiceRuntime, nats_server: NatsServer
) -> None:
    nc, js = await jetstream(nats_server.url)
    event = sample_submitted("r-dup")
    # Different Nats-Msg-Ids: JetStream stores both copies, as after a relay
    # crash outside the duplicate window; only the inbox stands in the way.
    await publish(js, event, msg_id="copy-1")
    await publish(js, event, msg_id="copy-2")
    await publish(js, sample_submitted("r-other"))
    await eventually(lambda: effect_count(counter.db, "r-other"), lambda n: n == 1)
    await eventually(lambda: _acked(js), lambda n: n == 3)
    assert await effect_count(counter.db, "r-dup") == 1
    await nc.close()


async def _acked(js: JetStreamContext) -> int:
    info = await js.consumer_info(REQUEST_STREAM.name, "counter-svc-requests")
    return int(info.ack_floor.stream_seq if info.ack_floor else 0)


async def test_undecodable_and_failing_events_go_to_dead_letter_and_consumer_goes_on(
    counter: ServiceRuntime, nats_server: NatsServer
) -> None:
    nc, js = await jetstream(nats_server.url)
    await js.publish(
        "jhaas.evt.request.submitted.v1", b"{not json", headers={"Nats-Msg-Id": "garbage"}
    )
    await js.publish(
        "jhaas.evt.request.submitted.v1",
        b'{"type": "jhaas.evt.request.submitted.v1", "request_id": 5}',
        headers={"Nats-Msg-Id": "wrong-shape"},
    )
    await publish(js, sample_submitted("r-fails", title="fail always"))
    await publish(js, sample_submitted("r-after"))

    await eventually(lambda: effect_count(counter.db, "r-after"), lambda n: n == 1)

    async def dead_letters() -> int:
        return int((await js.stream_info(DEAD_LETTER_STREAM.name)).state.messages)

    assert await eventually(dead_letters, lambda n: n == 3) == 3
    sub = await js.pull_subscribe("jhaas.dlq.>", durable="probe", stream=DEAD_LETTER_STREAM.name)
    reasons = {}
    for msg in await sub.fetch(3, timeout=5):
        assert msg.subject == "jhaas.dlq.counter-svc-requests.jhaas.evt.request.submitted.v1"
        assert msg.headers is not None
        reasons[msg.data[:12]] = msg.headers["jhaas-dead-letter-reason"]
        await msg.ack()
    assert any(r.startswith("undecodable") for r in reasons.values())
    failed = [r for r in reasons.values() if r.startswith("handler failed")]
    assert len(failed) == 1
    assert "fails for titles" in failed[0]
    assert counter.consumers[0].dead_lettered == 3
    assert await effect_count(counter.db, "r-fails") == 0
    await nc.close()


def _run_counter(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(Path(counter_service.__file__))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_crash_after_commit_before_ack_redelivers_without_second_effect(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(
        {
            "JHAAS_NATS_URL": nats_server.url,
            "JHAAS_DATA_DIR": str(tmp_path),
            "JHAAS_COUNTER_SVC_DATABASE_URL": database_url,
            "JHAAS_ACK_WAIT_SECONDS": "1",
            "JHAAS_FAILPOINTS": "consumer-after-commit",
        }
    )
    nc, js = await jetstream(nats_server.url)
    first = _run_counter(env)
    db = Database(database_url)
    try:
        await eventually(lambda: _stream_exists(js), timeout=30)
        await publish(js, sample_submitted("r-crash"))
        # The process commits the effect, then dies like SIGKILL before acking.
        assert first.wait(timeout=30) == 137
        assert await effect_count(db, "r-crash") == 1

        env.pop("JHAAS_FAILPOINTS")
        second = _run_counter(env)
        try:
            # JetStream redelivers the unacked event; the inbox skips it and acks.
            await eventually(lambda: _acked(js), lambda n: n == 1, timeout=30)
            assert await effect_count(db, "r-crash") == 1
        finally:
            second.terminate()
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        await db.dispose()
        await nc.close()


async def _stream_exists(js: JetStreamContext) -> bool:
    try:
        await js.consumer_info(REQUEST_STREAM.name, "counter-svc-requests")
    except nats.js.errors.NotFoundError:
        return False
    return True


async def test_consumer_settings_change_does_not_replay_the_stream(
    counter: ServiceRuntime, nats_server: NatsServer
) -> None:
    nc, js = await jetstream(nats_server.url)
    await publish(js, sample_submitted("r-before"))
    await eventually(lambda: effect_count(counter.db, "r-before"), lambda n: n == 1)
    await eventually(lambda: _acked(js), lambda n: n == 1)
    consumer = counter.consumers[0]
    consumer.ack_wait_seconds = 7.0  # editable: updated in place
    await consumer.ensure(js)
    info = await js.consumer_info(REQUEST_STREAM.name, consumer.name)
    assert info.config.ack_wait == 7.0
    assert info.ack_floor is not None
    assert info.ack_floor.stream_seq == 1
    consumer.consumer_config = _with_ack_policy_all(consumer.consumer_config)  # type: ignore[method-assign]
    await consumer.ensure(js)  # not editable: recreated from the ack floor
    info = await js.consumer_info(REQUEST_STREAM.name, consumer.name)
    assert info.num_pending == 0
    assert info.config.opt_start_seq == 2
    await nc.close()


def _with_ack_policy_all(make: Callable[[], ConsumerConfig]) -> Callable[[], ConsumerConfig]:
    def changed() -> ConsumerConfig:
        config = make()
        config.ack_policy = AckPolicy.ALL
        return config

    return changed
