"""Setting up an authenticator app on the setup page, in Chromium: the QR code shows,
the key is readable, its first code confirms it and the recovery codes appear once;
the next sign-in asks for a code."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, expect

sys.path.insert(0, str(Path(__file__).parent))
from test_gateway_webauthn_browser_e2e import NEXT, gateway, sign_in, users_status

from jhaas_launcher.second_factor import STEP_SECONDS, totp_code

__all__ = ["gateway"]  # the module's own gateway, as a fixture


def test_an_admin_sets_up_an_app_and_signs_in_with_its_code(gateway: str, page: Page) -> None:
    sign_in(page, gateway)
    expect(page).to_have_url(re.compile(r"/signin/mfa/setup\?"))
    page.get_by_role("button", name="Set up an authenticator app").click()
    qr = page.get_by_role("img", name="QR code of your authenticator key")
    expect(qr).to_be_visible()
    assert qr.evaluate("image => image.complete && image.naturalWidth > 0")
    secret = page.locator("#totp-secret").inner_text()
    step = int(time.time()) // STEP_SECONDS
    page.get_by_label("Then enter the code it shows").fill(totp_code(secret, step))
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#setup-status")).to_have_text("Your authenticator app is set up.")
    expect(page.locator("#code-list li")).to_have_count(10)
    assert users_status(page, gateway) == 200

    page.context.clear_cookies()
    sign_in(page, gateway)
    expect(page).to_have_url(re.compile(r"/signin/mfa\?"))
    page.get_by_label(re.compile("Enter the code")).fill(totp_code(secret, step + 1))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{gateway}{NEXT}")
    assert users_status(page, gateway) == 200
