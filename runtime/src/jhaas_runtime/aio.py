"""Small asyncio helpers that stay correct under cancellation.

Python 3.11's `asyncio.wait_for` returns the result instead of raising when the
awaited thing finishes in the same loop iteration as the cancellation arrives
(fixed in 3.12). A loop that waits for a wake-up event that way and is
cancelled just as it is woken swallows its cancellation and runs on, and
whoever awaits it at shutdown waits forever. Nothing in the services calls
`asyncio.wait_for` on a wake-up event; they call `wait_event`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True if it was set.

    A cancellation always propagates, also one that arrives as the event is set.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(tasks: Sequence[asyncio.Task[Any]], timeout: float) -> list[str]:
    """Cancel the tasks and wait at most `timeout` seconds for them to end.

    Returns the names of the tasks still running after that (one whose code
    swallowed the cancellation): the caller logs them and goes on, instead of
    hanging its own shutdown on them. Exceptions of ended tasks are retrieved
    here so that they are not reported again as "never retrieved".
    """
    for task in tasks:
        task.cancel()
    running = [t for t in tasks if not t.done()]
    if running:
        await asyncio.wait(running, timeout=timeout)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
    return [t.get_name() for t in tasks if not t.done()]
