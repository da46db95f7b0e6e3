"""The course pages (/courses, /courses/{id}, its timeline stream and its actions) in
a browser's shoes, through the gateway to a real request-svc and participant-svc:
the leader decides applications with the forms, and every refusal (a stranger,
another leader, a foreign form, a bad body) is a page in words, never a 500, and
changes nothing."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_gateway_courses_integration as courses_tests
from gateway_helpers import LEADER, Client
from oauth_helpers import query_of, sign_in_form
from test_gateway_courses_integration import Course, publish

from gateway.context import gateway_of
from gateway.controllers import course_pages
from gateway.controllers.auth import client_info
from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import HubDeleted
from jhaas_schemas.model import DeletionRecord

pytestmark = pytest.mark.integration

course = courses_tests.course  # the same approved course (for 2 participants), as a fixture here
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PASSWORDS = {"lea": LEADER[1], "eve": "eve password 123"}


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


async def as_(client: Client, who: str, path: str) -> httpx.Response:
    """Signed in through the form as `who` (cookies only), then GET `path`."""
    client.cookies.clear()
    password = PASSWORDS.get(who, f"{who} password 12")
    assert (await sign_in_form(client, who, password, next_url=path)).status_code == 303
    return await client.get(path, follow_redirects=False)


def events_of(stream: str) -> list[dict[str, object]]:
    return [
        json.loads(line.removeprefix("data:").strip())
        for block in stream.replace("\r\n", "\n").split("\n\n")
        if "event: status" in block
        for line in block.splitlines()
        if line.startswith("data:")
    ]


async def test_a_stranger_is_sent_to_sign_in_and_back(course: Course) -> None:
    client = course.client
    client.cookies.clear()
    here = f"/courses/{course.id}"
    for path, back in (("/courses", "/courses"), (here, here), (f"{here}/timeline", here)):
        answer = await client.get(path, follow_redirects=False)
        assert answer.status_code == 303, (path, answer.text)
        assert answer.headers["location"].startswith("/signin?")
        assert query_of(answer.headers["location"])["next"] == back
    for action in ("applications", "tutors", "cancel", "leave", "join-code/rotate"):
        answer = await client.post(f"{here}/{action}", data={"csrf": "x"}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?")


async def test_the_leader_decides_applications_with_the_forms(course: Course) -> None:
    client, here = course.client, f"/courses/{course.id}"
    for who in ("ann", "bob", "cat"):
        assert (await course.apply(who)).status_code == 201
    ids = {p["user_id"]: p["participation_id"] for p in await pending(course)}
    names = await user_ids(course)

    page = await as_(client, "lea", here)
    assert page.status_code == 200, page.text
    assert "Data Science 101" in page.text and f"/join/{course.code}" in page.text
    assert 'alt="QR code of the join link"' in page.text and "data:image/svg+xml" in page.text
    assert 'data-stream="' + here + '/timeline"' in page.text
    assert f'href="{here}/change"' in page.text  # lane ui-form's change form
    assert "3 applications wait for a decision" in page.text
    csrf = csrf_of(page)

    # Ann and Bob ticked, "accept": one call for both.
    bulk = await client.post(
        f"{here}/applications",
        data={
            "csrf": csrf,
            "participation": [ids[names["ann"]], ids[names["bob"]]],
            "decision": "accept",
        },
        follow_redirects=False,
    )
    assert bulk.status_code == 303, bulk.text
    assert bulk.headers["location"] == f"{here}?done=accepted#applications"
    # Cat by her own button, with a reason.
    one = await client.post(
        f"{here}/applications",
        data={"csrf": csrf, "reject_one": ids[names["cat"]], "reason": "Course is full"},
        follow_redirects=False,
    )
    assert one.status_code == 303, one.text
    shown = await client.get(bulk.headers["location"], follow_redirects=False)
    assert "The selected applications were accepted." in shown.text
    assert "No application waits for a decision." in shown.text
    assert "2 accepted participants" in shown.text and "Application rejected" in shown.text
    assert await course.ids("accepted") != [] and len(await course.ids("accepted")) == 2

    # The roster's CSV link works with the session cookie alone.
    roster = await client.get(f"/api/v1/courses/{course.id}/roster.csv")
    assert roster.status_code == 200, roster.text
    rows = list(csv.reader(io.StringIO(roster.text)))
    assert {row[0]: row[2] for row in rows[1:]} == {
        "ann": "accepted",
        "bob": "accepted",
        "cat": "rejected",
    }


async def test_tutors_and_joining_from_the_page(course: Course) -> None:
    client, here = course.client, f"/courses/{course.id}"
    page = await as_(client, "lea", here)
    csrf = csrf_of(page)
    unknown = await client.post(
        f"{here}/tutors", data={"csrf": csrf, "username": "nobody-here"}, follow_redirects=False
    )
    assert unknown.status_code == 404, unknown.text
    assert "There is no user with that name." in unknown.text
    assert 'value="nobody-here"' in unknown.text  # what was typed stays
    added = await client.post(
        f"{here}/tutors", data={"csrf": csrf, "username": "tom"}, follow_redirects=False
    )
    assert added.status_code == 303, added.text
    shown = await client.get(added.headers["location"])
    assert "Remove tutor tom" in shown.text

    # Tom, as a tutor, decides applications but has none of the leader's forms.
    assert (await course.apply("ann")).status_code == 201
    as_tom = await as_(client, "tom", here)
    assert as_tom.status_code == 200, as_tom.text
    assert "Accept ann" in as_tom.text and "Add the tutor" not in as_tom.text
    assert "Replace the join code" not in as_tom.text and "Cancel the course" not in as_tom.text
    rotate = await client.post(
        f"{here}/join-code/rotate", data={"csrf": csrf_of(as_tom)}, follow_redirects=False
    )
    assert rotate.status_code == 403, rotate.text  # participant-svc: only the leader

    page = await as_(client, "lea", here)
    csrf = csrf_of(page)
    tom_id = page.text.split('name="user_id" value="')[1].split('"')[0]
    removed = await client.post(
        f"{here}/tutors/remove", data={"csrf": csrf, "user_id": tom_id}, follow_redirects=False
    )
    assert removed.status_code == 303, removed.text
    rotated = await client.post(
        f"{here}/join-code/rotate", data={"csrf": csrf}, follow_redirects=False
    )
    assert rotated.status_code == 303, rotated.text
    shown = await client.get(rotated.headers["location"])
    assert f"/join/{course.code}" not in shown.text  # the old code is gone
    closed = await client.post(
        f"{here}/join-code", data={"csrf": csrf, "open": "no"}, follow_redirects=False
    )
    assert closed.status_code == 303
    shown = await client.get(closed.headers["location"])
    assert "Joining with the code is closed" in shown.text and "Open joining" in shown.text


async def test_another_leader_gets_a_404_page_and_changes_nothing(course: Course) -> None:
    client, here = course.client, f"/courses/{course.id}"
    assert (await course.apply("ann")).status_code == 201
    [ann] = await course.ids("pending")
    page = await as_(client, "eve", here)
    assert page.status_code == 404, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no such course" in page.text
    stream = await client.get(f"{here}/timeline", follow_redirects=False)
    assert stream.status_code == 404 and "text/event-stream" not in stream.headers["content-type"]
    csrf = csrf_of(await client.get(f"/join/{course.code}"))  # eve's session's token
    for action, fields in (
        ("applications", {"participation": ann, "decision": "accept"}),
        ("join-code/rotate", {}),
        ("join-code", {"open": "no"}),
        ("tutors", {"username": "eve"}),
        ("cancel", {"confirm": "yes"}),
    ):
        refused = await client.post(
            f"{here}/{action}", data={"csrf": csrf, **fields}, follow_redirects=False
        )
        assert refused.status_code in (403, 404), (action, refused.status_code, refused.text)
        assert refused.headers["content-type"].startswith("text/html")
    assert await course.ids("pending") == [ann]
    request = await course.get("lea", f"/requests/{course.id}")
    assert request.json()["status"] == "approved"


async def test_a_foreign_form_is_refused(course: Course) -> None:
    client, here = course.client, f"/courses/{course.id}"
    assert (await course.apply("ann")).status_code == 201
    [ann] = await course.ids("pending")
    eves = csrf_of(await as_(client, "eve", f"/join/{course.code}"))
    await as_(client, "lea", here)
    for fields in ({}, {"csrf": "guess"}, {"csrf": eves}):
        refused = await client.post(
            f"{here}/applications",
            data={**fields, "participation": ann, "decision": "accept"},
            follow_redirects=False,
        )
        assert refused.status_code == 403, refused.text
        assert "did not come from this site" in refused.text
    assert await course.ids("pending") == [ann]


async def test_bad_bodies_are_pages_in_words(course: Course) -> None:
    client, here = course.client, f"/courses/{course.id}"
    assert (await course.apply("ann")).status_code == 201
    [ann] = await course.ids("pending")
    csrf = csrf_of(await as_(client, "lea", here))
    nothing = await client.post(
        f"{here}/applications", data={"csrf": csrf, "decision": "accept"}, follow_redirects=False
    )
    assert nothing.status_code == 422 and "Select at least one application" in nothing.text
    no_decision = await client.post(
        f"{here}/applications", data={"csrf": csrf, "participation": ann}, follow_redirects=False
    )
    assert no_decision.status_code == 422, no_decision.text
    for foreign in ("p-not-here", "x" * 65, "two\nlines"):
        refused = await client.post(
            f"{here}/applications",
            data={"csrf": csrf, "participation": [ann, foreign], "decision": "accept"},
            follow_redirects=False,
        )
        assert refused.status_code in (404, 409, 422), (foreign, refused.text)
        assert "not one of this course" in refused.text or "no " in refused.text.lower()
    long_reason = await client.post(
        f"{here}/applications",
        data={"csrf": csrf, "participation": ann, "decision": "reject", "reason": "r" * 2001},
        follow_redirects=False,
    )
    assert long_reason.status_code == 422 and "2000 characters" in long_reason.text
    assert "r" * 2001 + "</textarea>" in long_reason.text
    unticked = await client.post(
        f"{here}/cancel",
        data={"csrf": csrf, "cancel-reason": "Too few people"},
        follow_redirects=False,
    )
    assert unticked.status_code == 422 and "Tick the box" in unticked.text
    assert "Too few people</textarea>" in unticked.text
    not_utf8 = await client.post(
        f"{here}/applications",
        content=b"csrf=" + csrf.encode() + b"&participation=\xff&decision=accept",
        headers=FORM,
    )
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.text
    as_json = await client.post(f"{here}/applications", json={"csrf": csrf})
    assert as_json.status_code == 415
    odd_id = await client.get("/courses/%00%0a", follow_redirects=False)
    assert odd_id.status_code == 404, odd_id.text
    assert await course.ids("pending") == [ann]
    request = await course.get("lea", f"/requests/{course.id}")
    assert request.json()["status"] == "approved"


async def test_my_courses_for_a_leader_and_a_participant(course: Course) -> None:
    client = course.client
    mine = await as_(client, "lea", "/courses")
    assert mine.status_code == 200, mine.text
    assert f'href="/courses/{course.id}"' in mine.text and "Data Science 101" in mine.text
    assert "Approved" in mine.text
    empty = await as_(client, "eve", "/courses")
    assert "You have not requested a hub yet" in empty.text and 'href="/requests/new"' in empty.text
    assert 'href="/join"' in empty.text

    assert (await course.apply("ann")).status_code == 201
    anns = await as_(client, "ann", "/courses")
    assert "Application pending" in anns.text and f'href="/courses/{course.id}"' in anns.text
    assert "You have not requested a hub yet" not in anns.text  # not a leader
    own = await client.get(f"/courses/{course.id}", follow_redirects=False)
    assert own.status_code == 200, own.text
    assert "Withdraw my application" in own.text and "Applications" not in own.text
    assert "QR code" not in own.text
    left = await client.post(
        f"/courses/{course.id}/leave", data={"csrf": csrf_of(own)}, follow_redirects=False
    )
    assert left.status_code == 303 and left.headers["location"] == "/courses?done=left"
    after = await client.get(f"/courses/{course.id}", follow_redirects=False)
    assert "Left the course" in after.text and "Withdraw my application" not in after.text
    dan = await as_(client, "dan", f"/courses/{course.id}")  # never applied
    assert dan.status_code == 404 and "There is no such course" in dan.text


async def test_the_timeline_stream_ends_when_the_course_is_deleted(
    course: Course, nats_server: NatsServer
) -> None:
    client, here = course.client, f"/courses/{course.id}"
    await as_(client, "lea", here)

    await publish(
        nats_server,
        HubDeleted(
            **envelope(source="deployer-svc", correlation_id="c-del"),
            deployment_id="d-1",
            request_id=course.id,
            record=DeletionRecord(backend="local", deleted_at=datetime.now(UTC)),
        ),
    )
    # A deleted course's stream: its last status at once, and the end.
    await eventually(
        lambda: course.get("lea", f"/requests/{course.id}"),
        lambda r: r.json()["status"] == "deleted",
    )
    stream = await client.get(f"{here}/timeline")
    assert stream.status_code == 200, stream.text
    assert stream.headers["content-type"].startswith("text/event-stream")
    [shown] = events_of(stream.text)
    assert shown["status"] == "deleted" and shown["label"] == "Deleted"
    assert shown["final"] is True and "event: end" in stream.text


async def pending(course: Course) -> list[dict[str, str]]:
    listed = await course.get("lea", f"/courses/{course.id}/participations?status=pending")
    return list(listed.json()["items"])


async def user_ids(course: Course) -> dict[str, str]:
    """username -> user id, from each person's own /auth/me."""
    found = {}
    for who in ("ann", "bob", "cat"):
        me = await course.get(who, "/auth/me")
        found[who] = str(me.json()["user_id"])
    return found


