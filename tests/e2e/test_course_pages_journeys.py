"""Issue 11's course journeys in Chromium against the whole product with a real
JupyterHub (local backend), as people do them:

- the leader signs in, finds no course yet, requests a hub with the form (in the
  course's time zone), sees the request wait for review, and
  on the course page watches the status timeline move by itself (server-sent
  events, no reload) to "Running"; copies the join link (and sees its QR code),
  accepts two applications in one go and rejects a third by its own button, sees
  the roster and downloads it as CSV;
- a participant opens the join link, signs in, applies, is accepted, finds the
  running hub on "my courses" and opens it: the hub signs them in through the
  gateway and starts their own server;
- another participant, who chose German, reads "my courses" and the course page in it.

Every step is a screenshot with axe-core's check (tests/browser.py's `journey`);
the hub's own pages are JupyterHub's, not ours: screenshots only."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
from browser import Journey
from playwright.sync_api import Browser, Page, expect

from deployer_svc.backends.local import teardown_all
from deployer_svc.settings import load_or_create_installation_id
from jhaas_launcher import second_factor
from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually
from jhaas_schemas.hubnames import hub_username

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "e2e-admin-password-0123"
TITLE = "Signal processing lab"
T = TypeVar("T")
LONG = 300_000  # ms: a hub's deploy and a first server's start on a loaded machine


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """An async step (the launcher, the API) from this sync test: on a thread of its
    own, away from the loop Playwright's sync API keeps on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def password_of(username: str) -> str:
    return ADMIN_PASSWORD if username == "admin" else f"{username}-password-123"


async def api(base: str, username: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One API call as `username` (signed in with the second factor their role needs)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = await second_factor.sign_in(client, username, password_of(username))
        return await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)


async def make_users(base: str, people: dict[str, tuple[str, ...]]) -> None:
    for username, roles in people.items():
        made = await api(
            base,
            "admin",
            "POST",
            "/users",
            json={"username": username, "password": password_of(username), "roles": list(roles)},
        )
        assert made.status_code == 201, made.text


async def approve(base: str, request_id: str) -> None:
    """As governance, once governance-svc has the request's review."""

    async def decided() -> int:
        r = await api(base, "gus", "POST", f"/reviews/{request_id}/approve", json={"revision": 1})
        return r.status_code

    await eventually(decided, lambda status: status == 200)


@pytest.fixture(scope="module")
def product() -> Iterator[Stack]:
    """The whole product, deploying a hub one minute before its course starts; its
    data folder outside pytest's (mode 0700), as the hub users' accounts need."""
    folder = Path(tempfile.mkdtemp(prefix="jhaas-e2e-", dir="/var/tmp"))
    os.chmod(folder, 0o711)  # noqa: S103 (mkdtemp makes it 0700; /var/lib is 0755)
    stack = Stack(
        data_dir=folder / "data",
        extra_env={
            "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "JHAAS_LOG_FORMAT": "console",
            "JHAAS_DEPLOY_LEAD_MINUTES": "1",
        },
    )
    try:
        run(stack.start())
        people = {"lea": ("leader",), "gus": ("governance",), "ann": (), "ben": (), "cat": ()}
        run(make_users(stack.gateway_url, people))
        yield stack
    finally:
        stack.stop()
        # Hubs outlive the product's processes: tear this test's down as the deployer would.
        data = stack.data_dir
        run(teardown_all(data / "hubs", load_or_create_installation_id(data)))
        shutil.rmtree(folder, ignore_errors=True)


def sign_in(page: Page, username: str) -> None:
    """On the sign-in form (in any language: by the inputs' ids)."""
    page.locator("#username").fill(username)
    page.locator("#password").fill(password_of(username))
    page.locator("form button[type=submit]").click()


def person(browser: Browser, journey: Journey, name: str, locale: str = "en-US") -> Journey:
    """Another person's own browser, walking a journey of their own beside the test's."""
    context = browser.new_context(locale=locale)
    folder = journey.folder / name
    folder.mkdir()
    walk = Journey(context.new_page(), folder)
    walk.watch(walk.page)
    return walk


