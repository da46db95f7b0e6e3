"""Every page the gateway serves, in Chromium, in English and in German: each is
in the browser's language (its heading, `<html lang>`), has no serious or
critical accessibility violation (axe-core), runs no script the CSP refuses,
and is saved as a screenshot (tests/browser.py's `journey`).

The whole product runs as processes (`Stack`), so the join pages show a real
course: a leader's request, approved by a reviewer through the API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browser import Journey
from playwright.sync_api import Page, expect

from jhaas_launcher import second_factor
from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually

ADMIN_PASSWORD = "pages-admin-password-0123"
LANGUAGES = {"en-US": "en", "de-DE": "de"}
NEXT = "/api/v1/auth/me"


def password_of(username: str) -> str:
    return f"{username}-password-123"


@dataclass
class Site:
    url: str
    join_code: str


def _course_request() -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
    return {
        "title": "Data Science 101",
        "slug": "ds101",
        "description": "Introduction to data science",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=90)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": {"cpu": "1", "memory": "2Gi", "storage": "5Gi"},
        "expected_participants": 30,
    }


async def _populate(url: str) -> str:
    """The people the pages are shown to, one set for each language (the German ones
    chose German in their profile: a signed-in person's pages speak the profile's
    language), and one approved course: its join code."""
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        admin = await second_factor.sign_in(client, "admin", ADMIN_PASSWORD)

        async def make(name: str, *roles: str) -> str:
            made = await client.post(
                "/api/v1/users",
                headers=admin,
                json={"username": name, "password": password_of(name), "roles": list(roles)},
            )
            assert made.status_code == 201, made.text
            return str(made.json()["user_id"])

        async def speaks(name: str, language: str) -> None:
            session = await second_factor.sign_in(client, name, password_of(name))
            chosen = await client.patch(
                "/api/v1/me", headers=session, json={"preferred_language": language}
            )
            assert chosen.status_code == 200, chosen.text

        for lang in LANGUAGES.values():
            await make(f"gus-{lang}", "governance")  # signs in with an app set up here
            await make(f"ann-{lang}", "participant")
            # rex has no second factor yet (the set-up page): a participant when
            # choosing the language, then made a reviewer.
            rex = await make(f"rex-{lang}", "participant")
            await speaks(f"rex-{lang}", lang)
            promoted = await client.patch(
                f"/api/v1/users/{rex}", headers=admin, json={"roles": ["governance"]}
            )
            assert promoted.status_code == 200, promoted.text
            for name in (f"gus-{lang}", f"ann-{lang}"):
                await speaks(name, lang)
        await make("lea", "leader")
        leader = await second_factor.sign_in(client, "lea", password_of("lea"))
        reviewer = await second_factor.sign_in(client, "gus-en", password_of("gus-en"))
        sent = await client.post("/api/v1/requests", headers=leader, json=_course_request())
        assert sent.status_code == 201, sent.text
        request_id = sent.json()["request_id"]

        async def pending() -> list[str]:
            listed = await client.get("/api/v1/reviews", headers=reviewer)
            return [item["request_id"] for item in listed.json()["items"]]

        await eventually(pending, lambda ids: request_id in ids)
        approved = await client.post(
            f"/api/v1/reviews/{request_id}/approve", headers=reviewer, json={"revision": 1}
        )
        assert approved.status_code == 200, approved.text

        async def join_url() -> str:
            shown = await client.get(f"/api/v1/courses/{request_id}", headers=leader)
            return str(shown.json().get("join_url") or "") if shown.status_code == 200 else ""

        found = await eventually(join_url, bool)
        return urlsplit(found).path.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    stack = Stack(data_dir=Path(tmp_path_factory.mktemp("pages")) / "data")
    url = f"http://localhost:{stack.gateway_port}"
    stack.extra_env = {
        "JHAAS_PUBLIC_URL": url,
        "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JHAAS_LOG_FORMAT": "console",
    }
    try:
        asyncio.run(stack.start())
        yield Site(url=url, join_code=asyncio.run(_populate(url)))
    finally:
        stack.stop()


def sign_in(page: Page, site: Site, username: str, next_url: str = NEXT) -> None:
    """The sign-in form, as a person fills it (by the fields' ids: the labels are translated)."""
    page.goto(f"{site.url}/signin?next={next_url}")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password_of(username))
    page.locator("main button[type=submit]").click()


# Each page: how a person reaches it, and its heading in English and German.
Reach = Callable[[Page, Site, str], None]


def _front(page: Page, site: Site, lang: str) -> None:
    page.goto(site.url)


