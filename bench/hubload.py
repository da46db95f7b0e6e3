"""What the class-start benchmark does to a JupyterHub, the course's or a bare one:
fill it with users, start servers, and time requests in an open loop; and the
bare JupyterHub itself, configured with the local backend's own spawner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.deployer import stop_tree
from deployer_svc.backends.hub_roles import DEPLOYER_SCOPES, PARTICIPANT_GROUP, hub_groups
from deployer_svc.backends.hub_settings import render, secret_file
from deployer_svc.backends.local_config import HubLayout
from jhaas_launcher.processes import ManagedProcess, free_port, spawn

HUB_TIMEOUT = 90.0
SPAWN_TIMEOUT = 300.0
POLL = 0.2  # how often the one poller asks a hub who is ready (same for both hubs)


@dataclass
class Timings:
    """Latencies of the requests that succeeded, and what went wrong with the others."""

    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def row(self, label: str) -> str:
        done = sorted(self.seconds)
        count = len(done) + len(self.errors)
        if not done:
            return f"  {label}: {count} requests, {len(self.errors)} errors"
        p95 = done[min(len(done) - 1, round(0.95 * len(done)) - 1)]
        return (
            f"  {label}: {count:4d} requests, {len(self.errors)} errors,"
            f"  p50 {statistics.median(done) * 1000:7.0f}ms  p95 {p95 * 1000:7.0f}ms"
            f"  max {done[-1] * 1000:7.0f}ms"
        )


async def open_loop(
    count: int, seconds: float, one: Callable[[int], Awaitable[str | None]]
) -> Timings:
    """Start `one(i)` for i in range(count) evenly over `seconds`, whether or not the
    earlier ones have answered (arrivals, not a closed loop); `one` returns an error
    text or None."""
    timings = Timings()
    t0 = time.perf_counter()

    async def arrive(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + i * seconds / count - time.perf_counter()))
        started = time.perf_counter()
        try:
            error = await one(i)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            timings.seconds.append(time.perf_counter() - started)
        else:
            timings.errors.append(error)

    await asyncio.gather(*(arrive(i) for i in range(count)))
    return timings


async def group_members(hub: httpx.AsyncClient, group: str) -> set[str]:
    answer = await hub.get(f"groups/{group}")
    if answer.status_code == 404:
        return set()
    answer.raise_for_status()
    return set(answer.json()["users"])


async def until_in_group(hub: httpx.AsyncClient, names: set[str], timeout: float) -> float:
    """Seconds until every one of `names` is a hub user in the participants' group."""
    t0 = time.perf_counter()
    while not names <= await group_members(hub, PARTICIPANT_GROUP):
        if time.perf_counter() - t0 > timeout:
            missing = len(names - await group_members(hub, PARTICIPANT_GROUP))
            raise TimeoutError(f"{missing} of {len(names)} users not in the hub after {timeout}s")
        await asyncio.sleep(0.1)
    return time.perf_counter() - t0


async def add_directly(hub: httpx.AsyncClient, names: list[str]) -> float:
    """The same users put straight into a hub through its REST API: two calls, and
    the check that they are there."""
    t0 = time.perf_counter()
    (await hub.post("users", json={"usernames": names})).raise_for_status()
    (await hub.post(f"groups/{PARTICIPANT_GROUP}/users", json={"users": names})).raise_for_status()
    await until_in_group(hub, set(names), 30)
    return time.perf_counter() - t0


async def servers(hub: httpx.AsyncClient, state: str) -> dict[str, dict[str, Any]]:
    """The default server of every user whose server is `state` (ready, active)."""
    found: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        answer = await hub.get(
            "users",
            params={"state": state, "offset": offset, "limit": 200},
            headers={"Accept": "application/jupyterhub-pagination+json"},
        )
        answer.raise_for_status()
        page = answer.json()
        for user in page["items"]:
            if "" in user.get("servers", {}):
                found[user["name"]] = user["servers"][""]
        if page["_pagination"]["next"] is None:
            return found
        offset = page["_pagination"]["next"]["offset"]


async def spawn_all(hub: httpx.AsyncClient, names: list[str]) -> Timings:
    """POST every user's server at once; each one's time from its POST until one
    poller (every POLL s) sees it ready. A refused POST, or a server that stops
    before it is ready, is an error (one per user)."""
    timings = Timings()
    failed: dict[str, str] = {}
    t0 = time.perf_counter()

    async def start(name: str) -> None:
        try:
            answer = await hub.post(f"users/{name}/server")
        except httpx.HTTPError as exc:
            failed[name] = f"{name}: {type(exc).__name__}: {exc}"
            return
        if answer.status_code not in (201, 202):
            failed[name] = f"{name}: {answer.status_code} {' '.join(answer.text.split())[:160]}"

    posts = asyncio.gather(*(start(name) for name in names))
    waiting = set(names)
    while waiting and time.perf_counter() - t0 < SPAWN_TIMEOUT:
        await asyncio.sleep(POLL)
        active = await servers(hub, "active")
        for name in list(waiting):
            if active.get(name, {}).get("ready"):
                timings.seconds.append(time.perf_counter() - t0)
                waiting.discard(name)
            elif posts.done() and name not in active:
                failed.setdefault(name, f"{name}: the server stopped before it was ready")
                waiting.discard(name)
    await posts
    for name in waiting:
        failed.setdefault(name, f"{name}: not ready after {SPAWN_TIMEOUT:.0f}s")
    timings.errors = list(failed.values())
    return timings


