"""A course's whole life through the gateway, with the real schedule: a leader
asks for a hub that starts in a few seconds, governance approves it, the
deployer builds a real JupyterHub (local backend) that answers before the
course starts, and tears it down with its folder after the course ends; the
leader follows it as approved -> deploying -> running -> ending -> deleted.
A second course, cancelled before its deploy time, is deleted without ever
getting a hub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually

pytestmark = pytest.mark.e2e

# The first admin's password conftest's `make_user` logs in with.
ADMIN_PASSWORD = "e2e-admin-password-0123"
# The order in which a leader may see a course that is approved, runs and ends;
# the leader looks every 50 ms. `submitted` and `approved` may pass unseen
# (approval lasts only until the deployer, already due, starts building); every
# status of the hub's own life lasts seconds and must be seen.
LIFECYCLE = ("submitted", "approved", "deploying", "running", "ending", "deleted")
REQUIRED = frozenset({"deploying", "running", "ending", "deleted"})

MakeUser = Callable[..., Awaitable[dict[str, str]]]
Login = Callable[[str, str], Awaitable[dict[str, str]]]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The whole product, deploying hubs one minute (not 30) before their course.

    Overrides conftest's `stack`, so its `client`, `login` and `make_user` use this one."""
    stack = Stack(
        data_dir=tmp_path / "data",
        extra_env={
            "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "JHAAS_LOG_FORMAT": "console",
            "JHAAS_DEPLOY_LEAD_MINUTES": "1",
            "JHAAS_TEARDOWN_GRACE_MINUTES": "0",
        },
    )
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


def course(slug: str, starts_at: datetime, ends_at: datetime) -> dict[str, Any]:
    return {
        "title": f"Course {slug}",
        "slug": slug,
        "description": "End-to-end lifecycle",
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "default_interface": "lab",
        "resources": {"cpu": "1", "memory": "2Gi", "storage": "5Gi"},
        "expected_participants": 10,
    }


def whole_seconds_from_now(seconds: int) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


@dataclass
class Watch:
    """Every distinct status the leader saw, in order, and the hub's first answer."""

    statuses: list[str] = field(default_factory=list)
    hub_url: str | None = None
    hub_status_code: int | None = None
    hub_answered_at: datetime | None = None
    folders_while_running: list[str] = field(default_factory=list)


