"""Another institution's read-only credential: it subscribes to the event
streams through a durable consumer of its own, and does nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from jhaas_launcher.natsauth import NATS_ADMIN
from jhaas_launcher.testing import Peer
from jhaas_runtime.messaging import ensure_streams
from jhaas_schemas.bus import GOVERNANCE_SVC_REQUESTS
from jhaas_schemas.streams import ALL_STREAMS, DEAD_LETTER_STREAM, EVENT_STREAMS

pytestmark = pytest.mark.integration

ConnectAs = Callable[[str], Awaitable[Peer]]
JS_API = "$JS.API"


@pytest.fixture
async def streams(peer: ConnectAs) -> Peer:
    """Every stream, one event in each event stream, and one dead letter."""
    admin = await peer(NATS_ADMIN)
    js = admin.nc.jetstream()
    await ensure_streams(js, 1, ALL_STREAMS)
    for stream in EVENT_STREAMS:
        await js.publish(stream.subjects[0].replace(">", "Sample.v1"), stream.name.encode())
    await js.publish("jhaas.dlq.governance-svc-requests.jhaas.evt.request.x.v1", b"dead")
    return admin


async def test_a_reader_consumes_every_event_stream(
    peer: ConnectAs, streams: Peer, reader: str
) -> None:
    me = await peer(reader)
    js = me.nc.jetstream()
    for stream in EVENT_STREAMS:
        await js.add_consumer(
            stream.name,
            ConsumerConfig(
                durable_name=reader,
                filter_subjects=[stream.subjects[0]],
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
        sub = await js.pull_subscribe_bind(durable=reader, stream=stream.name)
        [msg] = await sub.fetch(1, timeout=5)
        assert msg.data == stream.name.encode()
        await msg.ack_sync()
        assert (await js.stream_info(stream.name)).state.messages == 1
        await sub.unsubscribe()
    assert me.violations == []


async def test_a_reader_cannot_publish_call_or_listen(
    peer: ConnectAs, streams: Peer, reader: str
) -> None:
    me = await peer(reader)
    for stream in EVENT_STREAMS:
        assert await me.publish_refused(stream.subjects[0].replace(">", "RequestApproved.v1"))
        assert await me.publish_refused(f"{JS_API}.STREAM.PURGE.{stream.name}")
        assert await me.publish_refused(f"{JS_API}.STREAM.DELETE.{stream.name}")
        assert await me.publish_refused(f"{JS_API}.STREAM.UPDATE.{stream.name}")
    assert await me.publish_refused("jhaas.rpc.request.submit")
    assert await me.publish_refused("jhaas.rpc.governance.health")
    # Not a service's consumer: neither reshaped, nor read, nor acknowledged.
    stream, name = GOVERNANCE_SVC_REQUESTS.stream.name, GOVERNANCE_SVC_REQUESTS.name
    assert await me.publish_refused(f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{name}")
    assert await me.publish_refused(f"{JS_API}.CONSUMER.CREATE.{stream}.{name}")
    assert await me.publish_refused(f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}")
    assert await me.publish_refused(f"$JS.ACK.{stream}.{name}.1.1.1.1.0")
    # Not the dead letters (they carry failure details), not even its own consumer there.
    dead = DEAD_LETTER_STREAM.name
    assert await me.publish_refused(f"{JS_API}.CONSUMER.DURABLE.CREATE.{dead}.{reader}")
    assert await me.publish_refused(f"{JS_API}.STREAM.MSG.GET.{dead}")
    assert await me.publish_refused(f"{JS_API}.DIRECT.GET.{dead}")
    # No RPC traffic (it carries who calls), no one's replies, no bus-wide listening.
    for subject in ("jhaas.rpc.>", "_INBOX.gateway.>", "jhaas.evt.>", "jhaas.dlq.>", ">"):
        assert await me.subscribe_refused(subject)
    admin_js = streams.nc.jetstream()
    for stream_definition in EVENT_STREAMS:
        info = await admin_js.stream_info(stream_definition.name)
        assert info.state.messages == 1, "a refused publish reached a stream"
