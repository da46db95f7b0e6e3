"""`python -m jhaas_launcher up` (what `./jhaas up` runs): it starts, prints where
to sign in with the first admin's credentials, serves, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jhaas_launcher.processes import free_port

pytestmark = pytest.mark.e2e


def test_up_prints_credentials_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port, nats_port = free_port(), free_port()
    unset = {"JHAAS_ADMIN_PASSWORD", "JHAAS_POLICY_FILE"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jhaas_launcher",
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--nats-port",
            str(nats_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        assert "JHaaS is running." in output, output
        # The documented example policy, checked before anything started.
        example = Path(__file__).resolve().parents[2] / "deploy" / "policy.yaml"
        assert f"policy: {example}\n" in output, output
        admin_line = next(line for line in lines if line.strip().startswith("Admin:"))
        password = admin_line.split("/", 1)[1].strip()
        assert password == (tmp_path / "data" / "initial-admin-password").read_text().strip()

        login = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"username": "admin", "password": password},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        # What the product wrote is for its own user alone: no other local account
        # reads the databases (password hashes), keys or logs.
        data = tmp_path / "data"
        # As root, hub users' accounts may pass through (never list) it to their homes.
        assert stat.S_IMODE(data.stat().st_mode) == (0o711 if os.geteuid() == 0 else 0o700)
        written = [p for p in data.rglob("*") if p.is_file()]
        assert written
        assert {p.name for p in written if stat.S_IMODE(p.stat().st_mode) & 0o077} == set()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        rest = proc.stdout.read()
        assert "stopped." in rest
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        gateway_log = (tmp_path / "data" / "logs" / "gateway.log").read_text().splitlines()
        lines = [json.loads(line) for line in gateway_log if line.startswith("{")]
        assert not [line for line in lines if line["level"] == "error"]
        login_lines = [line for line in lines if line.get("path") == "/api/v1/auth/login"]
        assert len(login_lines) == 1
        assert login_lines[0]["status"] == 200
        assert login_lines[0]["correlation_id"] == login.headers["X-Correlation-ID"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
