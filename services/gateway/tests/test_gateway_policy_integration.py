"""The policy in force, through the gateway to a real request-svc and governance-svc
(real NATS, SQLite and PostgreSQL), both reading one policy file that is
rewritten while they run.

A submission or edit breaking a rule is refused naming it; a policy tightened
after submission is caught when governance approves; the reviewer sees the
checks; a changed file applies without a restart and a broken one changes nothing.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from governance_svc.app import build_app as build_governance_svc
from jhaas_launcher.processes import PostgresServer
from jhaas_launcher.testing import eventually
from jhaas_runtime.policy_holder import PolicyHolder
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from request_svc.app import build_app as build_request_svc

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    Client,
    LoopThread,
    assert_error,
    bearer,
    create_user,
    hub_spec,
    leader_token,
    token_for,
)

pytestmark = pytest.mark.integration

POLICY = """\
limits:
  cpu: {min: 500m, max: 2}
  memory: {min: 1Gi, max: 8Gi}
  storage: {min: 1Gi, max: 20Gi}
  gpus: {max: 0}
course:
  max_participants: 40
  max_duration_days: 100
  max_advance_days: 60
  min_lead_time_hours: 48
images:
  allow_custom: true
  allowed: ["quay.io/jupyter/*"]
presets:
  - name: r
    title: R (tidyverse)
    description: R with the tidyverse
    image: docker.io/rocker/binder:4.4.1
    resources: {cpu: 1, memory: 2Gi, storage: 1Gi}
capacity: {cpu: 64, memory: 256Gi, storage: 2Ti, enforced: false}
"""


@dataclass
class World:
    client: Client
    leader: str
    reviewer: str
    path: Path
    holders: tuple[PolicyHolder, PolicyHolder]

    def write(self, text: str) -> None:
        self.path.write_text(text)

    async def version(self, token: str | None = None) -> str:
        response = await self.client.get("/api/v1/policy", headers=bearer(token or self.leader))
        assert response.status_code == 200, response.text
        version: str = response.json()["version"]
        return version

    async def submit(self, **overrides: Any) -> Any:
        return await self.client.post(
            "/api/v1/requests", json=hub_spec(**overrides), headers=bearer(self.leader)
        )


def own_database(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, name: str
) -> str:
    """A database of the service's own, on the same engine as the gateway's."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"p_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def world(
    request: pytest.FixtureRequest,
    client: Client,
    settings_for: Callable[..., RuntimeSettings],
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[World]:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    runtimes: list[ServiceRuntime] = []
    holders = []
    for name, build in (
        ("request-svc", build_request_svc),
        ("governance-svc", build_governance_svc),
    ):
        holder = PolicyHolder(path, {}, poll_seconds=0.1)
        url = own_database(request, database_url, tmp_path, name)
        runtime = build(
            settings_for(name, database_url=url, data_dir=tmp_path / name), policy=holder
        )
        runtime.add_background("policy-reload", holder.watch)
        runtimes.append(runtime)
        holders.append(holder)
    with LoopThread() as thread:
        for runtime in runtimes:
            await thread.run(runtime.start())
            await thread.run(runtime.nc.flush())
        try:
            leader = await leader_token(client)
            admin = await token_for(client, *ADMIN)
            await create_user(client, admin, "gus", "governance password 1", "governance")
            reviewer = await token_for(client, "gus", "governance password 1")
            yield World(client, leader, reviewer, path, (holders[0], holders[1]))
        finally:
            for runtime in runtimes:
                await thread.run(runtime.stop())


def later(days: float) -> str:
    return (datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)).isoformat()


RES = {"cpu": "1", "memory": "2Gi", "storage": "5Gi"}
CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"resources": RES | {"cpu": "3"}}, "spec.resources.cpu", "limits.cpu.max"),
    ({"resources": RES | {"cpu": "250m"}}, "spec.resources.cpu", "limits.cpu.min"),
    ({"resources": RES | {"memory": "16Gi"}}, "spec.resources.memory", "limits.memory.max"),
    ({"resources": RES | {"memory": "512Mi"}}, "spec.resources.memory", "limits.memory.min"),
    ({"resources": RES | {"storage": "50Gi"}}, "spec.resources.storage", "limits.storage.max"),
    ({"resources": RES | {"storage": "512Mi"}}, "spec.resources.storage", "limits.storage.min"),
    ({"resources": RES | {"gpus": 1}}, "spec.resources.gpus", "limits.gpus.max"),
    ({"expected_participants": 41}, "spec.expected_participants", "course.max_participants"),
    ({"ends_at": later(14 + 101)}, "spec.ends_at", "course.max_duration_days"),
    ({"starts_at": later(61), "ends_at": later(62)}, "spec.starts_at", "course.max_advance_days"),
    ({"starts_at": later(1), "ends_at": later(2)}, "spec.starts_at", "course.min_lead_time_hours"),
    ({"image": "docker.io/library/python:3.12"}, "spec.image", "images.allowed"),
    ({"preset": "julia"}, "spec.preset", "presets"),
]


