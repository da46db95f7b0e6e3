"""The request form and the change form in a browser's shoes, with httpx, through
the gateway to real request-svc and governance-svc processes: who gets the form,
forms this site did not make, and every odd body a browser (or anyone) can send:
each answered with a page naming the problem, never a 500, nothing stored."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from request_form_helpers import (
    LEA,
    LENA,
    LEO,
    PIA,
    FormStack,
    browser_session,
    csrf_of,
    form_stack,
)

pytestmark = pytest.mark.e2e

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
IN_A_MONTH = (datetime.now(UTC) + timedelta(days=30)).date()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FormStack]:
    with form_stack(tmp_path_factory.mktemp("request-form")) as running:
        yield running


def typed(**overrides: str) -> dict[str, str]:
    """A request as a person fills the form in: valid unless overridden."""
    fields = {
        "title": "Data Science 101",
        "slug": "ds101",
        "description": "Pandas & <friends>",
        "timezone": "America/New_York",
        "start_date": IN_A_MONTH.isoformat(),
        "start_time": "09:30",
        "end_date": (IN_A_MONTH + timedelta(days=40)).isoformat(),
        "end_time": "17:00",
        "expected_participants": "30",
        "environment": "datascience",
        "image": "",
        "interface": "lab",
        "cpu": "1.5",
        "memory": "1536",
        "memory_unit": "MiB",
        "storage": "5",
        "storage_unit": "GiB",
    }
    fields.update(overrides)
    return fields


@pytest.fixture(scope="module")
def lea(stack: FormStack) -> Iterator[tuple[httpx.Client, str]]:
    """lea, signed in once for the module, with the request form's token."""
    with browser_session(stack.url, LEA) as client:
        page = client.get("/requests/new")
        assert page.status_code == 200, page.text
        yield client, csrf_of(page)


@contextmanager
def lea_form(stack: FormStack, lea: tuple[httpx.Client, str]) -> Iterator[tuple[httpx.Client, str]]:
    """lea's session, its form fresh (a page of its own)."""
    client, csrf = lea
    assert client.get("/requests/new").status_code == 200
    yield client, csrf


def error_of(page: httpx.Response, input_id: str) -> str:
    """The message shown next to an input (the text of its `<id>-error` element)."""
    start = page.text.index(f'id="{input_id}-error"')
    text = page.text[start:].split(">", 1)[1].split("</p>", 1)[0]
    return re.sub(r'<span class="visually-hidden">[^<]*</span>', "", text).strip()


def test_a_stranger_is_sent_to_sign_in_and_back(stack: FormStack) -> None:
    with httpx.Client(base_url=stack.url, timeout=15) as client:
        for method, path in (
            ("GET", "/requests/new"),
            ("POST", "/requests/new"),
            ("GET", "/courses/some-id/change"),
            ("POST", "/courses/some-id/change"),
        ):
            answer = client.request(method, path, data={"csrf": "x"})
            assert answer.status_code == 303, (method, path, answer.text)
            location = answer.headers["location"]
            assert urlsplit(location).path == "/signin"
            assert parse_qs(urlsplit(location).query)["next"] == [path]


def test_a_participant_gets_a_page_saying_only_leaders_ask(stack: FormStack) -> None:
    with browser_session(stack.url, PIA) as client:
        page = client.get("/requests/new")
        assert page.status_code == 403, page.text
        assert "Only course leaders can request a hub" in page.text
        assert "<form" not in page.text.split("<main", 1)[1]
        csrf = csrf_of(client.get("/signin/password"))
        sent = client.post("/requests/new", data=typed(csrf=csrf))
        assert sent.status_code == 403, sent.text
        assert "Only course leaders can request a hub" in sent.text
    assert stack.requests_of(PIA) == []


def test_a_form_this_site_did_not_make_for_the_session_is_refused(
    stack: FormStack, lea: tuple[httpx.Client, str]
) -> None:
    with browser_session(stack.url, LEO) as leo:
        leos = csrf_of(leo.get("/requests/new"))
    with lea_form(stack, lea) as (client, _):
        for csrf in ({}, {"csrf": ""}, {"csrf": "guess"}, {"csrf": leos}):
            sent = client.post("/requests/new", data={**typed(), **csrf})
            assert sent.status_code == 403, sent.text
            assert "did not come from this site" in sent.text
    assert stack.requests_of(LEA) == []


