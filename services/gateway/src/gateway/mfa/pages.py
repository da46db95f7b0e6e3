"""The second step of a browser sign-in, and the page to set up a second factor.

Rendering only (templates mfa_*.html in web/templates); the routes are in
controllers/mfa_pages.py. The only script is /static/mfa.js (the pages' CSP
allows no inline script); it reads the CSRF token, where to go next and its
texts from the page's data attributes, never from the URL.
"""

from __future__ import annotations

from gateway.accounts import Caller
from gateway.web.i18n import N_
from gateway.web.render import Page


def second_step_page(
    *,
    next_url: str,
    csrf: str,
    totp: bool,
    keys: bool,
    recovery_codes: bool,
    viewer: Caller | None = None,
    status: int = 200,
    error: str = "",
) -> Page:
    """A code field (app or recovery code) and, with a security key, its button."""
    return Page(
        "mfa_second_step.html",
        title=N_("Confirm it is you"),
        viewer=viewer,
        status=status,
        next_url=next_url,
        csrf=csrf,
        totp=totp,
        keys=keys,
        code_form=totp or recovery_codes,
        error=error,
    )


def setup_page(
    *,
    next_url: str,
    csrf: str,
    totp: bool,
    keys: int,
    required: bool,
    webauthn: bool,
    viewer: Caller | None = None,
) -> Page:
    """Set up an authenticator app or add a security key; the codes appear once, here."""
    return Page(
        "mfa_setup.html",
        title=N_("Second factor"),
        viewer=viewer,
        next_url=next_url,
        csrf=csrf,
        totp=totp,
        keys=keys,
        required=required,
        webauthn=webauthn,
    )
