"""Sign-in throttling as attackers meet it: growing waits per account and address,
shared by two gateway replicas on one database (SQLite and PostgreSQL), client
addresses from trusted proxies only, and an owner nobody can lock out."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateway.client_address import parse_trusted_proxies
from gateway.settings import GatewaySettings
from gateway.store import sign_in_attempts
from gateway.throttle import SignInThrottle, TooManyAttempts
from jhaas_runtime.db import Database

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    SteppedClock,
    assert_error,
    create_user,
    make_client,
    token_for,
)

pytestmark = pytest.mark.integration

INGRESS = "10.0.0.1"
WRONG = "not the password 1"


@pytest.fixture
def settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return replace(
        gateway_settings,
        login_free_failures=3,
        login_max_delay_seconds=60,
        trusted_proxies=parse_trusted_proxies("10.0.0.0/8"),
    )


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def replicas(
    settings: GatewaySettings, clock: SteppedClock
) -> AsyncIterator[tuple[Client, Client]]:
    """Two gateways on one database, both behind the ingress, sharing the clock."""
    async with (
        make_client(settings, clock=clock, proxy=INGRESS) as first,
        make_client(settings, clock=clock, proxy=INGRESS) as second,
    ):
        admin = await token_for(first, *ADMIN)
        await create_user(first, admin, *LEADER, "leader")
        yield first, second


async def sign_in(
    client: Client,
    password: str,
    address: str,
    *,
    username: str = LEADER[0],
    device: str | None = None,
) -> httpx.Response:
    client.cookies.clear()
    headers = {"X-Forwarded-For": f"198.51.100.99, {address}"}  # the left one is forged
    if device is not None:
        headers["Cookie"] = f"__Host-jhaas_device={device}"
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )


def waited(response: httpx.Response) -> int:
    assert_error(response, 429, "too_many_requests")
    return int(response.headers["Retry-After"])


async def test_failures_of_a_pair_make_it_wait_longer_on_every_replica(
    replicas: tuple[Client, Client], clock: SteppedClock
) -> None:
    first, second = replicas
    here = "203.0.113.10"
    for client in (first, second, first, second):  # three free failures, then a checked one
        assert (await sign_in(client, WRONG, here)).status_code == 401
    # Now even the right password is not checked, on either replica.
    assert waited(await sign_in(second, LEADER[1], here)) == 1
    assert waited(await sign_in(first, LEADER[1], here)) == 1
    clock.advance(1)
    assert (await sign_in(first, WRONG, here)).status_code == 401
    assert waited(await sign_in(second, WRONG, here)) == 2
    clock.advance(2)
    assert (await sign_in(second, WRONG, here)).status_code == 401
    assert waited(await sign_in(first, LEADER[1], here)) == 4
    # The same person elsewhere is not slowed by this pair.
    assert (await sign_in(second, LEADER[1], "203.0.113.11")).status_code == 200
    clock.advance(4)
    assert (await sign_in(first, LEADER[1], here)).status_code == 200
    # A success forgives the pair: its free failures are back.
    for _ in range(3):
        assert (await sign_in(second, WRONG, here)).status_code == 401
    assert (await sign_in(first, LEADER[1], here)).status_code == 200


async def test_forged_forwarded_addresses_do_not_escape_the_wait(
    settings: GatewaySettings, clock: SteppedClock
) -> None:
    # Straight from the internet (no trusted proxy in front): X-Forwarded-For is ignored.
    async with make_client(settings, clock=clock, proxy="192.0.2.50") as client:
        for attempt in range(4):
            response = await sign_in(client, WRONG, f"203.0.113.{attempt}", username=ADMIN[0])
            assert response.status_code == 401
        assert waited(await sign_in(client, ADMIN[1], "203.0.113.200", username=ADMIN[0])) >= 1


async def test_one_address_trying_many_accounts_slows_down(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    sprayer = "203.0.113.66"
    # Ten times the free failures of a pair, one each on 31 accounts: the last is checked,
    for n in range(31):
        client = first if n % 2 else second
        assert (await sign_in(client, WRONG, sprayer, username=f"user{n}")).status_code == 401
    # and from then on the address waits, whichever account it names.
    assert waited(await sign_in(first, LEADER[1], sprayer)) == 1
    assert (await sign_in(second, LEADER[1], "203.0.113.67")).status_code == 200


async def test_someone_spraying_from_the_owners_address_cannot_keep_the_owner_out(
    replicas: tuple[Client, Client],
) -> None:
    # A campus NAT: the owner and an attacker share one address.
    first, second = replicas
    campus = "203.0.113.88"
    owner = await sign_in(first, LEADER[1], campus)
    assert owner.status_code == 200
    device = owner.cookies["__Host-jhaas_device"]
    for n in range(31):  # the attacker fails on 31 other accounts from there
        client = first if n % 2 else second
        assert (await sign_in(client, WRONG, campus, username=f"user{n}")).status_code == 401
    # The address waits for a browser it does not know...
    assert waited(await sign_in(first, LEADER[1], campus)) >= 1
    # ...but the owner's own browser signs in at once.
    assert (await sign_in(second, LEADER[1], campus, device=device)).status_code == 200


async def test_a_botnet_cannot_keep_the_owner_out(
    replicas: tuple[Client, Client], clock: SteppedClock
) -> None:
    first, second = replicas
    home = "198.51.100.7"
    owner = await sign_in(first, LEADER[1], home)
    assert owner.status_code == 200
    device = owner.cookies["__Host-jhaas_device"]
    # 31 bots, one guess each: every pair and every address stays within its allowance...
    for bot in range(31):
        client = first if bot % 2 else second
        assert (await sign_in(client, WRONG, f"203.0.113.{bot + 100}")).status_code == 401
    # ...but the account as a whole waits for whoever it does not know,
    assert waited(await sign_in(first, LEADER[1], "192.0.2.77")) >= 1
    # not for the owner at home, nor on the owner's device anywhere else.
    assert (await sign_in(second, LEADER[1], home)).status_code == 200
    travelling = await sign_in(first, LEADER[1], "192.0.2.78", device=device)
    assert travelling.status_code == 200
    # A made-up or another account's device cookie does not help the bots.
    forged = f"{device.split('.')[0]}.{'A' * 43}"
    assert waited(await sign_in(second, WRONG, "192.0.2.79", device=forged)) >= 1
    admin_device = (await sign_in(first, ADMIN[1], home, username=ADMIN[0])).cookies
    stolen = admin_device["__Host-jhaas_device"]
    assert waited(await sign_in(second, WRONG, "192.0.2.80", device=stolen)) >= 1


async def test_parallel_attempts_after_a_wait_get_one_check(
    settings: GatewaySettings, clock: SteppedClock
) -> None:
    # Two replicas' throttles, each with its own connections, racing on one database.
    dbs = [Database(settings.runtime.database_url, pool_size=8) for _ in range(2)]
    async with make_client(settings, clock=clock):  # migrates the database
        pass
    throttles = [
        SignInThrottle(db, settings.throttle_policy, settings.jwt_secret, clock) for db in dbs
    ]
    try:
        for _ in range(3):  # the free failures
            await throttles[0].begin("lea", "203.0.113.5")

        async def attempt(n: int) -> bool:
            try:
                await throttles[n % 2].begin("lea", "203.0.113.5")
            except TooManyAttempts:
                return False
            return True

        results = await asyncio.gather(*(attempt(n) for n in range(12)))
        assert sorted(results) == [False] * 11 + [True]
        counts = await dbs[0].read(lambda conn: conn.execute(sign_in_attempts.select()).all())
        assert sorted(row.failures for row in counts) == [4, 4, 4]
    finally:
        for db in dbs:
            await db.dispose()


async def test_counts_idle_for_the_window_are_pruned(
    settings: GatewaySettings, clock: SteppedClock
) -> None:
    db = Database(settings.runtime.database_url, pool_size=4)
    async with make_client(settings, clock=clock):  # migrates the database
        pass
    throttle = SignInThrottle(db, settings.throttle_policy, settings.jwt_secret, clock)

    async def keys() -> int:
        return len(await db.read(lambda conn: conn.execute(sign_in_attempts.select()).all()))

    try:
        for n in range(3):
            await throttle.begin(f"user{n}", "203.0.113.5")
        assert await keys() == 7  # three pairs, one address, three accounts
        clock.advance(settings.throttle_policy.window_seconds + 61)
        await throttle.begin("late", "198.51.100.1")
        assert await keys() == 3  # only the new attempt's pair, address and account
    finally:
        await db.dispose()
