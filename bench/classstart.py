"""A class starting, through the whole product (every service a process, as
`./jhaas up` runs it, and a real course hub from the local backend):

1. N participants apply with the join code and the leader accepts them all in
   one call: seconds from the accept's answer until every one is a user of the
   hub in the participants' group, next to the same users posted straight to a
   bare JupyterHub's REST API;
2. N sign-ins through the gateway's OAuth provider (hub /hub/oauth_login ->
   gateway /oauth/authorize -> hub callback, which asks the gateway for the
   token and userinfo), arriving evenly over a minute (open loop), next to as
   many GETs of the hub's sign-in page in the same pattern;
3. M servers spawned at once through the hub's REST API until each is ready,
   next to M spawns on a bare JupyterHub whose spawner is configured exactly
   like the course hub's.

Creating the accounts (an argon2 hash each, at most two at once) and signing
them in to the gateway are set-up: timed and printed, not figures.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.hubload import (
    BareHub,
    add_directly,
    hub_api,
    open_loop,
    spawn_all,
    spawner_traits,
    start_bare_hub,
    stop_all,
    stop_bare_hub,
    until_in_group,
)
from bench.reads import lock_timeouts
from deployer_svc.backends.local import teardown_all
from deployer_svc.settings import load_or_create_installation_id
from jhaas_launcher import second_factor
from jhaas_launcher.stack import Stack
from jhaas_schemas.hubnames import hub_username

T = TypeVar("T")
ADMIN_PASSWORD = "bench-admin-password-0123"
SYNC_TIMEOUT = 120.0
HUB_TIMEOUT = 180.0


@dataclass
class Person:
    username: str
    password: str
    user_id: str = ""
    bearer: dict[str, str] | None = None
    browser: httpx.AsyncClient | None = None  # holds the gateway's (then the hub's) cookies

    @property
    def hub_name(self) -> str:
        return hub_username(self.user_id)


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def ok(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in (codes or (200,)):
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


class Product:
    """The stack, seen through the gateway's API as its people use it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.api = httpx.AsyncClient(base_url=stack.gateway_url, timeout=60)

    async def sign_in(self, person: Person) -> None:
        browser = httpx.AsyncClient(base_url=self.stack.gateway_url, timeout=60)
        person.browser = browser
        # Governance and admins sign in with their second factor (set up the first time).
        person.bearer = await second_factor.sign_in(
            browser, person.username, person.password, keep_cookies=True
        )
        person.user_id = ok(await browser.get("/api/v1/auth/me", headers=person.bearer))["user_id"]

    async def create(self, admin: dict[str, str], person: Person, *roles: str) -> None:
        body = {"username": person.username, "password": person.password, "roles": list(roles)}
        person.user_id = ok(await self.api.post("/api/v1/users", headers=admin, json=body), 201)[
            "user_id"
        ]

    async def submit_and_approve(self, leader: Person, reviewer: Person, count: int) -> str:
        starts_at = (datetime.now(UTC) + timedelta(seconds=90)).replace(microsecond=0)
        course = {
            "title": "Class start",
            "slug": "class-start",
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(hours=2)).isoformat(),
            "image": "quay.io/jupyter/minimal-notebook:2024-12-02",
            "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
            "expected_participants": count,
        }
        submitted = await self.api.post("/api/v1/requests", headers=leader.bearer, json=course)
        request_id = str(ok(submitted, 201)["request_id"])
        deadline = time.monotonic() + 30
        while True:
            approved = await self.api.post(
                f"/api/v1/reviews/{request_id}/approve",
                headers=reviewer.bearer,
                json={"comment": "Go ahead", "revision": 1},
            )
            if approved.status_code == 200:
                return request_id
            if approved.status_code != 404 or time.monotonic() > deadline:
                ok(approved)
            await asyncio.sleep(0.2)  # the review is not there yet

    async def course(self, leader: Person, request_id: str) -> dict[str, Any]:
        """The course as its leader sees it, once participant-svc knows it and its hub runs."""
        deadline = time.monotonic() + HUB_TIMEOUT
        while time.monotonic() < deadline:
            answer = await self.api.get(f"/api/v1/courses/{request_id}", headers=leader.bearer)
            if answer.status_code == 200:
                view: dict[str, Any] = answer.json()
                if view["hub_status"] == "running" and view["hub_url"]:
                    return view
            elif answer.status_code != 404:
                ok(answer)
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the course's hub was not running within {HUB_TIMEOUT:.0f}s")

    async def aclose(self, people: list[Person]) -> None:
        for person in people:
            if person.browser is not None:
                await person.browser.aclose()
        await self.api.aclose()


