"""Helpers the gateway tests share: sign in, headers, a valid hub spec."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import Receive, Scope, Send

from gateway.accounts import Clock, utcnow
from gateway.app import create_app
from gateway.auth import Passwords
from gateway.settings import GatewaySettings
from jhaas_launcher import second_factor

ADMIN = ("root", "root password 123")
BASE_URL = "https://testserver.local"

Client = AsyncTestClient[Any]
T = TypeVar("T")


class LoopThread:
    """An event loop of its own in a thread, for the services behind the gateway.

    AsyncTestClient runs the app through a blocking portal: while a request
    is in flight the test's own event loop is blocked, so a service running
    on that loop could never answer the gateway.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))


def fast_passwords() -> Passwords:
    # The production parameters cost ~50 ms a hash; the tests hash dozens of times.
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class SteppedClock:
    """Time that moves only when a test says so, shared by the replicas under test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def behind_proxy(app: Litestar, proxy: str) -> Any:
    """The app as an ingress at `proxy` reaches it: every connection comes from there."""

    async def ingress(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (proxy, 50000)}  # type: ignore[typeddict-item]
        await app(scope, receive, send)

    return ingress


def make_client(
    settings: GatewaySettings, *, clock: Clock = utcnow, proxy: str | None = None
) -> Client:
    """A test client of the app; entering it runs the app's start-up, leaving its shutdown."""
    app = create_app(settings, passwords=fast_passwords(), clock=clock)
    client: Client = AsyncTestClient(
        app=behind_proxy(app, proxy) if proxy else app, base_url=BASE_URL
    )
    _CLOCK_OF[client] = clock
    return client


# The clock of each client's app: an authenticator app shows the codes of the
# gateway's time, which a test may hold still or move on.
_CLOCK_OF: weakref.WeakKeyDictionary[Client, Clock] = weakref.WeakKeyDictionary()


def gateway_time(client: Client) -> second_factor.Now:
    """The time of `client`'s gateway, in seconds since the epoch."""
    clock = _CLOCK_OF.get(client, utcnow)
    return lambda: clock().timestamp()


async def login(client: Client, username: str, password: str) -> httpx.Response:
    """Sign in; the client's cookie jar is emptied so each request says what it sends."""
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    client.cookies.clear()
    return response


async def token_for(client: Client, username: str, password: str) -> str:
    """A token that may act: the second factor set up (governance, admin) or confirmed,
    as that person would (jhaas_launcher.second_factor)."""
    headers = await second_factor.sign_in(client, username, password, now=gateway_time(client))
    return headers["Authorization"].removeprefix("Bearer ")


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def create_user(
    client: Client, admin_token: str, username: str, password: str, *roles: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/users",
        json={"username": username, "password": password, "roles": list(roles)},
        headers=bearer(admin_token),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def hub_spec(**overrides: Any) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=14)
    spec: dict[str, Any] = {
        "title": "Data Science 101",
        "slug": "ds101",
        "description": "Introduction to data science",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=90)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": {"cpu": "1", "memory": "2Gi", "storage": "5Gi"},
        "expected_participants": 30,
    }
    spec.update(overrides)
    return spec


LEADER = ("lea", "leader password 1")


async def leader_token(client: Client) -> str:
    """Create the leader as the first admin and sign the leader in."""
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *LEADER, "leader")
    return await token_for(client, *LEADER)


ERROR_KEYS = {"status", "error", "message", "fields", "correlation_id"}


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """The one error body, with its status, kind and the response's correlation id."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["status"] == status
    assert body["error"] == error
    assert body["message"]
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body