@pytest.mark.parametrize(
    ("fields", "input_id", "words"),
    [
        ({"title": ""}, "title", "Enter a title of 3 to 200 characters"),
        ({"title": "bell \x07"}, "title", "on one line"),
        ({"slug": "Not A Slug"}, "slug", "lower-case letters"),
        ({"expected_participants": "1e9999"}, "expected_participants", "whole number from 1"),
        ({"expected_participants": "99999999999"}, "expected_participants", "whole number"),
        ({"expected_participants": "-3"}, "expected_participants", "whole number"),
        ({"cpu": "NaN"}, "cpu", "CPU cores per user as a number"),
        ({"cpu": "0"}, "cpu", "CPU cores per user as a number"),
        ({"memory": "1" + "0" * 40}, "memory", "number of GiB or MiB"),
        ({"memory": "0.0001"}, "memory", "number of GiB or MiB"),
        ({"memory_unit": "PiB"}, "memory", "number of GiB or MiB"),
        ({"storage": "-1"}, "storage", "number of GiB or MiB"),
        ({"environment": "no-such-preset"}, "environment", "Choose an environment"),
        ({"environment": "custom", "image": "not an image!"}, "image", "image reference"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "Choose a time zone from the list"),
        ({"timezone": "../../etc/passwd"}, "timezone", "Choose a time zone from the list"),
        ({"start_date": "2027-02-30"}, "start_date", "that exist"),
        ({"start_date": "tomorrow"}, "start_date", "Enter a date such as"),
        ({"end_time": "25:99"}, "end_date", "that exist"),
        ({"interface": "emacs"}, "interface", "JupyterLab or the classic notebook"),
    ],
)
def test_a_bad_value_is_named_next_to_its_input_and_everything_typed_is_kept(
    stack: FormStack,
    lea: tuple[httpx.Client, str],
    fields: dict[str, str],
    input_id: str,
    words: str,
) -> None:
    with lea_form(stack, lea) as (client, csrf):
        sent = client.post("/requests/new", data=typed(csrf=csrf, **fields))
    assert sent.status_code == 422, sent.text
    assert words in error_of(sent, input_id)
    assert f'<a href="#{input_id}">' in sent.text  # the summary links to it
    assert 'aria-invalid="true"' in sent.text
    assert "Pandas &amp; &lt;friends&gt;</textarea>" in sent.text  # kept, escaped
    assert stack.requests_of(LEA) == []


def test_a_time_the_clocks_skip_or_repeat_is_named_with_its_zone(
    stack: FormStack, lea: tuple[httpx.Client, str]
) -> None:
    with lea_form(stack, lea) as (client, csrf):
        # Berlin's clocks go forward at 02:00 on 2027-03-28 and back at 03:00 on 2027-10-31.
        skipped = typed(csrf=csrf, timezone="Europe/Berlin", start_date="2027-03-28")
        sent = client.post("/requests/new", data={**skipped, "start_time": "02:30"})
        assert sent.status_code == 422, sent.text
        assert error_of(sent, "start_date") == (
            "2027-03-28 02:30 does not exist in Europe/Berlin: the clocks go forward then. "
            "Choose another time."
        )
        twice = typed(csrf=csrf, timezone="Europe/Berlin", end_date="2027-10-31")
        sent = client.post("/requests/new", data={**twice, "end_time": "02:30"})
        assert sent.status_code == 422, sent.text
        assert "happens twice in Europe/Berlin" in error_of(sent, "end_date")
    assert stack.requests_of(LEA) == []


def test_bodies_that_are_not_a_form_get_a_page_saying_so(
    stack: FormStack, lea: tuple[httpx.Client, str]
) -> None:
    with lea_form(stack, lea) as (client, csrf):
        not_utf8 = client.post(
            "/requests/new", content=b"csrf=" + csrf.encode() + b"&title=\xff\xfe", headers=FORM
        )
        assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.text
        as_json = client.post("/requests/new", json=typed(csrf=csrf))
        assert as_json.status_code == 415, as_json.text
        only_csrf = client.post("/requests/new", data={"csrf": csrf})
        assert only_csrf.status_code == 422, only_csrf.text
        for input_id in ("title", "slug", "start_date", "end_date", "expected_participants"):
            assert error_of(only_csrf, input_id), input_id
        huge = client.post("/requests/new", content=b"csrf=" + b"x" * 300_000, headers=FORM)
        assert huge.status_code == 413, huge.text
    assert stack.requests_of(LEA) == []