def _sign_in_form(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/signin")


def _sign_in_refused(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/signin")
    page.locator("#username").fill("lea")
    page.locator("#password").fill("not the password at all")
    page.locator("main button[type=submit]").click()
    expect(page.locator(".error-summary")).to_be_visible()
    expect(page.locator("#username")).to_have_value("lea")  # nothing typed is lost


def _empty_sign_in(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/signin")
    page.locator("main button[type=submit]").click()
    expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")


def _mfa_setup(page: Page, site: Site, lang: str) -> None:
    sign_in(page, site, f"rex-{lang}")
    expect(page).to_have_url(re.compile(r"/signin/mfa/setup\?"))


def _mfa_setup_app(page: Page, site: Site, lang: str) -> None:
    _mfa_setup(page, site, lang)
    page.locator("#start-totp").click()
    expect(page.locator("#totp-secret")).not_to_be_empty()


def _mfa_step(page: Page, site: Site, lang: str) -> None:
    sign_in(page, site, f"gus-{lang}")
    expect(page).to_have_url(re.compile(r"/signin/mfa\?"))


def _mfa_wrong_code(page: Page, site: Site, lang: str) -> None:
    _mfa_step(page, site, lang)
    page.locator("#code").fill("000000")
    page.locator("main form button[type=submit]").click()
    expect(page.locator("#code")).to_have_attribute("aria-invalid", "true")


def _reset_password(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/reset-password#token=not-a-real-token")


def _verify_email(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/verify-email")


def _join_code(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/join")


def _join_unknown(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/join?code=not%20a%20code%21")


def _join_apply(page: Page, site: Site, lang: str) -> None:
    path = f"/join/{site.join_code}"
    page.goto(f"{site.url}{path}")
    expect(page).to_have_url(re.compile(r"/signin\?"))  # a stranger signs in first
    page.locator("#username").fill(f"ann-{lang}")
    page.locator("#password").fill(password_of(f"ann-{lang}"))
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(f"{site.url}{path}")
    expect(page.locator("main")).to_contain_text("Data Science 101")


def _join_applied(page: Page, site: Site, lang: str) -> None:
    _join_apply(page, site, lang)
    page.locator("#message").fill("Hello, I am Ann")
    page.locator("main form button[type=submit]").click()


def _password_change(page: Page, site: Site, lang: str) -> None:
    sign_in(page, site, f"ann-{lang}", next_url="/signin/password")
    expect(page).to_have_url(re.compile(r"/signin/password$"))


def _password_mismatch(page: Page, site: Site, lang: str) -> None:
    _password_change(page, site, lang)
    page.locator("#current_password").fill(password_of(f"ann-{lang}"))
    page.locator("#new_password").fill("a tall giraffe reads 42 books")
    page.locator("#again").fill("a tall giraffe reads 43 books")
    page.locator("main form button[type=submit]").click()
    expect(page.locator("#again")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#new_password")).to_have_value("")  # a password is never sent back


def _oauth_unknown_hub(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/oauth/authorize?client_id=jhaas-hub-nothere&response_type=code")


PAGES: dict[str, tuple[Reach, str, str]] = {
    "front page": (_front, "JHaaS - JupyterHub as a Service", "JHaaS - JupyterHub as a Service"),
    "sign-in": (_sign_in_form, "Sign in", "Anmelden"),
    "sign-in refused": (_sign_in_refused, "Sign in", "Anmelden"),
    "sign-in empty": (_empty_sign_in, "Sign in", "Anmelden"),
    "second factor set-up": (_mfa_setup, "Second factor", "Zweiter Faktor"),
    "authenticator app set-up": (_mfa_setup_app, "Second factor", "Zweiter Faktor"),
    "second factor step": (_mfa_step, "Confirm it is you", "Bestätigen Sie, dass Sie es sind"),
    "second factor wrong code": (
        _mfa_wrong_code,
        "Confirm it is you",
        "Bestätigen Sie, dass Sie es sind",
    ),
    "password reset": (_reset_password, "Choose a new password", "Neues Passwort wählen"),
    "e-mail confirmation": (
        _verify_email,
        "Confirm your e-mail address",
        "E-Mail-Adresse bestätigen",
    ),
    "join code": (_join_code, "Join a course", "Einem Kurs beitreten"),
    "unknown join code": (_join_unknown, "Unknown join code", "Unbekannter Beitrittscode"),
    "join a course": (_join_apply, "Join a course", "Einem Kurs beitreten"),
    "application sent": (
        _join_applied,
        "Your application was sent",
        "Ihre Bewerbung wurde gesendet",
    ),
    "password change": (_password_change, "Change your password", "Passwort ändern"),
    "password change refused": (_password_mismatch, "Change your password", "Passwort ändern"),
    "hub sign-in refused": (
        _oauth_unknown_hub,
        "Cannot sign in to this hub",
        "Anmeldung an diesem Hub nicht möglich",
    ),
}


@pytest.mark.parametrize("browser_language", list(LANGUAGES))
@pytest.mark.parametrize("name", list(PAGES))
def test_the_page_speaks_the_browsers_language_and_passes_axe(
    name: str, browser_language: str, site: Site, journey: Journey
) -> None:
    reach, english, german = PAGES[name]
    lang = LANGUAGES[browser_language]
    reach(journey.page, site, lang)
    expect(journey.page.locator("html")).to_have_attribute("lang", lang)
    expect(journey.page.locator("h1")).to_have_text(german if lang == "de" else english)
    journey.step(name)


def test_the_api_documentation_runs_from_the_gateway_and_passes_axe(
    site: Site, journey: Journey
) -> None:
    """The vendored Swagger UI (English only: the API speaks English), with an
    operation open: no script from elsewhere, no serious or critical violation."""
    page = journey.page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{site.url}/schema/swagger")
    expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    expect(page.get_by_label("Server")).to_be_visible()
    page.locator(".opblock-summary-control").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    journey.step("API documentation")
    assert requested, "the page loaded nothing"
    assert all(url.startswith(site.url) for url in requested), requested
