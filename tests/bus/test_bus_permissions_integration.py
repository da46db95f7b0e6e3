"""What each NATS credential may and may not do, against a real nats-server
running with the authorization `./jhaas up` generates. A refusal is what the
server itself reports to the client (a permissions violation), and nothing
refused ends up in a stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import nats
import nats.errors
import nkeys
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from jhaas_launcher.natsauth import GATEWAY, LAUNCHER, NATS_ADMIN, Credentials, apply_streams
from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import Peer
from jhaas_runtime.messaging import ensure_streams
from jhaas_schemas.bus import ROLES
from jhaas_schemas.streams import ALL_STREAMS, DEAD_LETTER_STREAM, EVENT_STREAMS, REQUEST_STREAM

pytestmark = pytest.mark.integration

ConnectAs = Callable[[str], Awaitable[Peer]]
SERVICES = sorted(ROLES)
JS_API = "$JS.API"


def others(service: str) -> list[str]:
    return [s for s in SERVICES if s != service]


async def test_a_connection_without_credentials_is_refused(secure_nats: NatsServer) -> None:
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        await nats.connect(secure_nats.url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_a_key_the_server_does_not_know_is_refused(secure_nats: NatsServer) -> None:
    stranger = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER).decode()
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        await nats.connect(
            secure_nats.url,
            nkeys_seed_str=stranger,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_speaks_only_for_itself(peer: ConnectAs, service: str) -> None:
    me = await peer(service)
    role = ROLES[service]
    for other in others(service):
        them = ROLES[other]
        # Another context's events, a dead letter of another's consumer, its stream.
        assert await me.publish_refused(f"jhaas.evt.{them.context}.RequestApproved.v1")
        for consumer in them.consumers:
            assert await me.publish_refused(f"jhaas.dlq.{consumer.name}.jhaas.evt.x.v1")
            create = f"{JS_API}.CONSUMER.DURABLE.CREATE.{consumer.stream.name}.{consumer.name}"
            assert await me.publish_refused(create)
            assert await me.publish_refused(f"$JS.ACK.{consumer.stream.name}.{consumer.name}.1")
        assert await me.publish_refused(f"{JS_API}.STREAM.UPDATE.{them.stream.name}")
        assert await me.publish_refused(f"{JS_API}.STREAM.CREATE.{them.stream.name}")
        # It neither hears another's calls nor reads anyone's replies.
        assert await me.subscribe_refused(f"jhaas.rpc.{them.context}.>")
        assert await me.subscribe_refused(f"_INBOX.{other}.>")
    # Only the gateway sends RPC requests: not even to itself.
    assert await me.publish_refused(f"jhaas.rpc.{role.context}.health")
    assert await me.publish_refused("jhaas.rpc.governance.approve")
    assert await me.subscribe_refused(f"_INBOX.{GATEWAY}.>")
    assert await me.subscribe_refused("jhaas.evt.>")
    # Its own stream: created, never changed (a change could make it capture RPC calls).
    for verb in ("UPDATE", "DELETE", "PURGE"):
        assert await me.publish_refused(f"{JS_API}.STREAM.{verb}.{role.stream.name}")
        assert await me.publish_refused(f"{JS_API}.STREAM.{verb}.{DEAD_LETTER_STREAM.name}")


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_does_what_it_needs(peer: ConnectAs, service: str) -> None:
    admin = await peer(NATS_ADMIN)
    await ensure_streams(admin.nc.jetstream(), 1, EVENT_STREAMS)
    me = await peer(service)
    js = me.nc.jetstream()
    role = ROLES[service]
    # Its own stream and the dead-letter stream: created and updated by itself.
    await ensure_streams(js, 1, (role.stream, DEAD_LETTER_STREAM))
    await ensure_streams(js, 1, (role.stream, DEAD_LETTER_STREAM))
    own_event = f"jhaas.evt.{role.context}.Probed.v1"
    ack = await js.publish(own_event, b"{}")
    assert ack.stream == role.stream.name
    for consumer in role.consumers:
        sample = consumer.stream.subjects[0].replace(">", "Sample.v1")
        await admin.nc.jetstream().publish(sample, b"{}")
        await js.add_consumer(
            consumer.stream.name,
            ConsumerConfig(durable_name=consumer.name, ack_policy=AckPolicy.EXPLICIT),
        )
        sub = await js.pull_subscribe_bind(durable=consumer.name, stream=consumer.stream.name)
        [msg] = await sub.fetch(1, timeout=5)
        dead = await js.publish(f"jhaas.dlq.{consumer.name}.{msg.subject}", msg.data)
        assert dead.stream == DEAD_LETTER_STREAM.name
        await msg.ack_sync()
        assert (await js.consumer_info(consumer.stream.name, consumer.name)).num_ack_pending == 0
    assert me.violations == []


async def test_only_the_operator_changes_a_stream(
    peer: ConnectAs, secure_nats: NatsServer, credentials: Credentials
) -> None:
    service = await peer("request-svc")
    await ensure_streams(service.nc.jetstream(), 1, (REQUEST_STREAM,))
    # A compromised request-svc widens its stream to capture every RPC call.
    widened = msgspec.structs.replace(
        REQUEST_STREAM, subjects=(*REQUEST_STREAM.subjects, "jhaas.rpc.>")
    )
    await ensure_streams(service.nc.jetstream(), 1, (widened,))  # warns, goes on
    assert await service.publish_refused(f"{JS_API}.STREAM.UPDATE.{REQUEST_STREAM.name}")
    admin = (await peer(NATS_ADMIN)).nc.jetstream()
    info = await admin.stream_info(REQUEST_STREAM.name)
    assert info.config.subjects == list(REQUEST_STREAM.subjects)

    # The operator's tool creates the rest and brings a changed stream back.
    info.config.description = "changed by hand"
    await admin.update_stream(info.config)
    await apply_streams(secure_nats.url, credentials.seed_file(NATS_ADMIN), replicas=1)
    for stream in ALL_STREAMS:
        config = (await admin.stream_info(stream.name)).config
        assert config.description == stream.description


async def received_by_admin(peer: ConnectAs, sender: Peer, subject: str) -> bool:
    """Whether a message `sender` publishes to `subject` reaches a subscriber."""
    admin = await peer(NATS_ADMIN)
    sub = await admin.nc.subscribe(subject)
    await admin.nc.flush()
    try:
        # Sent again every half second, up to 5 s: on a loaded machine one
        # message once went missing for 5 s (seen once in CI); a refusal is
        # never a matter of time, so this does not hide one.
        for _attempt in range(10):
            await sender.nc.publish(subject, b"{}")
            await sender.nc.flush()
            try:
                await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            return True
    finally:
        await sub.unsubscribe()
    return False


async def test_the_gateway_only_calls(peer: ConnectAs) -> None:
    gateway = await peer(GATEWAY)
    assert await received_by_admin(peer, gateway, "jhaas.rpc.request.submit")
    for stream in ALL_STREAMS:
        assert await gateway.publish_refused(f"{JS_API}.STREAM.CREATE.{stream.name}")
    assert await gateway.publish_refused("jhaas.evt.governance.RequestApproved.v1")
    assert await gateway.publish_refused("jhaas.dlq.deployer-svc-governance.x")
    assert await gateway.subscribe_refused("jhaas.rpc.request.>")
    assert await gateway.subscribe_refused("jhaas.evt.>")
    assert await gateway.subscribe_refused("_INBOX.request-svc.>")


async def test_the_launcher_only_asks_for_health(peer: ConnectAs) -> None:
    launcher = await peer(LAUNCHER)
    assert await received_by_admin(peer, launcher, "jhaas.rpc.request.health")
    assert await launcher.publish_refused("jhaas.rpc.request.submit")
    assert await launcher.publish_refused("jhaas.rpc.governance.approve")
    assert await launcher.subscribe_refused("jhaas.rpc.request.health")
