"""A service stops when asked, also when it is asked at an awkward moment.

The test suite once hung for its whole timeout because a service's outbox
relay, woken by a commit in the same loop iteration as it was cancelled,
swallowed the cancellation (Python 3.11's asyncio.wait_for) and its shutdown
waited for it forever.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import sample_submitted
from jhaas_runtime.outbox import OutboxRelay
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.streams import REQUEST_STREAM

sys.path.insert(0, str(Path(__file__).parent))
from counter_service import SERVICE, build, messaging

pytestmark = pytest.mark.integration

HANG_GUARD = 60.0  # far above any real stop; only there so a regression fails instead of hanging


async def test_a_relay_woken_and_cancelled_at_once_stops(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    runtime = build(settings_for(SERVICE))
    await runtime.start()
    try:
        relay = OutboxRelay(runtime.db, messaging.outbox, runtime.js)
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.2)  # idle: waiting to be woken
        relay.notify()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=HANG_GUARD)
        assert done == {task}
        assert task.cancelled()
    finally:
        await runtime.stop()


async def test_stop_right_after_a_commit_publishes_the_event_once_and_returns(
    settings_for: Callable[..., RuntimeSettings], nats_server: NatsServer
) -> None:
    runtime = build(settings_for(SERVICE))
    await runtime.start()
    event = sample_submitted("r-stop")
    await runtime.write(lambda uow: uow.emit(event))
    async with asyncio.timeout(HANG_GUARD):
        await runtime.stop()

    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().stream_info(REQUEST_STREAM.name)
        assert info.state.messages == 1
    finally:
        await nc.close()


async def test_a_background_loop_that_ignores_cancellation_cannot_hang_the_stop(
    settings_for: Callable[..., RuntimeSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                if release.is_set():
                    raise

    runtime = build(settings_for(SERVICE))
    runtime.add_background("stubborn-loop", stubborn)
    runtime.stop_grace_seconds = 0.5
    await runtime.start()
    await asyncio.sleep(0.1)
    async with asyncio.timeout(HANG_GUARD):
        await runtime.stop()
    left = [t for t in asyncio.all_tasks() if t.get_name() == "stubborn-loop"]
    release.set()  # let it end now, or the test's loop could not close
    for task in left:
        task.cancel()
    await asyncio.wait(left, timeout=HANG_GUARD)
    assert all(t.cancelled() for t in left)
    out = capsys.readouterr().out
    assert "tasks did not stop when cancelled" in out
    assert "stubborn-loop" in out
    assert "service stopped" in out
    assert len(left) == 1