# A hub's deploy and a first server's start on a shared machine: more than the
# suite's 300 s default (pyproject), the product's start included.
@pytest.mark.timeout(900)
def test_a_leader_runs_a_course_and_a_participant_opens_its_hub(
    product: Stack, journey: Journey, browser: Browser
) -> None:
    base = product.gateway_url
    page = journey.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)

    # --- The leader signs in from "my courses" and has none yet.
    page.goto(f"{base}/courses")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fcourses"))
    sign_in(page, "lea")
    expect(page).to_have_url(f"{base}/courses")
    expect(page.get_by_role("main")).to_contain_text("You have not requested a hub yet")
    expect(page.get_by_role("link", name="Request a hub").last).to_be_visible()
    journey.step("my courses, none yet")

    # --- The leader requests a hub with the form, in the course's time zone (Berlin):
    # it starts in two minutes, so its deploy (one minute earlier) is due once approved.
    page.get_by_role("link", name="Request a hub").last.click()
    expect(page).to_have_url(f"{base}/requests/new")
    journey.step("request form")
    zone = ZoneInfo("Europe/Berlin")
    starts = (datetime.now(zone) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    ends = starts + timedelta(hours=2)
    page.locator("#title").fill(TITLE)
    page.locator("#slug").fill("sigproc-lab")
    page.locator("#description").fill("Filters and spectra, one afternoon.")
    page.locator("#expected_participants").fill("5")
    page.locator("#timezone").select_option("Europe/Berlin")
    page.locator("#start_date").fill(starts.date().isoformat())
    page.locator("#start_time").fill(starts.strftime("%H:%M"))
    page.locator("#end_date").fill(ends.date().isoformat())
    page.locator("#end_time").fill(ends.strftime("%H:%M"))
    # This installation's policy has no presets: an image of the leader's choice.
    page.locator("#env-custom").check()
    page.locator("#image").fill("quay.io/jupyter/scipy-notebook:2024-12-02")
    page.locator("#cpu").fill("1")
    page.locator("#memory").fill("1")
    page.locator("#memory_unit").select_option("GiB")
    page.locator("#storage").fill("1")
    page.locator("#storage_unit").select_option("GiB")
    journey.step("request form, filled in")
    page.get_by_role("button", name="Send the request").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/courses/[^/?]+$"))
    request_id = page.url.rsplit("/", 1)[1]
    stored = run(api(base, "lea", "GET", f"/requests/{request_id}")).json()
    assert stored["spec"]["title"] == TITLE
    assert datetime.fromisoformat(stored["spec"]["starts_at"]) == starts  # Berlin time, as UTC
    page.goto(f"{base}/courses")
    row = page.get_by_role("row", name=re.compile(TITLE))
    expect(row).to_contain_text("Waiting for review")
    journey.step("my courses, the request waits for review")

    page.get_by_role("link", name=TITLE, exact=True).click()
    expect(page).to_have_url(f"{base}/courses/{request_id}")
    expect(page.locator("#course-status")).to_have_text("Waiting for review")
    expect(page.locator('li[data-step="requested"]')).to_have_attribute("data-state", "current")
    page.evaluate("window.stillTheSamePage = true")
    journey.step("course page, in review")

    # --- Governance approves (through the API: the review pages are lane ui-review's);
    # the timeline moves by itself through deploying to running.
    run(approve(base, request_id))
    expect(page.locator("#course-status")).to_have_text("Running", timeout=LONG)
    expect(page.locator("#timeline-announce")).to_have_text("The course status changed: Running")
    assert page.evaluate("window.stillTheSamePage === true")  # no reload: the server's events
    for step, state in (("approved", "done"), ("deploying", "done"), ("running", "current")):
        expect(page.locator(f'li[data-step="{step}"]')).to_have_attribute("data-state", state)
    hub_link = page.get_by_role("link", name="Open the hub")
    expect(hub_link).to_be_visible()
    hub_url = str(hub_link.get_attribute("href"))
    assert hub_url.startswith("http"), hub_url
    journey.step("course page, running: moved live")

    # --- The join link: copied with the button, and as a QR code.
    page.reload()
    join_url = page.get_by_role("textbox", name="Join link").input_value()
    assert re.fullmatch(rf"{re.escape(base)}/join/[A-Za-z0-9-]+", join_url), join_url
    page.get_by_role("button", name="Copy the join link").click()
    expect(page.locator("#copy-status")).to_have_text("Copied the join link.")
    assert page.evaluate("navigator.clipboard.readText()") == join_url
    qr = page.get_by_role("img", name="QR code of the join link")
    expect(qr).to_be_visible()
    assert qr.evaluate("image => image.complete && image.naturalWidth > 0")
    journey.step("join link copied, QR code")

    # --- Ann opens the join link in her own browser, signs in and applies.
    ann = person(browser, journey, "ann")
    ann.page.goto(join_url)
    expect(ann.page).to_have_url(re.compile(r"/signin\?"))
    ann.step("join link: sign in first")
    sign_in(ann.page, "ann")
    expect(ann.page.get_by_role("main")).to_contain_text(TITLE)
    ann.page.get_by_label("Message to the course leader (optional)").fill("I am in the lab group.")
    ann.step("the application form")
    ann.page.get_by_role("button", name="Apply to join").click()
    expect(ann.page.get_by_role("heading", level=1)).to_have_text("Your application was sent")
    ann.step("applied")
    code = join_url.rsplit("/", 1)[1]
    for other in ("ben", "cat"):
        applied = run(api(base, other, "POST", f"/join/{code}", json={"message": f"I am {other}"}))
        assert applied.status_code == 201, applied.text

    # --- The leader accepts Ann and Ben in one go, and rejects Cat by her own button.
    page.reload()
    applications = page.get_by_role("table", name="3 applications wait for a decision")
    expect(applications).to_be_visible()
    expect(applications).to_contain_text("I am in the lab group.")
    journey.step("three applications")
    page.get_by_label("Select ann").check()
    page.get_by_label("Select ben").check()
    page.get_by_role("button", name="Accept the selected applications").click()
    expect(page.get_by_role("status").filter(has_text="were accepted")).to_have_text(
        "The selected applications were accepted."
    )
    expect(page.get_by_role("table", name="1 application waits for a decision")).to_be_visible()
    journey.step("two accepted in one go")
    page.get_by_label("Reason for a rejection (optional)").fill("The lab has room for two.")
    page.get_by_role("button", name="Reject cat").click()
    expect(page.get_by_role("main")).to_contain_text("No application waits for a decision.")
    roster = page.get_by_role("table", name="2 accepted participants")
    expect(roster.get_by_role("rowheader")).to_have_text(["ann", "ben"])
    expect(page.get_by_role("table", name="Earlier applications and participants")).to_contain_text(
        "Application rejected"
    )
    journey.step("one rejected; the roster")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the roster as CSV").click()
    assert download.value.suggested_filename == "roster-sigproc-lab.csv"
    rows = list(csv.reader(Path(download.value.path()).read_text().splitlines()))
    assert rows[0][:3] == ["username", "display_name", "status"]
    assert {row[0]: row[2] for row in rows[1:]} == {
        "ann": "accepted",
        "ben": "accepted",
        "cat": "rejected",
    }

    # --- Ann finds the running hub on "my courses" and opens it: the hub signs her
    # in through the gateway and starts her own server.
    ann.page.goto(f"{base}/courses")
    row = ann.page.get_by_role("row", name=re.compile(TITLE))
    expect(row).to_contain_text("Participant")
    expect(row).to_contain_text("Running")
    ann.step("my courses: the hub runs")
    ann.page.get_by_role("link", name=f"Open {TITLE}").click()
    expect(ann.page).to_have_url(re.compile(r"/hub/login"), timeout=60_000)
    ann.step("the hub's sign-in page", axe=False)  # JupyterHub's page, not ours
    # JupyterHub's button (a link with role=button) to sign in through the gateway.
    ann.page.get_by_role("button", name="Sign in with JHaaS").click()
    me = run(api(base, "ann", "GET", "/auth/me")).json()
    hub_name = hub_username(str(me["user_id"]))
    # The hub's own page for her user: her server starting (spawn-pending) or running.
    expect(ann.page).to_have_url(
        re.compile(rf"/(user|hub/spawn-pending)/{hub_name}(/|\?|$)"), timeout=LONG
    )
    assert ann.page.url.startswith(hub_url), (ann.page.url, hub_url)
    ann.step("her own server on the hub", axe=False)  # JupyterHub's page, not ours

    # --- Ben, who chose German in his profile (a signed-in person's pages speak it),
    # reads "my courses" and the course page in German.
    chosen = run(api(base, "ben", "PATCH", "/me", json={"preferred_language": "de"}))
    assert chosen.status_code == 200, chosen.text
    ben = person(browser, journey, "ben", locale="de-DE")
    ben.page.goto(f"{base}/courses")
    sign_in(ben.page, "ben")
    expect(ben.page.get_by_role("heading", level=1)).to_have_text("Meine Kurse")
    row = ben.page.get_by_role("row", name=re.compile(TITLE))
    expect(row).to_contain_text("Läuft")
    expect(row.get_by_role("link", name=f"{TITLE} öffnen")).to_be_visible()
    ben.step("Meine Kurse")
    row.get_by_role("link", name=TITLE, exact=True).click()
    expect(ben.page.locator("#course-status")).to_have_text("Läuft")
    expect(ben.page.get_by_role("link", name="Hub öffnen")).to_be_visible()
    expect(ben.page.get_by_role("button", name="Kurs verlassen")).to_be_visible()
    ben.step("Kursseite")
    for walk in (ann, ben):
        walk.page.context.close()