async def test_each_rule_refuses_a_submission_and_an_edit_naming_it(world: World) -> None:
    good = await world.submit(slug="good-1")
    assert good.status_code == 201, good.text
    request_id = good.json()["request_id"]
    for overrides, field, rule in CASES:
        refused = assert_error(await world.submit(slug="bad-1", **overrides), 422, "invalid")
        assert refused["fields"][field].startswith(f"{rule}:"), (rule, refused)
        edit = await world.client.patch(
            f"/api/v1/requests/{request_id}",
            json={"changes": overrides},
            headers=bearer(world.leader),
        )
        assert assert_error(edit, 422, "invalid")["fields"][field].startswith(f"{rule}:")
    listed = await world.client.get("/api/v1/requests", headers=bearer(world.leader))
    assert [item["spec"]["slug"] for item in listed.json()["items"]] == ["good-1"]
    unchanged = await world.client.get(
        f"/api/v1/requests/{request_id}", headers=bearer(world.leader)
    )
    assert unchanged.json()["revision"] == 1


async def test_presets_only_refuses_a_typed_image_at_submission_and_edit(world: World) -> None:
    typed = await world.submit(slug="typed-1")  # a typed image the patterns allow
    assert typed.status_code == 201, typed.text
    request_id = typed.json()["request_id"]

    before = world.holders[0]().version
    world.write(POLICY.replace("allow_custom: true", "allow_custom: false"))
    await eventually(_version(world.holders[0]), lambda version: version != before)
    refused = await world.submit(slug="typed-2")
    field = assert_error(refused, 422, "invalid")["fields"]["spec.image"]
    assert field.startswith("images.allow_custom:"), field
    edit = await world.client.patch(
        f"/api/v1/requests/{request_id}",
        json={"changes": {"image": "quay.io/jupyter/r-notebook:2025-03-14"}},
        headers=bearer(world.leader),
    )
    field = assert_error(edit, 422, "invalid")["fields"]["spec.image"]
    assert field.startswith("images.allow_custom:"), field
    # A preset's image is still fine, also as an edit.
    picked = await world.client.patch(
        f"/api/v1/requests/{request_id}",
        json={"changes": {"preset": "r"}},
        headers=bearer(world.leader),
    )
    assert picked.status_code == 200, picked.text
    assert picked.json()["spec"]["image"] == "docker.io/rocker/binder:4.4.1"


async def test_a_preset_fills_in_a_submission(world: World) -> None:
    spec = {k: v for k, v in hub_spec(preset="r").items() if k not in ("image", "resources")}
    response = await world.client.post("/api/v1/requests", json=spec, headers=bearer(world.leader))
    assert response.status_code == 201, response.text
    got = response.json()["spec"]
    assert got["preset"] == "r" and got["image"] == "docker.io/rocker/binder:4.4.1"
    assert got["resources"] == {"cpu": "1", "memory": "2Gi", "storage": "1Gi", "gpus": 0}
    presets = await world.client.get("/api/v1/presets", headers=bearer(world.leader))
    assert [p["name"] for p in presets.json()] == ["r"]


async def test_the_published_policy_shows_capacity_to_governance_only(world: World) -> None:
    leader = (await world.client.get("/api/v1/policy", headers=bearer(world.leader))).json()
    assert leader["course"]["max_participants"] == 40
    assert leader["presets"][0]["name"] == "r"
    assert leader["capacity"] is None and leader["auto_approval"] is None
    reviewer = (await world.client.get("/api/v1/policy", headers=bearer(world.reviewer))).json()
    assert reviewer["capacity"]["cpu"] == "64"
    assert reviewer["auto_approval"]["enabled"] is False
    assert reviewer["version"] == leader["version"] == world.holders[1]().version
    anonymous = await world.client.get("/api/v1/policy")
    assert anonymous.status_code == 401


async def review(world: World, request_id: str) -> dict[str, Any]:
    async def probe() -> Any:
        return await world.client.get(
            f"/api/v1/reviews/{request_id}", headers=bearer(world.reviewer)
        )

    response = await eventually(probe, lambda r: r.status_code == 200)
    body: dict[str, Any] = response.json()
    return body


