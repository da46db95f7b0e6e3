"""Authenticated reads per second and p50/p99 latency: GET /api/v1/requests/{id}
through gateway -> NATS request-reply -> request-svc -> SQLite, then the same
with every service on PostgreSQL, each next to a bare
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

from bench.common import LOCK_TIMEOUTS
from jhaas_launcher import second_factor
from jhaas_launcher.processes import PostgresServer, free_port, wait_for_port
from jhaas_launcher.stack import GATEWAY, SERVICES, Stack
from jhaas_runtime.settings import database_url_variable


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


def rss_mb(pid: int) -> str:
    """The process's resident memory now and its peak since start, in MB."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    now, peak = (int(status[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM"))
    return f"{now} ({peak})"


def lock_timeouts(log_dir: Path) -> list[str]:
    """Every log line of every process that says a database lock timed out."""
    return [
        f"{log.name}: {line[:200]}"
        for log in sorted(log_dir.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if any(words in line for words in LOCK_TIMEOUTS)
    ]


async def main(seconds: int, concurrency: int, postgres: bool = True) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (./jhaas bench installs it)")
    print(
        f"\n== reads: authenticated GETs for {seconds}s each, {concurrency} connections"
        " (wrk, one thread) =="
    )
    await run_once(seconds, concurrency, None)
    if postgres:
        pg_root = Path(tempfile.mkdtemp(prefix="jhaas-bench-pg-"))
        pg = PostgresServer(data_dir=pg_root / "data").start()
        try:
            await run_once(seconds, concurrency, pg)
        finally:
            pg.stop()
            shutil.rmtree(pg_root, ignore_errors=True)


async def run_once(seconds: int, concurrency: int, pg: PostgresServer | None) -> None:
    secret = secrets.token_hex(32)
    env = {
        "JHAAS_JWT_SECRET": secret,
        "JHAAS_ADMIN_PASSWORD": "bench-admin-password",
        "JHAAS_LOG_LEVEL": "WARNING",
    }
    if pg is not None:
        env["JHAAS_INSTALLATION_ID"] = "bench"
        env["JHAAS_DEPLOYER_SECRET_KEYS"] = secrets.token_hex(32)
        for name, _module in (*SERVICES, GATEWAY):
            env[database_url_variable(name)] = pg.create_database(name.replace("-", "_"))
    label = "PostgreSQL" if pg else "SQLite"
    with tempfile.TemporaryDirectory(prefix="jhaas-bench-reads-") as tmp:
        stack = Stack(data_dir=Path(tmp) / "data", extra_env=env)
        bares: list[subprocess.Popen[bytes]] = []
        try:
            await stack.start()
            # They check tokens like the gateway: same code, same secret.
            ports = {}
            for mode in ("full", "remembered"):
                ports[mode] = free_port()
                bares.append(
                    subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
                        [sys.executable, "-m", "bench.bare_app", str(ports[mode]), mode],
                        env=stack.env("gateway"),
                    )
                )
                wait_for_port(ports[mode], process=bares[-1], what="bare app")
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
                headers, request_id = await _leader_with_request(client)
            bare_urls = {m: f"http://127.0.0.1:{p}/bare/{request_id}" for m, p in ports.items()}
            gateway_url = f"{stack.gateway_url}/api/v1/requests/{request_id}"
            # Warm each up (connections, caches) before measuring.
            for url in (gateway_url, *bare_urls.values()):
                wrk(url, headers, 1, concurrency)
            bare_rate, bare_lat = wrk(bare_urls["full"], headers, seconds, concurrency)
            gw_rate, gw_lat = wrk(gateway_url, headers, seconds, concurrency)
            rss = {name: rss_mb(h.process.pid) for name, h in stack.processes.items()}
            mem_rate, mem_lat = wrk(bare_urls["remembered"], headers, seconds, concurrency)
            locked = lock_timeouts(stack.log_dir)
            print(f"  bare Litestar + full token check     : {bare_rate:7.0f} req/s  {bare_lat}")
            print(
                f"  gateway -> NATS -> svc -> {label:10s}  : {gw_rate:7.0f} req/s  {gw_lat}"
                f"  ({gw_rate / bare_rate:.0%} of bare)"
            )
            print(
                f"  bare Litestar + remembered token     : {mem_rate:7.0f} req/s  {mem_lat}"
                f"  (gateway: {gw_rate / mem_rate:.0%} of it)"
            )
            print(
                "  RSS right after the load, MB (peak since start): "
                + ", ".join(f"{name} {mb}" for name, mb in rss.items())
                + f";  lock timeouts in the logs: {len(locked)}"
            )
            if locked:
                print("".join(f"    {line}\n" for line in locked[:5]), end="")
                raise SystemExit(
                    f"FAILED: {len(locked)} log lines say a database lock timed out; "
                    "the figures above do not count"
                )
        finally:
            for bare in bares:
                bare.terminate()
                bare.wait(10)
            stack.stop()


async def _leader_with_request(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    admin = await second_factor.sign_in(client, "admin", "bench-admin-password")
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
