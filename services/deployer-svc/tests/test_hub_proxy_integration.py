"""The local hubs' proxy forwards a class's requests at once.

The pure-Python configurable-http-proxy on its own forwards 10 requests at a
time (Tornado's client default); the 11th waits and gets a 503 after 20 s. Here
30 requests go through the proxy to a target that answers none of them until
all 30 have arrived: only a proxy that forwards them together gets them answered.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from deployer_svc.backends.proxy import take_max_clients
from jhaas_launcher.processes import free_port

pytestmark = pytest.mark.integration

TOGETHER = 30


def test_max_clients_is_taken_out_of_the_proxy_arguments() -> None:
    assert take_max_clients(["--max-clients", "300", "--ip", "127.0.0.1"]) == (
        300,
        ["--ip", "127.0.0.1"],
    )
    assert take_max_clients(["--port", "8000"]) == (10, ["--port", "8000"])
    with pytest.raises(SystemExit):
        take_max_clients(["--max-clients", "0"])


async def start_barrier_target(arrived: asyncio.Event, count: list[int]) -> web.AppRunner:
    async def handle(request: web.Request) -> web.Response:
        count[0] += 1
        if count[0] >= TOGETHER:
            arrived.set()
        await arrived.wait()
        return web.Response(text="together")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    return runner


@pytest.fixture
async def proxy(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str, str]]:
    max_clients: int = request.param
    port, api_port, token = free_port(), free_port(), secrets.token_hex(16)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deployer_svc.backends.proxy",
        *(["--max-clients", str(max_clients)] if max_clients else []),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-ip",
        "127.0.0.1",
        "--api-port",
        str(api_port),
        env={"CONFIGPROXY_AUTH_TOKEN": token, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}", token
    finally:
        process.terminate()
        await process.wait()


async def route_through(proxy: tuple[str, str, str], target: str) -> None:
    _, api, token = proxy
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(100):
            try:
                r = await client.post(
                    f"{api}/api/routes/",
                    json={"target": target},
                    headers={"Authorization": f"token {token}"},
                )
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            assert r.status_code == 201, r.text
            return
    raise AssertionError("the proxy's API never answered")


async def forward_together(proxy: tuple[str, str, str], wait: float) -> list[int | str]:
    """Each request's status, or the name of the error when none came within `wait`."""
    arrived, count = asyncio.Event(), [0]
    runner = await start_barrier_target(arrived, count)
    target_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", target_port).start()
    try:
        await route_through(proxy, f"http://127.0.0.1:{target_port}")
        async with httpx.AsyncClient(timeout=wait) as client:
            answers = await asyncio.gather(
                *(client.get(f"{proxy[0]}/user/u{i}/api") for i in range(TOGETHER)),
                return_exceptions=True,
            )
        return [
            a.status_code if isinstance(a, httpx.Response) else type(a).__name__ for a in answers
        ]
    finally:
        arrived.set()  # let whatever still waits answer, so the target stops at once
        await runner.cleanup()


@pytest.mark.parametrize("proxy", [256], indirect=True)
async def test_the_hub_proxy_forwards_a_class_at_once(proxy: tuple[str, str, str]) -> None:
    assert await forward_together(proxy, wait=60) == [200] * TOGETHER


@pytest.mark.parametrize("proxy", [0], indirect=True)
async def test_the_plain_proxy_does_not(proxy: tuple[str, str, str]) -> None:
    """The baseline the wrapper exists for: without it, requests past 10 wait and fail."""
    # The queued requests get their 503 after the proxy's 20 s; the 10 in flight
    # wait for the 30 that never arrive together.
    statuses = await forward_together(proxy, wait=25)
    assert 200 not in statuses and 503 in statuses, statuses
