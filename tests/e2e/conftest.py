"""The whole product as `./jhaas up` runs it: NATS, every service and the gateway
as real processes, with SQLite files and JetStream on disk under tmp."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from jhaas_launcher import second_factor
from jhaas_launcher.stack import Stack

# The authorization matrix's modules (authz_*.py) are imported by name, as the
# gateway's tests import their helpers; and it uses three of those helpers (a
# test OpenID provider, a mail server, a software security key).
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[2] / "services" / "gateway" / "tests"))

ADMIN_PASSWORD = "e2e-admin-password-0123"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    stack = Stack(
        data_dir=tmp_path / "data",
        extra_env={"JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD, "JHAAS_LOG_FORMAT": "console"},
    )
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=15) as client:
        yield client


Login = Callable[[str, str], Awaitable[dict[str, str]]]


@pytest.fixture
def login(client: httpx.AsyncClient) -> Login:
    async def do(username: str, password: str) -> dict[str, str]:
        # With the second factor a governance or admin account needs, as its person would.
        return await second_factor.sign_in(client, username, password)

    return do


@pytest.fixture
def make_user(client: httpx.AsyncClient, login: Login) -> Callable[..., Awaitable[dict[str, str]]]:
    """Create a user as the first admin and return that user's bearer headers."""

    async def do(username: str, *roles: str) -> dict[str, str]:
        admin = await login("admin", ADMIN_PASSWORD)
        password = f"{username}-password-123"
        response = await client.post(
            "/api/v1/users",
            headers=admin,
            json={"username": username, "password": password, "roles": list(roles)},
        )
        assert response.status_code == 201, response.text
        return await login(username, password)

    return do
