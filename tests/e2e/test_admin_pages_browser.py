"""The admin pages and the account page in Chromium, against the whole product (NATS,
every service, the gateway, real JupyterHubs through the local backend): an admin
with an authenticator app redeploys a hub whose deployment really failed and sees
it deploying, then running; changes a user's role; every admin page in English and
German; the account page follows the browser until its person chooses; signing out.

Every step is a screenshot (test-artifacts/screenshots/...) and passes axe-core with
no serious or critical violation (tests/browser.py's `journey`)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from browser import Journey
from playwright.sync_api import Page, expect

from deployer_svc.backends.local import teardown_all
from deployer_svc.settings import load_or_create_installation_id
from jhaas_launcher import second_factor
from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "e2e-admin-password-0123"
T = TypeVar("T")
LEA = ("lea", "lea-password-123")
GUS = ("gus", "gus-password-123")
TOM = ("tom", "tom-password-123")
UTA = ("uta", "uta-password-123")
COURSE = "Broken hub lab"


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end on a thread of its own: Playwright's sync API keeps an
    event loop running on the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


class Product:
    """The running product and what the tests set up in it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.url = stack.gateway_url
        self.request_id = ""
        self.headers: dict[str, dict[str, str]] = {}  # each person signs in once

    async def _api(self, who: tuple[str, str], method: str, path: str, **kw: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            for _ in range(2):
                if who[0] not in self.headers:
                    self.headers[who[0]] = await second_factor.sign_in(client, *who)
                headers = self.headers[who[0]]
                r = await client.request(method, f"/api/v1{path}", headers=headers, **kw)
                if r.status_code != 401:
                    break
                del self.headers[who[0]]  # the token expired: sign in again
            return r

    def api(self, who: tuple[str, str], method: str, path: str, **kw: Any) -> httpx.Response:
        response: httpx.Response = run(self._api(who, method, path, **kw))
        return response

    async def deployment(self) -> dict[str, Any]:
        r = await self._api(ADMIN, "GET", "/deployments", params={"request_id": self.request_id})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        return dict(items[0]) if items else {}

    def wait_for_state(self, wanted: str, timeout: float) -> dict[str, Any]:
        found: dict[str, Any] = run(
            eventually(
                self.deployment, lambda d: d.get("state") == wanted, timeout=timeout, interval=1
            )
        )
        return found


ADMIN = ("admin", ADMIN_PASSWORD)


def _make_users(product: Product) -> None:
    people = ((LEA, ["leader"]), (GUS, ["governance"]), (TOM, []), (UTA, []))
    for (name, password), roles in people:
        r = product.api(
            ADMIN, "POST", "/users", json={"username": name, "password": password, "roles": roles}
        )
        assert r.status_code == 201, r.text


def _fail_a_deployment(product: Product) -> Path:
    """A course whose hub cannot start: its deployment fails for real.

    Between the approval and the deploy (one minute before the course starts) the
    hub's folder gets a damaged database, as a disk fault or a half-restored backup
    leaves one: `jupyterhub.sqlite` that is no SQLite file. JupyterHub stops during
    start-up on it; with JHAAS_DEPLOY_ATTEMPTS=1 the deployer marks the deployment
    failed with the reason in words. The returned file is what an operator removes
    before redeploying."""
    starts_at = (datetime.now(UTC) + timedelta(seconds=80)).replace(microsecond=0)
    spec = {
        "title": COURSE,
        "slug": "broken-hub-lab",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(hours=2)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
        "expected_participants": 5,
    }
    r = product.api(LEA, "POST", "/requests", json=spec)
    assert r.status_code == 201, r.text
    product.request_id = r.json()["request_id"]

    async def approve() -> int:
        found = await product._api(
            GUS, "POST", f"/reviews/{product.request_id}/approve", json={"revision": 1}
        )
        return int(found.status_code)

    run(eventually(approve, lambda status: status == 200, timeout=60, interval=1))
    deployment = run(eventually(product.deployment, bool, timeout=60, interval=0.5))
    assert deployment["state"] == "scheduled", deployment
    folder = product.stack.data_dir / "hubs" / deployment["deployment_id"]
    folder.mkdir(parents=True, exist_ok=True)
    damaged = folder / "jupyterhub.sqlite"
    damaged.write_bytes(b"this is not an SQLite database\n" * 64)
    return damaged


@pytest.fixture(scope="module")
def product() -> Iterator[Product]:
    folder = Path(tempfile.mkdtemp(prefix="jhaas-e2e-admin-", dir="/var/tmp"))
    os.chmod(folder, 0o711)  # noqa: S103 (the hub users' homes are in it, as in /var/lib)
    stack = Stack(
        data_dir=folder / "data",
        extra_env={
            "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "JHAAS_LOG_FORMAT": "console",
            "JHAAS_DEPLOY_LEAD_MINUTES": "1",
            "JHAAS_DEPLOY_ATTEMPTS": "1",
        },
    )
    try:
        run(stack.start())
        made = Product(stack)
        _make_users(made)
        yield made
    finally:
        stack.stop()
        run(teardown_all(stack.data_dir / "hubs", load_or_create_installation_id(stack.data_dir)))
        shutil.rmtree(folder, ignore_errors=True)


def sign_in(page: Page, product: Product, who: tuple[str, str], next_url: str) -> None:
    """The sign-in form (and, for the admin, the authenticator app's code)."""
    page.goto(f"{product.url}/signin?next={next_url}")
    page.locator("#username").fill(who[0])
    page.locator("#password").fill(who[1])
    page.locator("form[action='/signin'] button[type=submit]").click()
    if who[0] == "admin":
        expect(page).to_have_url(re.compile(r"/signin/mfa\?"))
        app = second_factor.APPS["admin"]
        code = app.next_code() or app.recovery_codes.pop()  # a code counts once
        page.locator("#code").fill(code)
        page.locator("form[action='/signin/mfa'] button[type=submit]").click()
    expect(page).to_have_url(f"{product.url}{next_url}")


def reload_until(page: Page, selector: str, text: re.Pattern[str], tries: int = 120) -> None:
    """Reload the page (as a person waiting does) until `selector` shows `text`."""
    for _ in range(tries):
        if text.search(page.locator(selector).inner_text()):
            return
        page.wait_for_timeout(1000)
        page.reload()
    expect(page.locator(selector)).to_contain_text(text)


def test_an_admin_redeploys_a_failed_hub_and_sees_it_deploying(
    product: Product, journey: Journey
) -> None:
    damaged = _fail_a_deployment(product)
    failed = product.wait_for_state("failed", timeout=240)
    assert failed["failure_reason"], failed

    page = journey.page
    sign_in(page, product, ADMIN, "/admin/deployments")
    expect(page.get_by_role("heading", level=1)).to_have_text("Failed deployments")
    row = page.locator(f"#deployment-{product.request_id}")
    expect(row).to_contain_text(COURSE)
    expect(row).to_contain_text(failed["failure_reason"])
    journey.step("the failed deployment with its reason")

    damaged.unlink()  # the operator repaired what broke it
    row.get_by_role("button", name=re.compile("^Redeploy")).click()
    expect(page).to_have_url(re.compile(r"/admin/deployments\?redeployed="))
    expect(page.get_by_role("status").first).to_contain_text("deployed again")
    expect(page.locator(f"#deployment-{product.request_id}")).to_have_count(0)
    live = page.locator(f"#live-{product.request_id}")
    expect(live).to_contain_text(re.compile("scheduled|deploying|running"))
    reload_until(page, f"#live-{product.request_id}", re.compile("deploying|running"))
    journey.step("redeployed: deploying")

    product.wait_for_state("running", timeout=240)
    reload_until(page, f"#live-{product.request_id}", re.compile("running"))
    expect(page.locator(f"#live-{product.request_id} a")).to_have_attribute(
        "href", re.compile("^http")
    )
    journey.step("redeployed: running")


def test_an_admin_changes_a_users_role(product: Product, journey: Journey) -> None:
    page = journey.page
    sign_in(page, product, ADMIN, "/admin/users")
    row = page.locator("tr", has=page.locator("th", has_text=re.compile(f"^{UTA[0]}$")))
    row.get_by_label("Course leader").check()
    journey.step("a role checked")
    row.get_by_role("button", name=re.compile("^Save roles")).click()
    expect(page.get_by_role("status").first).to_contain_text("The roles were saved.")
    row = page.locator("tr", has=page.locator("th", has_text=re.compile(f"^{UTA[0]}$")))
    expect(row.get_by_label("Course leader")).to_be_checked()
    journey.step("the role saved")
    users = product.api(ADMIN, "GET", "/users").json()["items"]
    assert [u["roles"] for u in users if u["username"] == UTA[0]] == [["leader"]]


HEADINGS = {
    "en-US": {
        "/admin": "Administration",
        "/admin/users": "Users and roles",
        "/admin/deployments": "Failed deployments",
        "/admin/policy": "Policy in force",
        "/admin/audit": "Audit log",
        "/account": "Your account",
        "/account/confirm?next=/admin": "Confirm it is you",
    },
    "de-DE": {
        "/admin": "Verwaltung",
        "/admin/users": "Benutzer und Rollen",
        "/admin/deployments": "Fehlgeschlagene Bereitstellungen",
        "/admin/policy": "Geltende Richtlinie",
        "/admin/audit": "Audit-Protokoll",
        "/account": "Ihr Konto",
        "/account/confirm?next=/admin": "Bestätigen Sie, dass Sie es sind",
    },
}


@pytest.mark.parametrize("browser_language", ["en-US", "de-DE"])
def test_every_admin_page_in_each_language(
    product: Product, journey: Journey, browser_language: str
) -> None:
    page = journey.page
    sign_in(page, product, ADMIN, "/admin")
    expect(page.locator("html")).to_have_attribute("lang", browser_language[:2])
    for path, heading in HEADINGS[browser_language].items():
        page.goto(f"{product.url}{path}")
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        journey.step(path)
    page.goto(f"{product.url}/admin/audit?kind=user.")
    expect(page.locator("table.audit tbody")).to_contain_text("user.created")
    journey.step("audit log filtered")
    page.goto(f"{product.url}/admin/policy")
    expect(page.locator("main")).to_contain_text("limits.cpu.max")


@pytest.mark.parametrize("browser_language", ["de-DE"])
def test_the_account_page_follows_the_browser_until_its_person_chooses(
    product: Product, journey: Journey
) -> None:
    page = journey.page
    sign_in(page, product, TOM, "/account")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ihr Konto")
    journey.step("German: the browser's language")
    page.locator("#preferred_language").select_option("en")
    page.locator("form[action='/account/profile'] button[type=submit]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.get_by_role("status").first).to_contain_text("Your profile was saved.")
    journey.step("English: chosen")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(f"{product.url}/")
    expect(page.locator("main a[href='/signin']")).to_be_visible()  # signed out
    journey.step("signed out")
    page.goto(f"{product.url}/account")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Faccount"))
