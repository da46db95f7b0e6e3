"""`python -m gateway` and `create-admin`: as an operator runs them, against the real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings
from jhaas_launcher.processes import NatsServer, free_port, spawn, wait_for_port

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import login, make_client

pytestmark = pytest.mark.integration


def create_admin(
    username: str, stdin: str, database_url: str, data_dir: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "JHAAS_DATA_DIR": str(data_dir),
        "JHAAS_GATEWAY_DATABASE_URL": database_url,
        "JHAAS_LOG_FORMAT": "console",
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", "create-admin", "--username", username],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_create_admin_from_stdin_or_generated(
    database_url: str, gateway_settings: GatewaySettings, tmp_path: Path
) -> None:
    piped = create_admin("ops", "ops password 123\n", database_url, tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "password" not in piped.stdout

    generated = create_admin("ops2", "", database_url, tmp_path)
    assert generated.returncode == 0, generated.stderr
    password = generated.stdout.split("password: ")[1].strip()
    assert len(password) >= 12

    taken = create_admin("ops", "another password 1\n", database_url, tmp_path)
    assert taken.returncode == 1
    assert "taken" in taken.stderr
    too_short = create_admin("ops3", "short\n", database_url, tmp_path)
    assert too_short.returncode == 2
    assert "password" in too_short.stderr

    async with make_client(gateway_settings) as client:
        for username, secret in [("ops", "ops password 123"), ("ops2", password)]:
            response = await login(client, username, secret)
            assert response.status_code == 200, response.text
            assert response.json()["user"]["roles"] == ["admin"]
        # An admin exists, so the gateway did not create the one named in its settings.
        assert (await login(client, *_configured_admin(gateway_settings))).status_code == 401


def _configured_admin(settings: GatewaySettings) -> tuple[str, str]:
    assert settings.admin_password is not None
    return settings.admin_username, settings.admin_password


@pytest.mark.parametrize(
    ("trusted", "client"),
    [
        ("", "127.0.0.1"),  # uvicorn must not believe the header from 127.0.0.1 either
        ("10.0.0.0/8, 127.0.0.1", "203.0.113.9"),
    ],
)
def test_the_served_gateway_logs_the_client_its_trusted_proxies_name(
    nats_server: NatsServer, database_url: str, tmp_path: Path, trusted: str, client: str
) -> None:
    port = free_port()
    log_path = tmp_path / "gateway.log"
    env = {
        **os.environ,
        "JHAAS_DATA_DIR": str(tmp_path),
        "JHAAS_GATEWAY_DATABASE_URL": database_url,
        "JHAAS_NATS_URL": nats_server.url,
        "JHAAS_GATEWAY_PORT": str(port),
        "JHAAS_ADMIN_PASSWORD": "an admin password 1",
        "JHAAS_LOG_FORMAT": "json",
        "JHAAS_TRUSTED_PROXIES": trusted,
    }
    gateway = spawn("gateway", [sys.executable, "-m", "gateway"], env=env, log_path=log_path)
    try:
        wait_for_port(port, process=gateway.process, what="gateway")
        response = httpx.get(
            f"http://127.0.0.1:{port}/healthz",
            headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Correlation-ID": "probe"},
        )
        assert response.status_code == 200
    finally:
        gateway.stop()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("correlation_id") == "probe"]
    assert [line["client"] for line in access] == [client], access
