"""The browser fixtures themselves: Chromium starts, pages are isolated, and the
virtual authenticator answers WebAuthn in a secure context."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from browser import Journey, virtual_authenticator
from playwright.sync_api import Page

PAGE = b"""<!doctype html><title>t</title>
<script src="/create.js"></script>"""
# A page a screen reader cannot use: an image without a text and a field without a label.
INACCESSIBLE = b"""<!doctype html><html lang="en"><title>bad</title>
<main><h1>Bad</h1><img src="/x.png"><input type="text"></main></html>"""
ACCESSIBLE = b"""<!doctype html><html lang="en"><title>good</title>
<main><h1>Good</h1><label for="f">Name</label><input id="f" type="text"></main></html>"""
# Makes a credential for rp "localhost" and reports its id length in the title.
SCRIPT = b"""
window.create = async () => {
  const cred = await navigator.credentials.create({publicKey: {
    rp: {id: "localhost", name: "t"},
    user: {id: new Uint8Array([1, 2, 3]), name: "u", displayName: "u"},
    challenge: new Uint8Array(32),
    pubKeyCredParams: [{type: "public-key", alg: -7}],
  }});
  return cred.rawId.byteLength;
};
"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script = self.path == "/create.js"
            body, kind = (SCRIPT, "text/javascript") if script else (PAGE, "text/html")
            if self.path in ("/bad", "/good"):
                body = INACCESSIBLE if self.path == "/bad" else ACCESSIBLE
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pages_are_isolated_and_marked_e2e(
    page: Page, site: str, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("e2e") is not None
    page.goto(site)
    page.evaluate("document.cookie = 'seen=1'")
    assert page.context.cookies() != []


def test_a_new_test_starts_without_cookies(page: Page, site: str) -> None:
    page.goto(site)
    assert page.context.cookies() == []


def test_the_virtual_authenticator_makes_a_credential(page: Page, site: str) -> None:
    authenticator = virtual_authenticator(page)
    page.goto(site)
    assert page.evaluate("window.create()") > 0
    [credential] = authenticator.credentials()
    assert credential["rpId"] == "localhost"


def test_a_journey_step_saves_a_screenshot_of_an_accessible_page(
    journey: Journey, site: str
) -> None:
    journey.page.goto(site + "/good")
    shot = journey.step("the good page")
    assert shot.name == "01-the-good-page.png"
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_a_journey_step_fails_on_a_serious_accessibility_violation(
    journey: Journey, site: str
) -> None:
    journey.page.goto(site + "/bad")
    with pytest.raises(pytest.fail.Exception) as failed:
        journey.step("the bad page")
    assert "image-alt (critical)" in str(failed.value)
    assert "label (critical)" in str(failed.value)
    assert (journey.folder / "01-the-bad-page-axe.json").is_file()
