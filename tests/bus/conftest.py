"""A NATS server with the product's authorization, and the credentials of
every principal, generated the way `./jhaas up` generates them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from jhaas_launcher.natsauth import Credentials, ensure_credentials, reader_principal
from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import Peer, connect_as

READER = "uni-example"


@pytest.fixture
def credentials(tmp_path: Path) -> Credentials:
    return ensure_credentials(tmp_path / "nats-credentials", readers=[READER])


@pytest.fixture
def secure_nats(tmp_path: Path, credentials: Credentials) -> Iterator[NatsServer]:
    server = NatsServer(
        store_dir=tmp_path / "jetstream",
        log_path=tmp_path / "nats.log",
        config=credentials.server_config,
    ).start()
    yield server
    server.stop()


ConnectAs = Callable[[str], Awaitable[Peer]]


@pytest.fixture
def reader() -> str:
    """The principal of another institution's read-only credential."""
    return reader_principal(READER)


@pytest.fixture
async def peer(secure_nats: NatsServer, credentials: Credentials) -> AsyncIterator[ConnectAs]:
    """`await peer("request-svc")`: a connection with that principal's credential."""
    opened: list[Peer] = []

    async def connect(principal: str) -> Peer:
        opened.append(await connect_as(secure_nats.url, credentials, principal))
        return opened[-1]

    yield connect
    for one in opened:
        await one.nc.close()
