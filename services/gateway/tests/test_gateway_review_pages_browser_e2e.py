"""THE REVIEWER'S DECISION (issue 11), in Chromium, against NATS, request-svc,
governance-svc and the gateway as real processes, under an enforced capacity
calendar of 100 cores (review_helpers.py).

Rita (governance) signs in with her authenticator app's code, opens the queue,
sees each request's checks and its capacity chart, asks for changes on one
request, rejects another (first with no comment: the error next to it), approves a
third; a fourth no longer fits the calendar beside the third: its page says so and
its approval is refused in the service's words. The audit trail lists the
decisions. Then the same pages for Rolf, who reads German. Every step is a screenshot and passes
axe-core (tests/browser.py's `journey`)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser import Journey
from playwright.sync_api import Page, expect

sys.path.insert(0, str(Path(__file__).parent))
from review_helpers import approve, course, make_people, password_of, review_stack, submit

from jhaas_launcher import second_factor


@dataclass
class Queue:
    url: str
    ids: dict[str, str]  # title -> request id


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Queue]:
    with review_stack(tmp_path_factory.mktemp("reviewer")) as stack:
        url = f"http://localhost:{stack.gateway_port}"

        async def build() -> Queue:
            people = await make_people(
                url,
                {
                    "lea": ("leader",),
                    "leo": ("leader",),
                    "gus": ("governance",),
                    "rita": ("governance",),
                    "rolf": ("governance",),
                },
            )
            # Rolf reads German (his profile's language: a signed-in person's pages speak it).
            async with people.client() as client:
                chosen = await client.patch(
                    "/api/v1/me", headers=people.headers["rolf"], json={"preferred_language": "de"}
                )
                assert chosen.status_code == 200, chosen.text
            ids: dict[str, str] = {}
            # Already approved (by gus): it holds 20 cores over the others' window.
            ids["Physics"] = await submit(people, "lea", course("Physics", "phys", 10), "gus")
            await approve(people, ids["Physics"], "gus")
            wanted = [
                ("Statistics", "lea", 10),
                ("Quick money", "leo", 5),
                ("Machine Learning", "lea", 30),  # 60 cores: fits beside Physics
                ("Big Data", "leo", 30),  # 60 more: fits alone, not beside Machine Learning
            ]
            for title, leader, participants in wanted:
                slug = title.lower().replace(" ", "-")
                ids[title] = await submit(people, leader, course(title, slug, participants), "gus")
            return Queue(url, ids)

        yield asyncio.run(build())


def sign_in(page: Page, journey: Journey | None, next_path: str, who: str = "rita") -> None:
    """The reviewer's password, then their app's code: the browser's second step."""
    page.goto(next_path)
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.locator("#username").fill(who)
    page.locator("#password").fill(password_of(who))
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/signin/mfa\?"))
    if journey is not None:
        journey.step("second step")
    app = second_factor.APPS[who]
    page.locator("#code").fill(app.next_code() or app.recovery_codes.pop())
    page.locator("form button[type=submit]").last.click()


def open_request(page: Page, title: str) -> None:
    page.goto(page.url.split("/reviews")[0] + "/reviews")
    page.get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", level=2, name=title)).to_be_visible()


