"""The reviewer's pages (/reviews, /reviews/{id}, its decision forms, /governance/calendar,
/governance/audit) as a browser's requests see them, through the gateway to a real
request-svc and governance-svc: who is refused how, and every odd form answered
with a page in words, never a 500, deciding nothing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from review_helpers import (
    API,
    People,
    approve,
    browser_session,
    course,
    csrf_of,
    make_people,
    propose_change,
    review_stack,
    submit,
)

pytestmark = pytest.mark.e2e

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PAGES = ("/reviews", "/governance/calendar", "/governance/audit")


@dataclass
class World:
    url: str
    people: People
    pending: str  # lea's request waiting for a decision
    approved: str  # lea's approved course, with a change waiting
    change_id: str
    sessions: dict[str, httpx.Cookies]

    def browser(self, who: str | None = None) -> httpx.Client:
        cookies = self.sessions[who] if who else None
        return httpx.Client(base_url=self.url, cookies=cookies, timeout=15, follow_redirects=False)

    def review(self, request_id: str) -> dict[str, object]:
        with httpx.Client(base_url=self.url, timeout=15) as api:
            r = api.get(f"{API}/reviews/{request_id}", headers=self.people.headers["gus"])
            assert r.status_code == 200, r.text
            body: dict[str, object] = r.json()
            return body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with review_stack(tmp_path_factory.mktemp("review-pages")) as stack:
        url = f"http://localhost:{stack.gateway_port}"

        async def build() -> World:
            people = await make_people(
                url,
                {
                    "lea": ("leader",),
                    "gus": ("governance",),
                    "pam": ("participant",),
                    "dee": ("leader", "governance"),
                },
            )
            pending = await submit(people, "lea", course("Statistics", "stats-1", 10), "gus")
            approved = await submit(people, "lea", course("Physics", "phys-1", 10), "gus")
            await approve(people, approved, "gus")
            change_id = await propose_change(people, "lea", approved, "gus")
            sessions = {
                who: await browser_session(url, who) for who in ("gus", "lea", "pam", "dee")
            }
            return World(url, people, pending, approved, change_id, sessions)

        yield asyncio.run(build())


def test_a_stranger_is_sent_to_sign_in_and_back(world: World) -> None:
    with world.browser() as browser:
        for path in (*PAGES, f"/reviews/{world.pending}"):
            r = browser.get(path)
            assert r.status_code == 303, (path, r.text)
            location = urlsplit(r.headers["location"])
            assert location.path == "/signin"
            assert parse_qs(location.query)["next"] == [path]
        posted = browser.post(
            f"/reviews/{world.pending}", data={"decision": "approve", "csrf": "x"}
        )
        assert posted.status_code == 303 and posted.headers["location"].startswith("/signin?")
    assert world.review(world.pending)["state"] == "pending"


def test_the_queue_lists_what_waits_with_its_checks(world: World) -> None:
    with world.browser("gus") as browser:
        page = browser.get("/reviews")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "Statistics" in page.text and f'href="/reviews/{world.pending}"' in page.text
    assert "change of an approved course" in page.text  # Physics' change waits too
    assert "lea" in page.text
    assert "rules pass" in page.text and "the calendar fits" in page.text
    assert "Physics" in page.text
    # Oldest first: Statistics was submitted before Physics' change was proposed.
    assert page.text.index("Statistics") < page.text.index("Physics")


def test_leaders_and_participants_get_a_page_saying_no(world: World) -> None:
    for who in ("lea", "pam"):
        with world.browser(who) as browser:
            for path in PAGES:
                r = browser.get(path)
                assert r.status_code == 403, (who, path, r.text)
                assert r.headers["content-type"].startswith("text/html")
                assert "<h1>" in r.text
    with world.browser("lea") as browser:
        own = browser.get(f"/reviews/{world.pending}")  # her own request: no reviewer of it
        assert own.status_code == 403, own.text
        decided = browser.post(
            f"/reviews/{world.pending}",
            data={"decision": "approve", "csrf": csrf_of(browser.get("/signin/password"))},
        )
        assert decided.status_code == 403, decided.text
    with world.browser("pam") as browser:
        theirs = browser.get(f"/reviews/{world.pending}")  # someone else's: unknown to her
        assert theirs.status_code == 404, theirs.text
    assert world.review(world.pending)["state"] == "pending"


def test_a_reviewer_cannot_decide_their_own_request(world: World) -> None:
    own = asyncio.run(submit(world.people, "dee", course("Own", "own-1", 5), "gus"))
    with world.browser("dee") as browser:
        page = browser.get(f"/reviews/{own}")
        assert page.status_code == 200, page.text
        r = browser.post(
            f"/reviews/{own}",
            data={"decision": "approve", "comment": "mine", "csrf": csrf_of(page), "revision": "1"},
        )
    assert r.status_code == 403, r.text
    assert "own" in r.text and "mine</textarea>" in r.text  # said next to the action, kept
    assert world.review(own)["state"] == "pending"


def test_a_form_from_elsewhere_decides_nothing(world: World) -> None:
    with world.browser("gus") as browser:
        for csrf in ("", "made-up", csrf_of(world.browser("dee").get("/signin/password"))):
            r = browser.post(
                f"/reviews/{world.pending}",
                data={"decision": "reject", "comment": "x", "csrf": csrf},
            )
            assert r.status_code == 403, r.text
            assert "did not come from this site" in r.text
            c = browser.post(
                f"/reviews/{world.approved}/changes/{world.change_id}",
                data={"decision": "reject", "comment": "x", "csrf": csrf},
            )
            assert c.status_code == 403, c.text
    assert world.review(world.pending)["state"] == "pending"


def test_an_unknown_request_is_a_404_page(world: World) -> None:
    with world.browser("gus") as browser:
        page = browser.get(f"/reviews/{world.pending}")
        csrf = csrf_of(page)
        for path in ("/reviews/no-such-request", "/reviews/" + "x" * 300):
            r = browser.get(path)
            assert r.status_code == 404, (path, r.text)
            assert r.headers["content-type"].startswith("text/html")
        posted = browser.post(
            "/reviews/no-such-request", data={"decision": "approve", "csrf": csrf}
        )
        assert posted.status_code == 404, posted.text
        change = browser.post(
            f"/reviews/{world.approved}/changes/no-such-change",
            data={"decision": "approve", "csrf": csrf},
        )
        assert change.status_code == 404, change.text


def test_odd_forms_get_a_page_in_words_and_decide_nothing(world: World) -> None:
    path = f"/reviews/{world.pending}"
    with world.browser("gus") as browser:
        csrf = csrf_of(browser.get(path))
        answers = [
            (browser.post(path, json={"decision": "approve"}), 415, "application/x-www-form"),
            (browser.post(path, content=b"decision=\xff\xfe", headers=FORM), 400, "UTF-8"),
            (browser.post(path, data={"csrf": csrf}), 400, "Choose approve"),
            (browser.post(path, data={"csrf": csrf, "decision": "delete"}), 400, "Choose approve"),
            (
                browser.post(path, data={"csrf": csrf, "decision": "approve", "revision": "-1"}),
                400,
                "open the page again",
            ),
            (  # a digit int() refuses ("²".isdigit() is true)
                browser.post(path, data={"csrf": csrf, "decision": "approve", "revision": "²"}),
                400,
                "open the page again",
            ),
            (
                browser.post(path, data={"csrf": csrf, "decision": "reject", "comment": " "}),
                422,
                "Give the reason",
            ),
            (
                browser.post(path, data={"csrf": csrf, "decision": "changes", "comment": ""}),
                422,
                "Say what the leader should change",
            ),
            (
                browser.post(
                    path, data={"csrf": csrf, "decision": "reject", "comment": "y" * 2001}
                ),
                422,
                "up to 2000 characters",
            ),
            (
                browser.post(
                    path, data={"csrf": csrf, "decision": "reject", "comment": "bad\x00byte"}
                ),
                422,
                "control characters",
            ),
        ]
        for answer, status, says in answers:
            assert answer.status_code == status, (status, answer.text[:500])
            assert answer.headers["content-type"].startswith("text/html")
            assert says in answer.text, (says, answer.text)
        # A stale revision: the service's 409, in its words, next to the action.
        stale = browser.post(
            path, data={"csrf": csrf, "decision": "approve", "revision": "7", "comment": "ok"}
        )
        assert stale.status_code == 409, stale.text
        assert 'id="decision-refusal"' in stale.text and "ok</textarea>" in stale.text
    assert world.review(world.pending)["state"] == "pending"


def test_a_change_is_rejected_only_with_a_reason(world: World) -> None:
    path = f"/reviews/{world.approved}"
    with world.browser("gus") as browser:
        page = browser.get(path)
        assert page.status_code == 200, page.text
        assert "two more groups" in page.text and "Approve the change" in page.text
        csrf = csrf_of(page)
        action = f"{path}/changes/{world.change_id}"
        empty = browser.post(action, data={"csrf": csrf, "decision": "reject", "comment": ""})
        assert empty.status_code == 422, empty.text
        assert "Give the reason" in empty.text
        assert f'id="change-{world.change_id}-comment-error"' in empty.text
        odd = browser.post(action, data={"csrf": csrf, "decision": "maybe"})
        assert odd.status_code == 400, odd.text
        done = browser.post(
            action, data={"csrf": csrf, "decision": "reject", "comment": "not this term"}
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"{path}?done=change-reject"
        shown = browser.get(done.headers["location"])
        assert "You rejected the change." in shown.text and "not this term" in shown.text
        again = browser.post(action, data={"csrf": csrf, "decision": "approve"})
        assert again.status_code == 409, again.text
    changes = world.review(world.approved)["changes"]
    assert isinstance(changes, list) and len(changes) == 1
    change = changes[0]
    assert change["state"] == "rejected" and change["reason"] == "not this term"


def test_the_calendar_period_and_the_audit_filters_refuse_in_words(world: World) -> None:
    with world.browser("gus") as browser:
        plain = browser.get("/governance/calendar")  # the next four weeks: Physics is later
        assert plain.status_code == 200, plain.text
        assert plain.text.count("<svg") == 4 and "Physics" not in plain.text
        today = datetime.now(UTC).date()
        period = {"from": today.isoformat(), "to": (today + timedelta(days=120)).isoformat()}
        shown = browser.get("/governance/calendar", params=period)
        assert shown.status_code == 200, shown.text
        assert shown.text.count("<svg") == 4 and "Physics" in shown.text
        assert f'value="{period["to"]}"' in shown.text
        cases = [
            ({"from": "2027-13-01", "to": "2027-02-01"}, 'id="from-error"'),
            ({"from": "2027-03-01", "to": "2027-02-01"}, 'id="to-error"'),
            ({"from": "2027-01-01", "to": "2030-01-01"}, "at most 732 days"),
            ({"from": "9999-12-30", "to": "9999-12-31"}, 'id="from-error"'),
            ({"from": "2027-01-01", "to": "0001-01-01"}, 'id="to-error"'),
        ]
        for query, says in cases:
            r = browser.get("/governance/calendar", params=query)
            assert r.status_code == 400, r.text
            assert says in r.text and query["to"] in r.text
        not_utf8 = browser.get("/governance/calendar?from=%FF%FE&to=2027-01-01")
        assert not_utf8.status_code == 400 and 'id="from-error"' in not_utf8.text
        audit = browser.get("/governance/audit")
        assert audit.status_code == 200, audit.text
        assert "Physics" not in audit.text and world.approved in audit.text
        for query, field in [
            ({"action": "exploded"}, "action"),
            ({"since": "yesterday"}, "since"),
            ({"until": "2027-02-30"}, "until"),
            ({"until": "9999-12-31"}, "until"),
            ({"limit": "²"}, "limit"),
            ({"limit": "9" * 5000}, "limit"),
            ({"since": "0001-01-01"}, "since"),
            ({"limit": "0"}, "limit"),
            ({"request_id": "r" * 65}, "request_id"),
        ]:
            r = browser.get("/governance/audit", params=query)
            assert r.status_code == 400, r.text
            assert f'id="{field}-error"' in r.text
        odd = browser.get("/governance/audit?actor=%FF&request_id=%00")
        assert odd.status_code == 200, odd.text  # matches nobody: an empty page, no 500
        assert "No entry matches." in odd.text
        bad_cursor = browser.get("/governance/audit", params={"cursor": "abc"})
        assert bad_cursor.status_code == 400 and "first page" in bad_cursor.text


def test_the_audit_trail_pages_on_with_its_cursor(world: World) -> None:
    other = asyncio.run(submit(world.people, "lea", course("Chemistry", "chem-1", 2), "gus"))
    asyncio.run(approve(world.people, other, "gus"))  # two approvals in the trail at least
    with world.browser("gus") as browser:
        first = browser.get("/governance/audit", params={"limit": "1"})
        assert first.status_code == 200, first.text
        assert "1 entry on this page" in first.text
        next_href = first.text.split('rel="next"', 1)[0].rsplit('href="', 1)[1].split('"')[0]
        second = browser.get(next_href.replace("&amp;", "&"))
        assert second.status_code == 200, second.text
        assert "1 entry on this page" in second.text and "First page" in second.text
        approved = browser.get("/governance/audit", params={"action": "approved", "actor": "gus"})
        assert approved.status_code == 200, approved.text
        assert world.approved in approved.text and "approved" in approved.text
        # The checks the decider saw, rule by rule.
        assert "<code>limits.cpu.max</code>: 2 (at most 8)" in approved.text
