"""Fixtures for the gateway tests: the app under test, a real request-svc, helpers."""

from __future__ import annotations

import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from jhaas_launcher.processes import PostgresServer
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from participant_svc.app import build_app as build_participant_svc
from request_svc.app import build_app as build_request_svc

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, BASE_URL, Client, LoopThread, make_client

SettingsFor = Callable[..., RuntimeSettings]


@pytest.fixture
def gateway_settings(settings_for: SettingsFor, tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        runtime=settings_for("gateway", data_dir=tmp_path / "gateway"),
        jwt_secret=secrets.token_bytes(32),
        admin_username=ADMIN[0],
        admin_password=ADMIN[1],
        public_url=BASE_URL,
    )


@pytest.fixture
async def client(gateway_settings: GatewaySettings) -> AsyncIterator[Client]:
    async with make_client(gateway_settings) as test_client:
        yield test_client


def second_database_url(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, name: str = "request-svc"
) -> str:
    """A database of its own for a second service, on the same engine as `database_url`."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"r_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def request_svc(
    request: pytest.FixtureRequest,
    settings_for: SettingsFor,
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[ServiceRuntime]:

    url = second_database_url(request, database_url, tmp_path)
    runtime = build_request_svc(
        settings_for("request-svc", database_url=url, data_dir=tmp_path / "request-svc")
    )
    with LoopThread() as thread:
        await thread.run(runtime.start())
        # Started means subscribed: the SUBs reach the server before any call.
        await thread.run(runtime.nc.flush())
        try:
            yield runtime
        finally:
            await thread.run(runtime.stop())


@pytest.fixture
async def participant_svc(
    request: pytest.FixtureRequest,
    settings_for: SettingsFor,
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[ServiceRuntime]:
    url = second_database_url(request, database_url, tmp_path, "participant-svc")
    runtime = build_participant_svc(
        settings_for("participant-svc", database_url=url, data_dir=tmp_path / "participant-svc")
    )
    with LoopThread() as thread:
        await thread.run(runtime.start())
        await thread.run(runtime.nc.flush())
        try:
            yield runtime
        finally:
            await thread.run(runtime.stop())