async def stop_all(hub: httpx.AsyncClient, names: list[str]) -> None:
    """Stop the servers (so the next hub measured does not share the machine with them)."""
    await asyncio.gather(*(hub.delete(f"users/{name}/server") for name in names))
    deadline = time.perf_counter() + 60
    while await servers(hub, "active") and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)  # the hub's state, not ours: nothing to wait on but a poll


def hub_api(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{base_url.rstrip('/')}/hub/api/",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )


# -- a bare JupyterHub with the local backend's spawner -------------------------


@dataclass
class BareHub:
    folder: Path
    url: str
    internal: str  # the hub's own HTTP server, behind the proxy
    token: str
    process: ManagedProcess | None = None


def spawner_traits(course_hub: Path) -> dict[str, Any]:
    """The spawner part of a course hub's settings, as the local backend wrote them:
    `JupyterHub.spawner_class` and the `Spawner` and other `*Spawner` sections (with
    isolation: the same system accounts, homes and cgroups the deployer made)."""
    config: dict[str, Any] = json.loads(HubLayout(course_hub).settings.read_text())["config"]
    spawners = {name: traits for name, traits in config.items() if name.endswith("Spawner")}
    return {"spawner_class": config["JupyterHub"]["spawner_class"], "sections": spawners}


def write_bare_hub(folder: Path, course_hub: Path) -> BareHub:
    """A minimal JupyterHub (null authenticator, one service token with the
    deployer's scopes) whose spawner is configured exactly like a course hub's."""
    folder.mkdir(parents=True)
    layout = HubLayout(folder)
    public, hub_port, api = free_port(), free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    spawner = spawner_traits(course_hub)
    token = secrets.token_hex(32)
    (folder / "api_token").write_text(token)
    (folder / "proxy_auth_token").write_text(secrets.token_hex(32))
    traits = {
        "JupyterHub": {
            "bind_url": f"http://127.0.0.1:{public}/",
            "hub_bind_url": f"http://127.0.0.1:{hub_port}",
            "db_url": f"sqlite:///{layout.db}",
            "cookie_secret_file": str(layout.cookie_secret),
            "pid_file": str(layout.hub_pid),
            "authenticator_class": "null",
            "spawner_class": spawner["spawner_class"],
            "load_groups": hub_groups(),  # as a course hub has them from its first start
            "services": [{"name": "bench", "api_token": secret_file("api_token")}],
            "load_roles": [
                {"name": "bench", "scopes": list(DEPLOYER_SCOPES), "services": ["bench"]}
            ],
        },
        "ConfigurableHTTPProxy": {
            "command": [str(bin_dir / "configurable-http-proxy")],
            "api_url": f"http://127.0.0.1:{api}",
            "auth_token": secret_file("proxy_auth_token"),
            "pid_file": str(layout.proxy_pid),
        },
        **spawner["sections"],
    }
    files = render({"bench": "bare hub"}, traits)
    layout.config.write_text(files.config)
    layout.settings.write_text(files.settings)
    return BareHub(folder, f"http://127.0.0.1:{public}/", f"http://127.0.0.1:{hub_port}/", token)


async def start_bare_hub(root: Path, course_hub: Path) -> BareHub:
    """A bare JupyterHub spawning exactly as the course hub in `course_hub` does."""
    hub = write_bare_hub(root / f"bare-{uuid.uuid4().hex[:8]}", course_hub)
    hub.process = spawn(
        "bare-jupyterhub",
        [sys.executable, "-m", "jupyterhub", "-f", str(HubLayout(hub.folder).config)],
        # What the local backend gives a course hub: no environment of ours.
        env={"PATH": f"{Path(sys.executable).parent}:{os.defpath}", "HOME": str(hub.folder)},
        log_path=hub.folder / "hub.log",
        cwd=hub.folder,
    )
    deadline = time.perf_counter() + HUB_TIMEOUT
    async with hub_api(hub.url, hub.token) as api:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await api.get("users")).status_code == 200:
                    return hub
            if hub.process.process.poll() is not None or time.perf_counter() > deadline:
                log = (hub.folder / "hub.log").read_text(errors="replace")
                raise RuntimeError(f"the bare JupyterHub did not start:\n{log[-2000:]}")
            await asyncio.sleep(0.2)


def stop_bare_hub(hub: BareHub) -> None:
    if hub.process is not None:
        stop_tree(hub.process.process.pid, hub.folder)
        with contextlib.suppress(Exception):
            hub.process.process.wait(5)
