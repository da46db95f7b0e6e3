"""Courses and participants through the gateway to a real participant-svc (and a
real request-svc), on SQLite and PostgreSQL: every refusal a participant, a tutor
or another leader can meet is a clear 4xx, and nothing changes."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
import sqlalchemy as sa

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import Event, cloudevents_headers, envelope
from jhaas_schemas.events import HubDeleted, RequestApproved, encode_event
from jhaas_schemas.model import DeletionRecord, HubSpec
from participant_svc.store import course_tutors, courses, participations

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    BASE_URL,
    Client,
    assert_error,
    bearer,
    create_user,
    hub_spec,
    leader_token,
    token_for,
)

pytestmark = pytest.mark.integration

API = "/api/v1"


class Course:
    """One approved course and the people around it, signed in."""

    def __init__(self, client: Client, request_id: str, tokens: dict[str, str]) -> None:
        self.client = client
        self.id = request_id
        self.tokens = tokens
        self.code = ""

    async def get(self, who: str, path: str) -> Any:
        return await self.client.get(f"{API}{path}", headers=bearer(self.tokens[who]))

    async def post(self, who: str, path: str, body: Any = None) -> Any:
        return await self.client.post(f"{API}{path}", json=body, headers=bearer(self.tokens[who]))

    async def apply(self, who: str, code: str | None = None) -> Any:
        return await self.post(who, f"/join/{code or self.code}", {"message": f"I am {who}"})

    async def ids(self, status: str) -> list[str]:
        listed = await self.get("lea", f"/courses/{self.id}/participations?status={status}")
        assert listed.status_code == 200, listed.text
        return [p["participation_id"] for p in listed.json()["items"]]


async def publish(nats_server: NatsServer, event: Event) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().publish(
            event.subject, encode_event(event), headers=cloudevents_headers(event)
        )
    finally:
        await nc.close()


@pytest.fixture
async def course(
    client: Client,
    request_svc: ServiceRuntime,
    participant_svc: ServiceRuntime,
    nats_server: NatsServer,
) -> Course:
    """A request submitted through the gateway and approved for 2 participants."""
    tokens = {"lea": await leader_token(client)}
    admin = await token_for(client, *ADMIN)
    for name in ("ann", "bob", "cat", "tom"):
        await create_user(client, admin, name, f"{name} password 12", "participant")
    await create_user(client, admin, "eve", "eve password 123", "leader")
    response = await client.post(
        f"{API}/users",
        json={"username": "dan", "password": "dan password 12", "display_name": "=HYPERLINK(1)"},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    for name in ("ann", "bob", "cat", "tom", "eve", "dan"):
        password = "eve password 123" if name == "eve" else f"{name} password 12"
        tokens[name] = await token_for(client, name, password)

    submitted = await client.post(
        f"{API}/requests", json=hub_spec(expected_participants=2), headers=bearer(tokens["lea"])
    )
    assert submitted.status_code == 201, submitted.text
    request = submitted.json()
    await publish(
        nats_server,
        RequestApproved(
            **envelope(source="governance-svc", correlation_id="c-approve"),
            request_id=request["request_id"],
            review_id="rv-1",
            leader_id=request["leader_id"],
            decided_by="u-gov",
            revision=1,
            configuration=msgspec.convert(request["spec"], HubSpec),
        ),
    )
    found = Course(client, request["request_id"], tokens)
    shown = await eventually(
        lambda: found.get("lea", f"/courses/{found.id}"), lambda r: r.status_code == 200
    )
    found.code = shown.json()["join_code"]
    return found


async def test_people_join_with_the_code_and_the_leader_decides(course: Course) -> None:
    shown = (await course.get("lea", f"/courses/{course.id}")).json()
    assert shown["join_url"] == f"{BASE_URL}/join/{course.code}"
    assert (shown["max_participants"], shown["accepted"], shown["hub_status"]) == (
        2,
        0,
        "scheduled",
    )

    preview = await course.get("ann", f"/join/{course.code.lower()}")
    assert preview.status_code == 200, preview.text
    assert preview.json()["title"] == "Data Science 101"
    for who in ("ann", "bob", "cat"):
        applied = await course.apply(who)
        assert applied.status_code == 201, applied.text
        assert applied.json()["status"] == "pending"

    mine = (await course.get("ann", "/courses")).json()["items"]
    assert [(c["request_id"], c["role"], c["participation_status"]) for c in mine] == [
        (course.id, None, "pending")
    ]
    pending = await course.ids("pending")
    accepted = await course.post(
        "lea", f"/courses/{course.id}/participations/accept", {"participation_ids": pending[:2]}
    )
    assert accepted.status_code == 200, accepted.text
    assert [p["status"] for p in accepted.json()["items"]] == ["accepted", "accepted"]
    rejected = await course.post(
        "lea",
        f"/courses/{course.id}/participations/reject",
        {"participation_ids": pending[2:], "reason": "the room is full"},
    )
    assert rejected.json()["items"][0]["reason"] == "the room is full"
    reopened = await course.post("lea", f"/courses/{course.id}/participations/{pending[2]}/reopen")
    assert reopened.json()["status"] == "pending"

    mine = (await course.get("ann", "/courses")).json()["items"]
    assert [(c["role"], c["hub_status"]) for c in mine] == [("participant", "scheduled")]
    removed = await course.post(
        "lea", f"/courses/{course.id}/participations/{pending[0]}/remove", {"reason": "left town"}
    )
    assert removed.json()["status"] == "removed"
    left = await course.post("bob", f"/courses/{course.id}/leave")
    assert left.status_code == 200, left.text
    assert left.json()["status"] == "left"
    assert await course.ids("accepted") == []


async def test_every_bad_join_or_decision_is_refused_and_changes_nothing(course: Course) -> None:
    cid = course.id
    unknown = await course.apply("ann", "ZZZZZZZZZZ")
    assert "join code" in assert_error(unknown, 404, "not_found")["message"]
    assert (await course.apply("ann")).status_code == 201
    assert "already" in assert_error(await course.apply("ann"), 409, "conflict")["message"]
    assert "leader" in assert_error(await course.apply("lea"), 409, "conflict")["message"]

    old = course.code
    rotated = await course.post("lea", f"/courses/{cid}/join-code/rotate")
    assert rotated.status_code == 200, rotated.text
    course.code = rotated.json()["join_code"]
    assert rotated.json()["join_url"].endswith(f"/join/{course.code}")
    assert "join code" in assert_error(await course.apply("bob", old), 404, "not_found")["message"]
    assert_error(await course.get("bob", f"/join/{old}"), 404, "not_found")

    closed = await course.client.put(
        f"{API}/courses/{cid}/join-code", json={"open": False}, headers=bearer(course.tokens["lea"])
    )
    assert closed.json()["join_open"] is False
    assert_error(await course.apply("bob"), 404, "not_found")
    reopened = await course.client.put(
        f"{API}/courses/{cid}/join-code", json={"open": True}, headers=bearer(course.tokens["lea"])
    )
    assert reopened.json()["join_open"] is True
    assert (await course.apply("bob")).status_code == 201
    assert (await course.apply("cat")).status_code == 201

    pending = await course.ids("pending")
    accept = f"/courses/{cid}/participations/accept"
    past = await course.post("lea", accept, {"participation_ids": pending})
    assert "limit of 2" in assert_error(past, 409, "conflict")["message"]
    assert await course.ids("accepted") == []  # all or none
    never = await course.post("lea", accept, {"participation_ids": ["no-such-application"]})
    assert "no-such-application" in assert_error(never, 404, "not_found")["message"]
    # Another leader is not told the course exists; an applicant (ann) knows it.
    other = await course.post("eve", accept, {"participation_ids": pending[:1]})
    assert_error(other, 404, "not_found")
    assert_error(await course.get("eve", f"/courses/{cid}/participations"), 404, "not_found")
    assert_error(await course.get("ann", f"/courses/{cid}/roster.csv"), 403, "forbidden")
    assert_error(await course.post("ann", f"/courses/{cid}/join-code/rotate"), 403, "forbidden")
    empty = await course.post("lea", accept, {"participation_ids": []})
    assert_error(empty, 422, "invalid")
    assert await course.ids("accepted") == []
    assert_error(await course.post("dan", f"/courses/{cid}/leave"), 404, "not_found")
    assert_error(await course.get("lea", "/courses/no-such-course"), 404, "not_found")


async def test_a_tutor_decides_but_cannot_change_or_cancel_the_course(course: Course) -> None:
    cid = course.id
    unknown = await course.post("lea", f"/courses/{cid}/tutors", {"username": "nobody"})
    assert "nobody" in assert_error(unknown, 404, "not_found")["message"]
    # Not a tutor yet, tom has no tie to the course: it does not exist for him.
    not_leader = await course.post("tom", f"/courses/{cid}/tutors", {"username": "tom"})
    assert_error(not_leader, 404, "not_found")
    named = await course.post("lea", f"/courses/{cid}/tutors", {"username": "tom"})
    assert named.status_code == 200, named.text
    tom = named.json()["tutors"][0]

    assert (await course.apply("ann")).status_code == 201
    assert "tutor" in assert_error(await course.apply("tom"), 409, "conflict")["message"]
    pending = await course.ids("pending")
    by_tutor = await course.post(
        "tom", f"/courses/{cid}/participations/accept", {"participation_ids": pending}
    )
    assert by_tutor.status_code == 200, by_tutor.text
    assert_error(await course.post("tom", f"/courses/{cid}/join-code/rotate"), 403, "forbidden")
    assert_error(
        await course.post("tom", f"/courses/{cid}/tutors", {"username": "cat"}), 403, "forbidden"
    )
    cancel = await course.post("tom", f"/requests/{cid}/cancel", {"reason": "I am only a tutor"})
    assert cancel.status_code in (403, 404), cancel.text
    request = await course.get("lea", f"/requests/{cid}")
    assert request.json()["status"] == "approved"
    mine = (await course.get("tom", "/courses")).json()["items"]
    assert [c["role"] for c in mine] == ["tutor"]

    dropped = await course.client.delete(
        f"{API}/courses/{cid}/tutors/{tom}", headers=bearer(course.tokens["lea"])
    )
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["tutors"] == []
    again = await course.client.delete(
        f"{API}/courses/{cid}/tutors/{tom}", headers=bearer(course.tokens["lea"])
    )
    assert_error(again, 404, "not_found")


async def test_the_roster_exports_as_csv_that_no_spreadsheet_runs(course: Course) -> None:
    for who in ("ann", "dan"):
        assert (await course.apply(who)).status_code == 201
    pending = await course.ids("pending")
    await course.post(
        "lea", f"/courses/{course.id}/participations/accept", {"participation_ids": pending[:1]}
    )
    response = await course.get("lea", f"/courses/{course.id}/roster.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="roster-ds101.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["username", "display_name", "status", "applied_at", "decided_at"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["ann"][2] == "accepted" and by_name["ann"][4]
    assert by_name["dan"][1:3] == ["'=HYPERLINK(1)", "pending"]
    assert by_name["dan"][4] == ""


async def test_a_deleted_hub_takes_its_course_out_of_everyones_list(
    course: Course, participant_svc: ServiceRuntime, nats_server: NatsServer
) -> None:
    assert (await course.apply("ann")).status_code == 201
    await course.post("lea", f"/courses/{course.id}/tutors", {"username": "tom"})
    await publish(
        nats_server,
        HubDeleted(
            **envelope(source="deployer-svc", correlation_id="c-del"),
            deployment_id="d-1",
            request_id=course.id,
            record=DeletionRecord(backend="local", deleted_at=datetime.now(UTC)),
        ),
    )
    await eventually(
        lambda: course.get("lea", f"/courses/{course.id}"), lambda r: r.status_code == 404
    )
    for who in ("ann", "tom", "lea"):
        assert (await course.get(who, "/courses")).json()["items"] == []

    def rows(conn: sa.Connection) -> int:
        return sum(
            len(conn.execute(sa.select(t).where(t.c.request_id == course.id)).all())
            for t in (courses, course_tutors, participations)
        )

    assert await participant_svc.db.read(rows) == 0


async def test_guessing_join_codes_is_slowed_down_for_that_person_only(course: Course) -> None:
    guesses = [f"ZZZZZZZZ{a}{b}" for a in "ABCDE" for b in "FGHJ"]  # 20, none of them real
    for guess in guesses:
        missed = await course.get("ann", f"/join/{guess}")
        assert_error(missed, 404, "not_found")
    limited = await course.get("ann", f"/join/{course.code}")
    problem = assert_error(limited, 429, "too_many_requests")
    assert "too many unknown join codes" in problem["message"]
    assert 0 < int(limited.headers["retry-after"]) <= 600
    assert (await course.apply("ann")).status_code == 429  # the right code waits too
    # Someone else is not held up.
    course.client.cookies.clear()
    assert (await course.apply("bob")).status_code == 201