def test_the_services_refusal_is_shown_next_to_the_input_it_names(
    stack: FormStack, lea: tuple[httpx.Client, str]
) -> None:
    """Rules of the policy are request-svc's: the form shows its refusal in the page's words."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    with lea_form(stack, lea) as (client, csrf):
        sent = client.post(
            "/requests/new",
            data=typed(
                csrf=csrf,
                start_date=tomorrow.isoformat(),
                expected_participants="201",
                memory="17",
                memory_unit="GiB",
            ),
        )
        assert sent.status_code == 422, sent.text
        assert error_of(sent, "start_date").startswith("The course must start at least 48 hours")
        assert error_of(sent, "expected_participants") == "At most 200 participants are allowed."
        assert error_of(sent, "memory") == "At most 16 GiB memory per user is allowed."
        assert 'value="201"' in sent.text and 'value="17"' in sent.text
    assert stack.requests_of(LEA) == []


def test_the_refusal_speaks_the_language_of_the_leaders_profile(stack: FormStack) -> None:
    with browser_session(stack.url, LENA) as client:
        page = client.get("/requests/new")
        assert page.status_code == 200 and '<html lang="de">' in page.text
        assert 'data-max-message="Höchstens 200 Teilnehmende sind erlaubt."' in page.text
        refused = client.post(
            "/requests/new", data=typed(csrf=csrf_of(page), expected_participants="201")
        )
        untitled = client.post("/requests/new", data=typed(csrf=csrf_of(page), title=""))
    assert refused.status_code == 422, refused.text
    assert error_of(refused, "expected_participants") == (
        "Höchstens 200 Teilnehmende sind erlaubt."
    )
    assert untitled.status_code == 422, untitled.text
    assert error_of(untitled, "title").startswith("Geben Sie einen Titel")
    assert stack.requests_of(LENA) == []


def test_a_request_is_stored_as_typed_with_its_dates_in_utc(
    stack: FormStack, lea: tuple[httpx.Client, str]
) -> None:
    with lea_form(stack, lea) as (client, csrf):
        sent = client.post("/requests/new", data=typed(csrf=csrf, slug="ny-course"))
    assert sent.status_code == 303, sent.text
    with lea_form(stack, lea) as (client, csrf):
        again = client.post("/requests/new", data=typed(csrf=csrf, slug="ny-course"))
    assert again.status_code == 409, again.text
    assert error_of(again, "slug") == "Another course uses this short name; choose another."
    [stored] = [r for r in stack.requests_of(LEA) if r["spec"]["slug"] == "ny-course"]
    assert sent.headers["location"] == f"/courses/{stored['request_id']}"
    spec: dict[str, Any] = stored["spec"]
    new_york = ZoneInfo("America/New_York")
    start = datetime.fromisoformat(f"{IN_A_MONTH.isoformat()}T09:30").replace(tzinfo=new_york)
    assert datetime.fromisoformat(spec["starts_at"]) == start
    assert spec["starts_at"].endswith("Z") or spec["starts_at"].endswith("+00:00")
    assert spec["resources"] == {"cpu": "1500m", "memory": "1536Mi", "storage": "5Gi", "gpus": 0}
    assert spec["preset"] == "datascience"
    assert spec["image"] == "quay.io/jupyter/scipy-notebook:2024-12-02"
    assert spec["description"] == "Pandas & <friends>"
    assert spec["expected_participants"] == 30


def test_a_request_with_an_image_of_ones_own_names_no_preset(
    stack: FormStack, lea: tuple[httpx.Client, str]
) -> None:
    image = "quay.io/jupyter/julia-notebook:2024-12-02"
    with lea_form(stack, lea) as (client, csrf):
        outside = client.post(
            "/requests/new",
            data=typed(csrf=csrf, slug="own-image", environment="custom", image="docker.io/x/y:1"),
        )
        assert outside.status_code == 422, outside.text
        assert error_of(outside, "image") == (
            "The policy allows only images matching quay.io/jupyter/*."
        )
        sent = client.post(
            "/requests/new",
            data=typed(csrf=csrf, slug="own-image", environment="custom", image=image),
        )
    assert sent.status_code == 303, sent.text
    [stored] = [r for r in stack.requests_of(LEA) if r["spec"]["slug"] == "own-image"]
    assert stored["spec"]["image"] == image
    assert "preset" not in stored["spec"]
    assert stored["spec"]["resources"]["memory"] == "1536Mi"


def approved_course(stack: FormStack, lea: tuple[httpx.Client, str], slug: str) -> dict[str, Any]:
    """A small course of lea's (inside auto-approval): approved by the system."""
    with lea_form(stack, lea) as (client, csrf):
        sent = client.post("/requests/new", data=typed(csrf=csrf, slug=slug))
    assert sent.status_code == 303, sent.text
    request_id = sent.headers["location"].rsplit("/", 1)[1]
    headers = stack.api(LEA)
    for _ in range(300):
        seen = httpx.get(f"{stack.url}/api/v1/requests/{request_id}", headers=headers)
        if seen.json()["status"] == "approved":
            return dict(seen.json())
        time.sleep(0.1)  # governance approves it by itself, soon
    raise AssertionError(f"{request_id} was not approved: {seen.text}")


