"""The reviewer's pages' tests (issue 11): NATS, request-svc, governance-svc and the
gateway as real processes (jhaas_launcher.stack.Stack), under a policy whose capacity
calendar is enforced and small enough that two big courses do not fit side by side.

A reviewer's browser session is a real sign-in with the second factor
(jhaas_launcher.second_factor keeps each account's authenticator app)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from jhaas_launcher import second_factor
from jhaas_launcher.natsauth import NATS_ADMIN, apply_streams
from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually

ADMIN_PASSWORD = "review-admin-password-0123"
# The target holds 100 cores: one course of 30 x 2 cores fits, two side by side do not.
CAPACITY = {
    "JHAAS_POLICY__CAPACITY__ENFORCED": "true",
    "JHAAS_POLICY__CAPACITY__CPU": '"100"',
    "JHAAS_POLICY__CAPACITY__MEMORY": '"1Ti"',
    "JHAAS_POLICY__CAPACITY__STORAGE": '"10Ti"',
}
SERVICES = ("request-svc", "governance-svc")
API = "/api/v1"


def password_of(username: str) -> str:
    return f"{username}'s password 1234"


@contextmanager
def review_stack(folder: Path) -> Iterator[Stack]:
    """The processes the reviewer's pages talk to (no participant-svc, no deployer)."""
    stack = Stack(data_dir=folder / "data")
    url = f"http://localhost:{stack.gateway_port}"
    stack.extra_env = {
        "JHAAS_PUBLIC_URL": url,
        "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JHAAS_LOG_FORMAT": "console",
        **CAPACITY,
    }

    async def start() -> None:
        await apply_streams(stack.nats_url, stack.credentials.seed_file(NATS_ADMIN), replicas=1)
        for name in SERVICES:
            await stack.start_service(name)
        await stack.start_service("gateway")

    try:
        stack.start_nats()
        asyncio.run(start())
        yield stack
    finally:
        stack.stop()


@dataclass
class People:
    """Signed-in API headers by username, and the gateway's URL."""

    url: str
    headers: dict[str, dict[str, str]]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=15)


async def make_people(url: str, people: dict[str, tuple[str, ...]]) -> People:
    """Each username with its roles, created by the first admin and signed in (a
    governance or admin account sets up its authenticator app)."""
    headers: dict[str, dict[str, str]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        admin = await second_factor.sign_in(client, "admin", ADMIN_PASSWORD)
        headers["admin"] = admin
        for username, roles in people.items():
            made = await client.post(
                f"{API}/users",
                headers=admin,
                json={"username": username, "password": password_of(username), "roles": roles},
            )
            assert made.status_code == 201, made.text
            headers[username] = await second_factor.sign_in(client, username, password_of(username))
    return People(url, headers)


def course(
    title: str, slug: str, participants: int, *, cpu: str = "2", starts_in: int = 30
) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=starts_in)).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    return {
        "title": title,
        "slug": slug,
        "description": "Lab sessions",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=60)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2025-01-01",
        "default_interface": "lab",
        "resources": {"cpu": cpu, "memory": "4Gi", "storage": "10Gi"},
        "expected_participants": participants,
    }


async def submit(people: People, leader: str, body: dict[str, Any], reviewer: str) -> str:
    """A request of `leader`, once governance-svc has its review (with its checks)."""
    async with people.client() as client:
        made = await client.post(f"{API}/requests", headers=people.headers[leader], json=body)
        assert made.status_code == 201, made.text
        request_id = str(made.json()["request_id"])
        await eventually(
            lambda: client.get(f"{API}/reviews/{request_id}", headers=people.headers[reviewer]),
            lambda r: r.status_code == 200 and r.json()["checks"] is not None,
        )
    return request_id


async def approve(people: People, request_id: str, reviewer: str) -> None:
    async with people.client() as client:
        done = await client.post(
            f"{API}/reviews/{request_id}/approve",
            headers=people.headers[reviewer],
            json={"comment": "fine"},
        )
        assert done.status_code == 200, done.text


async def propose_change(people: People, leader: str, request_id: str, reviewer: str) -> str:
    """A change of an approved course (more participants) that waits for a reviewer."""
    async with people.client() as client:

        async def approved() -> httpx.Response:
            return await client.get(f"{API}/requests/{request_id}", headers=people.headers[leader])

        await eventually(approved, lambda r: r.json()["status"] == "approved")
        r = await client.post(
            f"{API}/requests/{request_id}/changes",
            headers=people.headers[leader],
            json={"changes": {"expected_participants": 12}, "comment": "two more groups"},
        )
        assert r.status_code in (200, 201), r.text
        change_id = str(r.json()["change"]["change_id"])

        async def waiting() -> bool:
            seen = await client.get(f"{API}/reviews/{request_id}", headers=people.headers[reviewer])
            changes = seen.json().get("changes", []) if seen.status_code == 200 else []
            return any(c["change_id"] == change_id and c["state"] == "pending" for c in changes)

        await eventually(waiting)
    return change_id


async def browser_session(url: str, username: str) -> httpx.Cookies:
    """The cookies of a fully signed-in session of `username` (second step done), as a
    browser holds them after signing in."""
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        await second_factor.sign_in(client, username, password_of(username), keep_cookies=True)
        return httpx.Cookies(client.cookies)


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