def hub_folder(stack: Stack) -> Path:
    [folder] = [path for path in (stack.data_dir / "hubs").iterdir() if path.is_dir()]
    return folder


async def apply_and_accept(
    product: Product, leader: Person, people: list[Person], request_id: str, hub: httpx.AsyncClient
) -> tuple[float, float, float]:
    """Set-up seconds (sign-ins and applications), the bulk accept's own seconds, and
    seconds from its answer until all are in the hub."""
    t0 = time.perf_counter()
    await bounded(4, [functools.partial(product.sign_in, p) for p in people])
    code = ok(await product.api.get(f"/api/v1/courses/{request_id}", headers=leader.bearer))[
        "join_code"
    ]

    async def apply(person: Person) -> None:
        assert person.browser is not None
        ok(await person.browser.post(f"/api/v1/join/{code}", headers=person.bearer), 200, 201)

    await bounded(16, [functools.partial(apply, p) for p in people])
    pending = ok(
        await product.api.get(
            f"/api/v1/courses/{request_id}/participations",
            headers=leader.bearer,
            params={"status": "pending"},
        )
    )["items"]
    assert len(pending) == len(people), f"{len(pending)} applications, not {len(people)}"
    setup = time.perf_counter() - t0
    ids = [item["participation_id"] for item in pending]
    t1 = time.perf_counter()
    ok(
        await product.api.post(
            f"/api/v1/courses/{request_id}/participations/accept",
            headers=leader.bearer,
            json={"participation_ids": ids},
        )
    )
    answered = time.perf_counter()
    in_hub = await until_in_group(hub, {p.hub_name for p in people}, SYNC_TIMEOUT)
    return setup, answered - t1, in_hub


async def oauth_sign_in(person: Person, hub_url: str) -> str | None:
    assert person.browser is not None
    landed = await person.browser.get(
        f"{hub_url}hub/oauth_login", params={"next": "/hub/home"}, follow_redirects=True
    )
    if landed.status_code != 200 or landed.url.path != "/hub/home":
        return f"{person.username}: {landed.status_code} at {landed.url}: {landed.text[:200]}"
    if not any(c.name.startswith("jupyterhub-") for c in person.browser.cookies.jar):
        return f"{person.username}: no hub cookie after the sign-in"
    return None