async def watch_request(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    request_id: str,
    watch: Watch,
    hubs_dir: Path,
    *,
    until: frozenset[str],
    timeout: float,
) -> None:
    """Poll the leader's view until a status in `until`; ask the hub's API as soon
    as the leader sees it running (that is when it must already answer)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as hub_client:
        while True:
            r = await client.get(f"/api/v1/requests/{request_id}", headers=headers)
            assert r.status_code == 200, r.text
            view = r.json()
            status = str(view["status"])
            if not watch.statuses or watch.statuses[-1] != status:
                watch.statuses.append(status)
            if status == "running" and watch.hub_url is None:
                assert view["hub_url"], view
                watch.hub_url = str(view["hub_url"])
                answer = await hub_client.get(f"{watch.hub_url}hub/api/")
                watch.hub_answered_at = datetime.now(UTC)
                watch.hub_status_code = answer.status_code
                watch.folders_while_running = folder_names(hubs_dir)
            if status in until:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{request_id} not in {set(until)} within {timeout}s: {watch}")
            await asyncio.sleep(0.05)


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def is_subsequence(seen: list[str], order: tuple[str, ...]) -> bool:
    position = iter(order)
    return all(status in position for status in seen)


async def test_a_course_gets_a_hub_before_it_starts_and_loses_it_after_it_ends(
    stack: Stack, client: httpx.AsyncClient, make_user: MakeUser, login: Login
) -> None:
    leader = await make_user("lea", "leader")
    reviewer = await make_user("gus", "governance")
    admin = await login("admin", ADMIN_PASSWORD)
    hubs_dir = stack.data_dir / "hubs"

    # Starts in ~25 s (deploy time, one minute earlier, is already past); ends 15 s later.
    starts_at = whole_seconds_from_now(25)
    ends_at = starts_at + timedelta(seconds=15)
    submitted = await client.post(
        "/api/v1/requests", headers=leader, json=course("live-1", starts_at, ends_at)
    )
    assert submitted.status_code == 201, submitted.text
    live_id = submitted.json()["request_id"]

    # A course far enough ahead (deploy time in ~9 minutes) that it is cancelled unbuilt.
    later = whole_seconds_from_now(600)
    submitted = await client.post(
        "/api/v1/requests",
        headers=leader,
        json=course("later-1", later, later + timedelta(hours=2)),
    )
    assert submitted.status_code == 201, submitted.text
    later_id = submitted.json()["request_id"]

    async def pending_reviews() -> set[str]:
        r = await client.get("/api/v1/reviews", headers=reviewer, params={"state": "pending"})
        assert r.status_code == 200, r.text
        return {item["request_id"] for item in r.json()["items"]}

    await eventually(pending_reviews, lambda ids: {live_id, later_id} <= ids)

    async def approve(request_id: str) -> None:
        r = await client.post(
            f"/api/v1/reviews/{request_id}/approve",
            headers=reviewer,
            json={"comment": "Go ahead", "revision": 1},
        )
        assert r.status_code == 200, r.text

    async def deployments(request_id: str) -> list[dict[str, Any]]:
        r = await client.get(
            "/api/v1/deployments", headers=admin, params={"request_id": request_id}
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    live = Watch()
    watcher = asyncio.create_task(
        watch_request(
            client, leader, live_id, live, hubs_dir, until=frozenset({"deleted"}), timeout=80
        )
    )
    try:
        await approve(live_id)
        await approve(later_id)

        # --- The cancelled course: approved, scheduled, cancelled, deleted unbuilt.
        async def later_status() -> str:
            r = await client.get(f"/api/v1/requests/{later_id}", headers=leader)
            assert r.status_code == 200, r.text
            return str(r.json()["status"])

        await eventually(later_status, lambda s: s == "approved")
        [scheduled] = await eventually(lambda: deployments(later_id), lambda items: len(items) == 1)
        assert scheduled["state"] == "scheduled", scheduled
        cancelled = await client.post(
            f"/api/v1/requests/{later_id}/cancel", headers=leader, json={"reason": "No room"}
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        await eventually(later_status, lambda s: s == "deleted")
        [unbuilt] = await deployments(later_id)
        assert unbuilt["state"] == "deleted", unbuilt
        assert unbuilt["hub_url"] is None
        assert not (hubs_dir / scheduled["deployment_id"]).exists()

        # --- The live course: built before it starts, torn down after it ends.
        [live_deployment] = await eventually(
            lambda: deployments(live_id), lambda items: len(items) == 1
        )
        await watcher
    finally:
        if not watcher.done():
            watcher.cancel()

    assert live.hub_url is not None, live
    assert live.hub_status_code == 200, live
    assert live.hub_answered_at is not None and live.hub_answered_at < starts_at, (
        f"the hub answered at {live.hub_answered_at}, the course starts at {starts_at}"
    )
    assert is_subsequence(live.statuses, LIFECYCLE), live.statuses
    assert set(live.statuses) >= REQUIRED, live.statuses

    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=5) as hub_client:
            await hub_client.get(f"{live.hub_url}hub/api/")
    # The running hub had its folder (the cancelled course never had one); it is gone.
    assert live.folders_while_running == [live_deployment["deployment_id"]], live
    folder = hubs_dir / live_deployment["deployment_id"]
    assert folder_names(folder) == []
    assert folder_names(hubs_dir) == []

    [gone] = await deployments(live_id)
    assert gone["state"] == "deleted", gone
    assert gone["hub_url"] == live.hub_url or gone["hub_url"] is None, gone
    assert datetime.fromisoformat(gone["teardown_at"]) == ends_at, gone
    assert stack.dead() == []