def test_a_reviewer_decides_on_the_queue(queue: Queue, journey: Journey) -> None:
    page = journey.page
    sign_in(page, journey, f"{queue.url}/reviews")
    expect(page).to_have_url(f"{queue.url}/reviews")
    expect(page.get_by_role("heading", level=1)).to_have_text("Reviews")
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(4)
    # Oldest first, each with its checks in a line.
    expect(rows.nth(0)).to_contain_text("Statistics")
    expect(rows.nth(3)).to_contain_text("Big Data")
    expect(rows.nth(0)).to_contain_text("rules pass")
    expect(rows.nth(0)).to_contain_text("the calendar fits")
    expect(rows.nth(0)).to_contain_text("lea")
    journey.step("the queue")

    # Statistics: every check, and the calendar drawn (and as a table).
    page.get_by_role("link", name="Statistics", exact=True).click()
    expect(page.get_by_role("heading", level=2, name="Statistics")).to_be_visible()
    checks = page.get_by_role("table", name="The policy's rules applied to this request")
    expect(checks).to_contain_text("passes")
    expect(page.get_by_text("The course fits the capacity calendar.")).to_be_visible()
    overlapping = page.get_by_role("table", name=re.compile("overlaps? this one's window"))
    expect(overlapping).to_contain_text("Physics")
    cpu = page.get_by_role("img", name=re.compile(r"^CPU: reserved and free capacity"))
    expect(cpu).to_be_visible()
    expect(page.locator("svg.chart__svg")).to_have_count(4)
    expect(page.locator("#chart-cpu-desc")).to_contain_text("This request needs 20 cores")
    expect(page.get_by_role("table", name="CPU in cores over the period")).to_contain_text("20")
    journey.step("a request: checks and capacity chart")

    page.get_by_label("Comment to the leader").fill("Please pick a preset image.")
    page.get_by_role("button", name="Request changes").click()
    expect(page.get_by_role("status")).to_have_text("You asked the leader for changes.")
    expect(page.get_by_text("changes requested").first).to_be_visible()
    journey.step("changes requested")

    # Quick money: a rejection needs its reason.
    open_request(page, "Quick money")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator(".error-summary")).to_contain_text("Give the reason for your decision")
    comment = page.get_by_label("Comment to the leader")
    expect(comment).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#comment-error")).to_contain_text("Give the reason")
    journey.step("a rejection without a reason")
    comment.fill("Not a course of this university.")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status")).to_have_text("You rejected this request.")
    journey.step("rejected")

    # Machine Learning fits beside Physics: approved.
    open_request(page, "Machine Learning")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_have_text("You approved this request.")
    journey.step("approved")

    # Big Data no longer fits beside Machine Learning: said, and its approval refused.
    open_request(page, "Big Data")
    expect(page.get_by_text("The course does not fit the capacity calendar.")).to_be_visible()
    expect(page.locator(".calendar-verdict")).to_contain_text("Machine Learning")
    expect(page.locator("#chart-cpu-desc")).to_contain_text("Some of the period is overbooked")
    expect(page.get_by_role("table", name="CPU in cores over the period")).to_contain_text(
        "no: overbooked"
    )
    journey.step("a request that does not fit")
    page.get_by_label("Comment to the leader").fill("Let us try.")
    page.get_by_role("button", name="Approve").click()
    refusal = page.locator("#decision-refusal")
    expect(refusal).to_contain_text("does not fit the capacity calendar")
    expect(page.get_by_label("Comment to the leader")).to_have_value("Let us try.")
    expect(page.locator(".error-summary")).to_contain_text("does not fit")
    journey.step("its approval refused")

    page.goto(f"{queue.url}/reviews")
    expect(page.locator("table.queue tbody tr")).to_have_count(1)  # Big Data still waits

    page.goto(f"{queue.url}/governance/audit")
    trail = page.locator("table.audit tbody")
    for text in ("changes requested", "rejected", "Not a course of this university."):
        expect(trail).to_contain_text(text)
    expect(trail.locator("tr", has_text=queue.ids["Machine Learning"])).to_contain_text("rita")
    journey.step("the audit trail")
    page.get_by_label("Action").select_option("rejected")
    page.get_by_role("button", name="Filter the trail").click()
    expect(trail.locator("tr")).to_have_count(1)
    expect(trail).to_contain_text("Not a course of this university.")
    journey.step("the audit trail, rejections only")

    today = datetime.now(UTC).date()
    page.goto(f"{queue.url}/governance/calendar")
    page.get_by_label("From", exact=True).fill(today.isoformat())
    page.get_by_label("To (the whole day)").fill((today + timedelta(days=120)).isoformat())
    page.get_by_role("button", name="Show the calendar").click()
    expect(
        page.get_by_role("table", name=re.compile("approved courses in the period"))
    ).to_contain_text("Machine Learning")
    expect(page.locator("svg.chart__svg")).to_have_count(4)
    journey.step("the capacity calendar")
    page.get_by_label("To (the whole day)").fill((today - timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Show the calendar").click()
    expect(page.locator("#to-error")).to_contain_text("must be after from")
    journey.step("a period that ends before it starts")


@pytest.mark.parametrize("browser_language", ["de-DE"])
def test_the_reviewers_pages_in_german(queue: Queue, journey: Journey) -> None:
    page = journey.page
    sign_in(page, None, f"{queue.url}/reviews", "rolf")
    expect(page).to_have_url(f"{queue.url}/reviews")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text("Begutachtung")
    journey.step("die Warteschlange")
    page.goto(f"{queue.url}/reviews/{queue.ids['Big Data']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Einen Antrag begutachten")
    expect(page.get_by_role("button", name="Genehmigen")).to_be_visible()
    journey.step("ein Antrag")
    page.goto(f"{queue.url}/governance/audit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Governance-Protokoll")
    journey.step("das Prüfprotokoll")
    page.goto(f"{queue.url}/governance/calendar")
    expect(page.get_by_role("heading", level=1)).to_have_text("Kapazitätskalender")
    journey.step("der Kapazitätskalender")
