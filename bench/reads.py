"""Authenticated reads per second and p50/p99 latency: GET /api/v1/requests/{id}
through gateway -> NATS request-reply -> request-svc -> SQLite, next to a bare
Litestar endpoint that checks the same bearer token (bench/bare_app.py), both
loaded the same way in the same run on this machine."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from jhaas_launcher.processes import free_port, wait_for_port
from jhaas_launcher.stack import Stack


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> tuple[float, str]:
    """Load `url` from a second process (wrk, one thread) and read its figures."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url} answered errors under load:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, flags=re.M))
    return rate, f"p50 {pct['50']:>8}  p90 {pct['90']:>8}  p99 {pct['99']:>8}"


async def main(seconds: int, concurrency: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (./jhaas bench installs it)")
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="jhaas-bench-reads-") as tmp:
        stack = Stack(
            data_dir=Path(tmp) / "data",
            extra_env={
                "JHAAS_JWT_SECRET": secret,
                "JHAAS_ADMIN_PASSWORD": "bench-admin-password",
                "JHAAS_LOG_LEVEL": "WARNING",
            },
        )
        bare_port = free_port()
        bare = None
        try:
            await stack.start()
            env = stack.env("gateway")  # it checks tokens like the gateway: same secret
            bare = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
                [sys.executable, "-m", "bench.bare_app", str(bare_port)], env=env
            )
            wait_for_port(bare_port, process=bare, what="bare app")
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
                headers, request_id = await _leader_with_request(client)
            # Warm both up (connections, caches) before measuring.
            wrk(f"{stack.gateway_url}/api/v1/requests/{request_id}", headers, 1, concurrency)
            wrk(f"http://127.0.0.1:{bare_port}/bare/{request_id}", headers, 1, concurrency)
            bare_rate, bare_lat = wrk(
                f"http://127.0.0.1:{bare_port}/bare/{request_id}", headers, seconds, concurrency
            )
            gw_rate, gw_lat = wrk(
                f"{stack.gateway_url}/api/v1/requests/{request_id}", headers, seconds, concurrency
            )
            print(
                f"\n== reads: authenticated GETs for {seconds}s each, {concurrency} connections"
                " (wrk, one thread) =="
            )
            print(f"  bare Litestar + same token check : {bare_rate:7.0f} req/s  {bare_lat}")
            print(
                f"  gateway -> NATS -> svc -> SQLite : {gw_rate:7.0f} req/s  {gw_lat}"
                f"  ({gw_rate / bare_rate:.0%} of bare)"
            )
        finally:
            if bare is not None:
                bare.terminate()
                bare.wait(10)
            stack.stop()


async def _leader_with_request(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    login = await client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "bench-admin-password"}
    )
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    created = await client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "bench-leader", "password": "bench-leader-password", "roles": ["leader"]},
    )
    assert created.status_code == 201, created.text
    login = await client.post(
        "/api/v1/auth/login", json={"username": "bench-leader", "password": "bench-leader-password"}
    )
    leader = {"Authorization": f"Bearer {login.json()['access_token']}"}
    start = datetime.now(UTC) + timedelta(days=10)
    submitted = await client.post(
        "/api/v1/requests",
        headers=leader,
        json={
            "title": "Benchmark course",
            "slug": "bench-course",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=30)).isoformat(),
            "image": "quay.io/jupyter/minimal-notebook:2024-12-02",
            "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
            "expected_participants": 10,
        },
    )
    assert submitted.status_code == 201, submitted.text
    return leader, str(submitted.json()["request_id"])
