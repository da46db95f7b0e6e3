"""Browser fixtures for the tests of every page (a pytest plugin, loaded by /conftest.py).

Debian's Chromium, headless, driven by Playwright's sync API (`playwright
install` cannot download a browser here). One browser per test module; each
test gets a fresh context (no cookies, no storage, no credentials shared).
A test that takes `browser` or `page` is marked e2e; it must be a plain
function, not `async`: the sync API runs its own event loop.

`virtual_authenticator(page)` gives the page a WebAuthn authenticator through
the Chrome DevTools Protocol, which answers `navigator.credentials` at once,
as a user touching their security key would.

`journey` (a fixture) records a walk through the pages: `journey.step(name)`
saves a full-page screenshot under test-artifacts/screenshots/<module>/<test>/ (or
$JHAAS_TEST_ARTIFACTS), runs axe-core on the page and fails on any serious or
critical violation, and fails on anything the page's CSP refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, CDPSession, ConsoleMessage, Page, sync_playwright

CHROMIUM = os.environ.get("JHAAS_TEST_CHROMIUM", "/usr/bin/chromium")
BROWSER_FIXTURES = frozenset({"browser", "page", "journey"})
ARTIFACTS = Path(
    os.environ.get("JHAAS_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)
# What the issue asks of every page: none of these (axe-core's impact levels).
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: `./jhaas test` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser_language() -> str:
    """The browser's language (its Accept-Language): parametrize it to change it."""
    return "en-US"


@pytest.fixture
def page(browser: Browser, browser_language: str) -> Iterator[Page]:
    context = browser.new_context(locale=browser_language)
    try:
        yield context.new_page()
    finally:
        context.close()


@dataclass
class VirtualAuthenticator:
    """A CTAP2 authenticator attached to one page's browser context."""

    cdp: CDPSession
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        """What the authenticator holds: ids, private keys, sign counts."""
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        credentials: list[dict[str, Any]] = found["credentials"]
        return credentials

    def add_credential(self, credential: dict[str, Any]) -> None:
        """Put a credential into this authenticator, as a clone of a stolen key would be."""
        self.cdp.send(
            "WebAuthn.addCredential",
            {"authenticatorId": self.authenticator_id, "credential": credential},
        )

    def remove(self) -> None:
        self.cdp.send(
            "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator_id}
        )


def virtual_authenticator(page: Page, *, resident_keys: bool = True) -> VirtualAuthenticator:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": resident_keys,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return VirtualAuthenticator(cdp, added["authenticatorId"])


def _slug(text: str, limit: int = 80) -> str:
    """A file name from `text`; a long one keeps its start and gets a hash of the rest,
    so that two parametrized tests never share a folder."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "step"
    if len(slug) <= limit:
        return slug
    return f"{slug[: limit - 9]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass
class Journey:
    """One test's walk through the pages: a screenshot and an accessibility check per step."""

    page: Page
    folder: Path
    steps: int = 0
    refused: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def seen(message: ConsoleMessage) -> None:
            if message.type == "error" and "Content Security Policy" in message.text:
                self.refused.append(message.text)

        page.on("console", seen)

    def step(self, name: str, *, axe: bool = True) -> Path:
        """Screenshot the page as it is now, then check it (axe-core, CSP).

        `axe=False` only for a page that is not ours to change (the vendored
        Swagger UI): say why where it is used."""
        self.steps += 1
        shot = self.folder / f"{self.steps:02d}-{_slug(name)}.png"
        self.page.screenshot(path=shot, full_page=True)
        if axe:
            self.check_accessible(name)
        assert self.refused == [], f"{name}: the CSP refused {self.refused}"
        return shot

    def check_accessible(self, name: str) -> None:
        results = Axe().run(self.page)
        blocking = [
            violation
            for violation in results.response["violations"]
            if violation.get("impact") in BLOCKING_IMPACTS
        ]
        if blocking:
            report = self.folder / f"{self.steps:02d}-{_slug(name)}-axe.json"
            report.write_text(json.dumps(blocking, indent=2))
            summary = [
                f"{v['id']} ({v['impact']}): {v['help']} at "
                + ", ".join(str(node["target"]) for node in v["nodes"][:3])
                for v in blocking
            ]
            pytest.fail(f"{name}: accessibility violations (see {report}):\n" + "\n".join(summary))


@pytest.fixture
def journey(page: Page, request: pytest.FixtureRequest) -> Journey:
    module = Path(str(request.node.path)).stem
    folder = ARTIFACTS / "screenshots" / module / _slug(request.node.name, limit=120)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    walk = Journey(page, folder)
    walk.watch(page)
    return walk
