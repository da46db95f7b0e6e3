"""The asyncio helpers every wake-up loop and every shutdown relies on."""

from __future__ import annotations

import asyncio

import pytest

from jhaas_runtime.aio import cancel_and_wait, wait_event

pytestmark = pytest.mark.unit


async def wake_up_loop(wake: asyncio.Event, rounds: list[int]) -> None:
    """The shape of the outbox relay and the scheduler: work, then sleep until woken."""
    while True:
        rounds.append(len(rounds))
        await wait_event(wake, 5.0)
        wake.clear()


async def test_a_loop_cancelled_as_it_is_woken_stops() -> None:
    # The hang this guards against: on Python 3.11, a loop waiting with
    # asyncio.wait_for(event.wait()) that is woken and cancelled in the same
    # iteration swallows the cancellation and runs on; a shutdown awaiting it
    # then waits forever.
    wake, rounds = asyncio.Event(), []
    task = asyncio.create_task(wake_up_loop(wake, rounds))
    await asyncio.sleep(0.01)
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done == {task}
    assert task.cancelled()


async def test_wait_event_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5.0) is True


async def test_cancel_and_wait_names_the_tasks_that_would_not_stop() -> None:
    give_up = asyncio.Event()

    async def stubborn() -> None:
        while not give_up.is_set():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue  # a library that swallows the cancellation

    async def failing() -> None:
        raise RuntimeError("boom")

    async def obedient() -> None:
        await asyncio.sleep(60)

    tasks = [
        asyncio.create_task(stubborn(), name="stubborn"),
        asyncio.create_task(failing(), name="failing"),
        asyncio.create_task(obedient(), name="obedient"),
    ]
    await asyncio.sleep(0)
    assert await cancel_and_wait(tasks, 0.2) == ["stubborn"]
    assert tasks[2].cancelled()
    assert isinstance(tasks[1].exception(), RuntimeError)
    give_up.set()  # let the test's loop close
    assert await cancel_and_wait(tasks, 10) == []