def test_the_change_form_is_its_leaders_and_refuses_what_the_service_refuses(
    stack: FormStack,
    lea: tuple[httpx.Client, str],
) -> None:
    course = approved_course(stack, lea, "change-me")
    path = f"/courses/{course['request_id']}/change"
    with browser_session(stack.url, LEO) as leo:
        assert leo.get(path).status_code == 404
        assert leo.get("/courses/no-such-course/change").status_code == 404
        assert leo.get("/courses/%00%01/change").status_code == 404
    with browser_session(stack.url, PIA) as pia:
        assert pia.get(path).status_code == 404
    with browser_session(stack.url, LEA) as client:
        page = client.get(path)
        assert page.status_code == 200, page.text
        assert 'name="expected_revision" value="1"' in page.text
        csrf = csrf_of(page)
        current = {
            "csrf": csrf,
            "expected_revision": "1",
            "timezone": "UTC",
            "end_date": course["spec"]["ends_at"][:10],
            "end_time": course["spec"]["ends_at"][11:16],
            "expected_participants": "30",
            "cpu": "1.5",
            "memory": "1.5",
            "memory_unit": "GiB",
            "storage": "5",
            "storage_unit": "GiB",
            "image": course["spec"]["image"],
            "comment": "",
        }
        same = client.post(path, data=current)
        assert same.status_code == 422, same.text
        assert "changes nothing" in same.text
        too_many = client.post(path, data={**current, "expected_participants": "500"})
        assert too_many.status_code == 422, too_many.text
        assert error_of(too_many, "expected_participants") == (
            "At most 200 participants are allowed."
        )
        foreign = client.post(path, data={**current, "csrf": "guess"})
        assert foreign.status_code == 403, foreign.text
        stale = client.post(
            path, data={**current, "expected_participants": "20", "expected_revision": "7"}
        )
        assert stale.status_code == 409, stale.text
        assert "revision" in stale.text and 'value="20"' in stale.text
        bad = client.post(path, content=b"csrf=" + csrf.encode() + b"&cpu=\xff", headers=FORM)
        assert bad.status_code == 400, bad.text
        sent = client.post(
            path, data={**current, "expected_participants": "20", "comment": "fewer came"}
        )
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == path + "?sent=1"
    seen = httpx.get(
        f"{stack.url}/api/v1/requests/{course['request_id']}", headers=stack.api(LEA)
    ).json()
    assert seen["change"]["configuration"]["expected_participants"] == 20
    assert seen["change"]["comment"] == "fewer came"
    assert seen["revision"] == 2


def test_a_request_waiting_for_review_is_edited_with_the_same_form(
    stack: FormStack, lea: tuple[httpx.Client, str]
) -> None:
    with lea_form(stack, lea) as (client, csrf):
        # More participants than the system approves alone: it waits for a reviewer.
        sent = client.post(
            "/requests/new", data=typed(csrf=csrf, slug="to-edit", expected_participants="60")
        )
        assert sent.status_code == 303, sent.text
        request_id = sent.headers["location"].rsplit("/", 1)[1]
        path = f"/requests/{request_id}/edit"
        page = client.get(path)
        assert page.status_code == 200, page.text
        assert 'name="expected_revision" value="1"' in page.text
        assert 'value="Data Science 101"' in page.text and 'value="60"' in page.text
        [stored] = [r for r in stack.requests_of(LEA) if r["request_id"] == request_id]
        start = datetime.fromisoformat(stored["spec"]["starts_at"])
        shown = {  # the form as it came (its dates in UTC), with a new title
            **typed(csrf=csrf, slug="to-edit", expected_participants="60"),
            "timezone": "UTC",
            "start_date": start.date().isoformat(),
            "start_time": start.strftime("%H:%M"),
            "end_date": stored["spec"]["ends_at"][:10],
            "end_time": stored["spec"]["ends_at"][11:16],
            "title": "Data Science 102",
            "expected_revision": "1",
        }
        bad_revision = client.post(path, data={**shown, "expected_revision": "one"})
        assert bad_revision.status_code == 422, bad_revision.text
        saved = client.post(path, data=shown)
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == f"/courses/{request_id}"
        stale = client.post(path, data={**shown, "title": "Data Science 103"})
        assert stale.status_code == 409, stale.text
        assert "revision" in stale.text and 'value="Data Science 103"' in stale.text
    with browser_session(stack.url, LEO) as leo:
        assert leo.get(path).status_code == 404
    with browser_session(stack.url, PIA) as pia:
        assert pia.get(path).status_code == 404
    [edited] = [r for r in stack.requests_of(LEA) if r["request_id"] == request_id]
    assert edited["spec"]["title"] == "Data Science 102"
    assert edited["revision"] == 2
    assert edited["spec"]["starts_at"] == stored["spec"]["starts_at"]  # untouched
    assert edited["spec"]["resources"] == stored["spec"]["resources"]