async def test_the_reviewer_sees_the_checks_with_totals_and_core_hours(world: World) -> None:
    response = await world.submit(starts_at=later(14), ends_at=later(24), expected_participants=30)
    checks = (await review(world, response.json()["request_id"]))["checks"]
    assert checks["passed"] is True
    rules = {rule["rule"]: rule for rule in checks["rules"]}
    assert rules["limits.cpu.max"] == {
        "rule": "limits.cpu.max", "passed": True, "value": "1", "limit": "at most 2", "message": ""
    }  # fmt: skip
    assert rules["course.max_participants"]["value"] == "30"
    totals = {total["resource"]: total for total in checks["totals"]}
    assert totals["cpu"] | {} == {
        "resource": "cpu", "per_user": "1", "total": "30 cores", "amount": 30_000,
        "unit": "millicores",
    }  # fmt: skip
    assert (totals["memory"]["total"], totals["memory"]["amount"]) == ("60 GiB", 60 * 2**30)
    assert totals["storage"]["total"] == "150 GiB"
    assert checks["core_hours"] == 30 * 10 * 24  # 1 core x 30 people x 240 hours
    # The calendar's verdict is shown even when it never refuses (capacity not enforced).
    assert checks["calendar"]["fits"] is True and checks["calendar"]["enforced"] is False
    assert checks["policy_version"] == await world.version()


async def test_a_policy_tightened_after_submission_is_caught_at_approval(world: World) -> None:
    response = await world.submit(expected_participants=30)
    request_id = response.json()["request_id"]
    assert (await review(world, request_id))["checks"]["passed"] is True
    before = await world.version()

    world.write(POLICY.replace("max_participants: 40", "max_participants: 20"))
    await eventually(world.version, lambda version: version != before)
    await eventually(lambda: world.version(world.reviewer), lambda version: version != before)

    seen = await review(world, request_id)
    failed = [rule for rule in seen["checks"]["rules"] if not rule["passed"]]
    assert [(r["rule"], r["value"], r["limit"]) for r in failed] == [
        ("course.max_participants", "30", "at most 20")
    ]
    approve = await world.client.post(
        f"/api/v1/reviews/{request_id}/approve",
        json={"revision": 1},
        headers=bearer(world.reviewer),
    )
    refused = assert_error(approve, 409, "conflict")
    assert refused["fields"]["spec.expected_participants"].startswith("course.max_participants:")
    assert (await review(world, request_id))["state"] == "pending"

    world.write(POLICY)  # loosened again: the same request may now be approved
    await eventually(lambda: world.version(world.reviewer), lambda version: version == before)
    approve = await world.client.post(
        f"/api/v1/reviews/{request_id}/approve", json={}, headers=bearer(world.reviewer)
    )
    assert approve.status_code == 200, approve.text


async def test_a_changed_file_applies_without_restart_and_a_broken_one_changes_nothing(
    world: World,
) -> None:
    before = await world.version()
    assert (await world.submit(slug="big-1", expected_participants=40)).status_code == 201

    world.write(POLICY.replace("max_participants: 40", "max_participants: 35"))
    await eventually(lambda: world.submit(slug="big-2", expected_participants=40),
                     lambda r: r.status_code == 422)  # fmt: skip
    # Every holder reads the tightened file before it breaks (each polls on its own).
    for holder in world.holders:
        await eventually(_version(holder), lambda version: version != before)
    tightened = world.holders[0]().version
    assert tightened == world.holders[1]().version

    world.write(POLICY.replace("max_participants: 40", "max_participants: many"))
    # The holders read the broken file and keep what they had.
    for holder in world.holders:
        await eventually(_problem(holder), lambda problem: problem is not None)
    assert world.holders[0]().version == tightened == world.holders[1]().version
    assert await world.version() == tightened
    refused = assert_error(await world.submit(slug="big-3", expected_participants=40), 422,
                           "invalid")  # fmt: skip
    assert refused["fields"]["spec.expected_participants"].startswith("course.max_participants:")
    assert (await world.submit(slug="small-1", expected_participants=35)).status_code == 201


def _version(holder: PolicyHolder) -> Callable[[], Awaitable[str]]:
    async def probe() -> str:
        return holder().version

    return probe


def _problem(holder: PolicyHolder) -> Callable[[], Awaitable[str | None]]:
    async def probe() -> str | None:
        return holder.problem

    return probe
