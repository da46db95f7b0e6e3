"""`python -m gateway create-admin`: as an operator runs it, against the real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings

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