async def test_a_person_holds_only_a_few_timeline_streams(course: Course) -> None:
    """Each open stream makes the gateway ask the services every two seconds: one
    person gets at most MAX_STREAMS_PER_PERSON (429 beyond). Litestar's in-process
    test client cannot hold streams open side by side (its transport blocks the
    test's loop until a response ends), so the open streams are counted in."""
    client, here = course.client, f"/courses/{course.id}"
    await as_(client, "lea", here)
    lea = (await course.get("lea", "/auth/me")).json()["user_id"]
    course_pages._open_streams[lea] = course_pages.MAX_STREAMS_PER_PERSON
    try:
        refused = await client.get(f"{here}/timeline")
        assert refused.status_code == 429, refused.text
        assert "Too many live views" in refused.text and refused.headers["retry-after"]
        course_pages._open_streams[lea] -= 1  # one tab closed: the next one streams
        assert course_pages._open_streams[lea] == course_pages.MAX_STREAMS_PER_PERSON - 1
    finally:
        course_pages._open_streams.pop(lea, None)


async def test_a_timeline_stream_ends_once_its_session_ended(
    course: Course, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream asks who is watching at every poll: a session that ended meanwhile
    (here: ended for real by the first poll, as signing out in another tab would)
    gets nothing more, instead of the course's status for the rest of the stream."""
    client, here = course.client, f"/courses/{course.id}"
    await as_(client, "lea", here)
    real = course_pages.session_caller

    async def signed_out_meanwhile(request: Any) -> Any:
        found = await real(request)
        assert found is not None
        gateway = gateway_of(request)
        await gateway.accounts.end_session(found[0], client_info(request, gateway.settings))
        return await real(request)

    monkeypatch.setattr(course_pages, "session_caller", signed_out_meanwhile)
    # Without the check the stream would go on, with a heartbeat every 15 s, to its
    # end (shortened here from 15 minutes, so that such a failure shows quickly).
    monkeypatch.setattr(course_pages, "STREAM_SECONDS", 3 * course_pages.HEARTBEAT_SECONDS)
    stream = await client.get(f"{here}/timeline")
    assert stream.status_code == 200, stream.text
    [shown] = events_of(stream.text)  # the status at the start, then nothing
    assert shown["status"] == "approved" and "event: end" not in stream.text
    assert "still here" not in stream.text  # ended at the first poll, before any heartbeat
    assert not course_pages._open_streams