async def measure(
    stack: Stack, root: Path, participants: int, spawns: int, seconds: float
) -> list[str]:
    product = Product(stack)
    people = [Person(f"p{i:04d}", f"p{i:04d}-{secrets.token_hex(8)}") for i in range(participants)]
    leader, reviewer = Person("leader", "leader-password-123"), Person("gov", "gov-password-123")
    bare: BareHub | None = None
    lines = []
    try:
        admin = Person("admin", ADMIN_PASSWORD)
        await product.sign_in(admin)
        assert admin.bearer is not None
        await product.create(admin.bearer, leader, "leader")
        await product.create(admin.bearer, reviewer, "governance")
        await product.sign_in(leader)
        await product.sign_in(reviewer)
        t0 = time.perf_counter()
        request_id = await product.submit_and_approve(leader, reviewer, participants)

        async def hub_running() -> tuple[dict[str, Any], float]:
            view = await product.course(leader, request_id)
            return view, time.perf_counter() - t0

        hub_waiting = asyncio.create_task(hub_running())
        admin_bearer = admin.bearer
        await bounded(
            4, [functools.partial(product.create, admin_bearer, p, "participant") for p in people]
        )
        created = time.perf_counter() - t0
        view, hub_up = await hub_waiting
        hub_url = str(view["hub_url"])
        folder = hub_folder(stack)
        token = (folder / "api_token").read_text().strip()
        async with hub_api(hub_url, token) as hub:
            setup, accept, in_hub = await apply_and_accept(product, leader, people, request_id, hub)
            lines.append(
                f"  set-up, not measured: {participants} accounts created in {created:.1f}s;"
                f" hub running {hub_up:.1f}s after approval; {participants} gateway sign-ins"
                f" and applications {setup:.1f}s"
            )
            spawner = spawner_traits(folder)
            limits = spawner["sections"].get("IsolatedSpawner", {}).get("cgroup_procs")
            lines.append(
                f"  the course hub's spawner: {spawner['spawner_class']}"
                + (
                    f" (own system accounts, cgroups: {'yes' if limits else 'no'})"
                    if spawner["spawner_class"] == "jhaas-isolated"
                    else ""
                )
            )
            lines.append(
                f"  accept in bulk -> all {participants} in the hub's group:"
                f" {accept + in_hub:6.2f}s  (accept answered in {accept:.2f}s, roster sync"
                f" {in_hub:.2f}s after)"
            )
            signins = await open_loop(
                participants, seconds, lambda i: oauth_sign_in(people[i], hub_url)
            )
            async with httpx.AsyncClient(timeout=60) as plain:

                async def login_page(i: int) -> str | None:
                    answer = await plain.get(f"{hub_url}hub/login")
                    return None if answer.status_code == 200 else f"{answer.status_code}"

                pages = await open_loop(participants, seconds, login_page)
        names = [p.hub_name for p in people[:spawns]]
        # The course hub through its public URL, as people's spawn pages ask it (its
        # proxy forwards a class at once, backends/proxy.py); the bare hub on its own
        # port, since its stock proxy forwards 10 at a time: the spawner's cost alone.
        async with hub_api(hub_url, token) as hub:
            spawned = await spawn_all(hub, names)
            await stop_all(hub, names)
        bare = await start_bare_hub(root, folder)
        async with hub_api(bare.url, bare.token) as bare_api:
            direct = await add_directly(bare_api, [p.hub_name for p in people])
        async with hub_api(bare.internal, bare.token) as bare_api:
            bare_spawned = await spawn_all(bare_api, names)
            await stop_all(bare_api, names)
        lines.append(
            f"  baseline: the same {participants} users posted straight to a bare JupyterHub"
            f" (POST users, POST group users): {direct:6.2f}s"
        )
        lines.append(f"\n  {participants} arrivals evenly over {seconds:.0f}s (open loop):")
        lines.append(signins.row("OAuth sign-in, hub -> gateway -> hub /hub/home"))
        lines.append(pages.row("baseline: GET the hub's /hub/login page       "))
        lines.append(
            f"\n  {spawns} servers spawned at once (course hub through its proxy, bare hub"
            " on its own port), POST -> ready (polled every 0.2s):"
        )
        lines.append(spawned.row("course hub (local backend)"))
        lines.append(bare_spawned.row("bare JupyterHub, same spawner"))
        for timings in (signins, pages, spawned, bare_spawned):
            lines += [f"    error: {e}" for e in timings.errors[:3]]
        return lines
    finally:
        if bare is not None:
            await asyncio.to_thread(stop_bare_hub, bare)
        await product.aclose([*people, leader, reviewer])


async def main(participants: int, spawns: int, seconds: float) -> None:
    # Not under a 0700 temporary folder: the hub users' system accounts must reach
    # their homes in the data folder, as they do in /var/lib/jhaas.
    root = Path(tempfile.mkdtemp(prefix="jhaas-bench-classstart-", dir="/var/tmp"))
    os.chmod(root, 0o711)  # noqa: S103 (mkdtemp makes it 0700; /var/lib is 0755)
    try:
        stack = Stack(
            data_dir=root / "data",
            extra_env={
                "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "JHAAS_LOG_LEVEL": "INFO",
                # The course starts in 90 s: its hub is due at once.
                "JHAAS_DEPLOY_LEAD_MINUTES": "2",
            },
        )
        try:
            t0 = time.perf_counter()
            await stack.start()
            print(
                f"\n== class start: {participants} participants, one course hub (local backend),"
                f" whole stack started in {time.perf_counter() - t0:.1f}s =="
            )
            lines = await measure(stack, root, participants, spawns, seconds)
            print("\n".join(lines))
            locked = lock_timeouts(stack.log_dir)
            if locked:
                print("".join(f"    {line}\n" for line in locked[:5]), end="")
                raise SystemExit(
                    f"FAILED: {len(locked)} log lines say a database lock timed out; "
                    "the figures above do not count"
                )
        finally:
            stack.stop()
            await teardown_all(
                stack.data_dir / "hubs", load_or_create_installation_id(stack.data_dir)
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
