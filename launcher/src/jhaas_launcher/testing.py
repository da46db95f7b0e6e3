"""Helpers the test suites share: sample data, event publishing, and waiting
for an observable condition with a deadline (never a blind sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from jhaas_launcher.natsauth import Credentials
from jhaas_runtime.messaging import ensure_streams, inbox_prefix
from jhaas_schemas.envelope import Event, cloudevents_headers, envelope
from jhaas_schemas.events import RequestSubmitted, encode_event
from jhaas_schemas.model import HubSpec, Resources
from jhaas_schemas.streams import ALL_STREAMS

T = TypeVar("T")


def sample_spec(**overrides: object) -> HubSpec:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    values: dict[str, object] = {
        "title": "Data Science 101",
        "slug": "ds101",
        "description": "Introductory course",
        "starts_at": start,
        "ends_at": start + timedelta(days=90),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "default_interface": "lab",
        "resources": Resources(cpu="1", memory="2Gi", storage="5Gi"),
        "expected_participants": 30,
    }
    values.update(overrides)
    return HubSpec(**values)  # type: ignore[arg-type]


def sample_submitted(request_id: str = "r-1", **spec_overrides: object) -> RequestSubmitted:
    return RequestSubmitted(
        **envelope(source="test", correlation_id=f"corr-{request_id}"),
        request_id=request_id,
        leader_id="u-leader",
        revision=1,
        spec=sample_spec(**spec_overrides),
    )


async def create_streams(url: str) -> None:
    """Every stream, as in a running installation. A service creates only its
    own; a test or benchmark that runs one service and publishes another
    context's events itself (on a server without authorization) calls this."""
    nc = await nats.connect(url)
    try:
        await ensure_streams(nc.jetstream(), replicas=1, definitions=ALL_STREAMS)
    finally:
        await nc.close()


async def publish(js: JetStreamContext, event: Event, *, msg_id: str | None = None) -> None:
    """Publish like a service's relay would; `msg_id` forces a copy JetStream cannot drop
    (as a redelivery after a publisher crash outside the duplicate window would be)."""
    headers = cloudevents_headers(event)
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    ack = await js.publish(event.subject, encode_event(event), headers=headers)
    assert not ack.duplicate, f"JetStream dropped {event.subject} as a duplicate"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool] = bool,
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Poll `probe` until `accept(value)`; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value


@dataclass
class Peer:
    """A connection with one principal's NATS credential; it records what the server refuses."""

    principal: str
    nc: NATS
    violations: list[str] = field(default_factory=list)

    async def publish_refused(self, subject: str, data: bytes = b"{}") -> bool:
        """Publish; True once the server reports the permissions violation.
        The report comes asynchronously (nats-py may send a flush's PING before
        buffered messages), so this waits for it, up to a deadline."""
        await self.nc.publish(subject, data, reply=f"{inbox_prefix(self.principal)}.probe")
        return await self._refused("publish", subject)

    async def subscribe_refused(self, subject: str) -> bool:
        sub = await self.nc.subscribe(subject)
        refused = await self._refused("subscription", subject)
        await sub.unsubscribe()
        return refused

    async def _refused(self, what: str, subject: str) -> bool:
        # nats-py lower-cases the server's error, subject included.
        expected = f'permissions violation for {what} to "{subject.lower()}"'

        async def reported() -> bool:
            await self.nc.flush()
            return expected in "\n".join(self.violations)

        try:
            await eventually(reported, timeout=5.0)
        except AssertionError:
            return False
        return True


async def connect_as(url: str, credentials: Credentials, principal: str) -> Peer:
    peer: Peer

    async def on_error(exc: Exception) -> None:
        peer.violations.append(str(exc))

    nc = await nats.connect(
        url,
        nkeys_seed=str(credentials.seed_file(principal)),
        inbox_prefix=inbox_prefix(principal),
        error_cb=on_error,
        allow_reconnect=False,
    )
    peer = Peer(principal, nc)
    return peer
