"""The join link's pages (/join, /join/{code}) in a browser's shoes, through the
gateway to a real participant-svc: sign in and come back, apply with the form,
and every refusal shown in words."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_gateway_courses_integration as courses_tests
from gateway_helpers import Client
from oauth_helpers import query_of, sign_in_form
from test_gateway_courses_integration import Course

pytestmark = pytest.mark.integration

ANN = ("ann", "ann password 12")
course = courses_tests.course  # the same approved course, as a fixture here
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


async def join_path(course: Course) -> str:
    shown = await course.get("lea", f"/courses/{course.id}")
    return urlsplit(shown.json()["join_url"]).path


async def signed_in_form(client: Client, path: str, who: tuple[str, str] = ANN) -> httpx.Response:
    client.cookies.clear()
    assert (await sign_in_form(client, *who, next_url=path)).status_code == 303
    page = await client.get(path, follow_redirects=False)
    assert page.status_code == 200, page.text
    return page


async def test_the_join_link_of_a_course_takes_a_stranger_through_sign_in_to_apply(
    course: Course,
) -> None:
    client, path = course.client, await join_path(course)
    assert path == f"/join/{course.code}"
    anonymous = await client.get(path, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/signin?")
    assert query_of(anonymous.headers["location"])["next"] == path

    signed_in = await sign_in_form(client, *ANN, next_url=path)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == path
    page = await client.get(path, follow_redirects=False)
    assert page.status_code == 200, page.text
    assert "Data Science 101" in page.text and "<textarea" in page.text
    sent = await client.post(
        path,
        data={"csrf": csrf_of(page), "message": "Hello,\r\nI am Ann <3"},
        follow_redirects=False,
    )
    assert sent.status_code == 200, sent.text
    assert "Your application was sent" in sent.text and "course leader decides" in sent.text
    pending = await course.get("lea", f"/courses/{course.id}/participations?status=pending")
    [applied] = pending.json()["items"]
    assert applied["message"] == "Hello,\r\nI am Ann <3"

    again = await client.post(
        path, data={"csrf": csrf_of(page), "message": "once more"}, follow_redirects=False
    )
    assert again.status_code == 409, again.text
    assert "already" in again.text and "once more</textarea>" in again.text


async def test_a_form_without_the_sessions_token_is_refused_and_stores_nothing(
    course: Course,
) -> None:
    client, path = course.client, await join_path(course)
    bobs = csrf_of(await signed_in_form(client, path, ("bob", "bob password 12")))
    await signed_in_form(client, path)
    for fields in ({}, {"csrf": "guess"}, {"csrf": bobs}):
        refused = await client.post(path, data={**fields, "message": "hi"}, follow_redirects=False)
        assert refused.status_code == 403, refused.text
    assert await course.ids("pending") == []


async def test_bad_forms_are_refused_in_words_keeping_what_was_typed(course: Course) -> None:
    client, path = course.client, await join_path(course)
    csrf = csrf_of(await signed_in_form(client, path))
    typed = {"csrf": csrf, "message": "ring \x07 the bell"}
    control = await client.post(path, data=typed, follow_redirects=False)
    assert control.status_code == 422, control.text
    assert "control characters" in control.text and "ring \x07 the bell</textarea>" in control.text
    too_long = await client.post(
        path, data={"csrf": csrf, "message": "x" * 2001}, follow_redirects=False
    )
    assert too_long.status_code == 422 and "2000" in too_long.text
    as_json = await client.post(path, json={"csrf": csrf}, follow_redirects=False)
    assert as_json.status_code == 415
    not_utf8 = await client.post(
        path, content=b"csrf=" + csrf.encode() + b"&message=\xff", headers=FORM
    )
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.text
    assert await course.ids("pending") == []


async def test_an_unknown_or_closed_code_gets_a_404_page_naming_it(course: Course) -> None:
    client = course.client
    start = await client.get("/join", follow_redirects=False)
    assert start.status_code == 200 and 'action="/join"' in start.text
    typed = await client.get("/join", params={"code": f" {course.code} "}, follow_redirects=False)
    assert typed.status_code == 303 and typed.headers["location"] == f"/join/{course.code}"

    await signed_in_form(client, f"/join/{course.code}")
    unknown = await client.get("/join/NOSUCHCODE", follow_redirects=False)
    assert unknown.status_code == 404
    assert "NOSUCHCODE" in unknown.text and 'action="/join"' in unknown.text
    hostile = await client.get("/join/<b>x", follow_redirects=False)
    assert hostile.status_code == 404 and "&lt;b&gt;x" in hostile.text

    closed = await course.client.put(
        f"/api/v1/courses/{course.id}/join-code",
        json={"open": False},
        headers={"Authorization": f"Bearer {course.tokens['lea']}"},
    )
    assert closed.status_code == 200
    shut = await client.get(f"/join/{course.code}", follow_redirects=False)
    assert shut.status_code == 404 and course.code in shut.text
