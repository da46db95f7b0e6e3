"""The second step of a browser sign-in, and a small page to set up a second factor.

Rendering only (the look of oauth/pages.py); the routes are in
controllers/mfa_pages.py. The only script is /static/mfa.js (the pages' CSP
allows no inline script); it reads the CSRF token and where to go next from
the page's data attributes, never from the URL.
"""

from __future__ import annotations

from html import escape

from litestar import Response

from gateway.oauth.pages import page

SCRIPT = '<script src="/static/mfa.js"></script>'


def _notice(error: str) -> str:
    return f'<p role="alert">{escape(error)}</p>' if error else ""


def second_step_page(
    *,
    next_url: str,
    csrf: str,
    totp: bool,
    keys: bool,
    recovery_codes: bool,
    status: int = 200,
    error: str = "",
) -> Response[str]:
    """A code field (app or recovery code) and, with a security key, its button."""
    asked = (
        "the code your authenticator app shows, or one of your recovery codes"
        if totp
        else "one of your recovery codes"
    )
    form = f"""<form method="post" action="/signin/mfa">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="next" value="{escape(next_url)}">
<p><label for="code">Enter {asked}</label><br>
<input id="code" name="code" required maxlength="64" autocomplete="one-time-code"
 spellcheck="false" autocapitalize="off" autofocus></p>
<p><button type="submit">Continue</button></p>
</form>"""
    if not (totp or recovery_codes):
        form = ""
    key = ""
    if keys:
        key = f"""<div id="mfa" data-csrf="{escape(csrf)}" data-next="{escape(next_url)}">
<p><button type="button" id="use-key">Use a security key</button></p>
<p id="key-status" role="status"></p>
</div>
{SCRIPT}"""
    intro = "<p>Your account has a second factor: confirm it to finish signing in.</p>"
    return page(status, "Confirm it is you", f"{_notice(error)}{intro}{key}{form}")


def setup_page(
    *,
    next_url: str,
    csrf: str,
    totp: bool,
    keys: int,
    required: bool,
    webauthn: bool,
) -> Response[str]:
    """Set up an authenticator app or add a security key; the codes appear once, here."""
    have = []
    if totp:
        have.append("an authenticator app")
    if keys:
        have.append(f"{keys} security key{'s' if keys > 1 else ''}")
    state = (
        f"<p>You have {' and '.join(have)}.</p>"
        if have
        else "<p>You have no second factor yet.</p>"
    )
    if required and not have:
        state += "<p>Your account must have one before you can go on.</p>"
    app = (
        ""
        if totp
        else """<section>
<h2>Authenticator app</h2>
<p><button type="button" id="start-totp">Set up an authenticator app</button></p>
<div id="totp-setup" hidden>
<p>Scan this code with your app, or type the key below into it.</p>
<p><img id="totp-qr" alt="QR code of your authenticator key" width="200" height="200"></p>
<p>Key: <code id="totp-secret"></code></p>
<form id="totp-confirm">
<p><label for="totp-code">Then enter the code it shows</label><br>
<input id="totp-code" required maxlength="6" inputmode="numeric"
 autocomplete="one-time-code"></p>
<p><button type="submit">Confirm</button></p>
</form>
</div>
</section>"""
    )
    key = (
        ""
        if not webauthn
        else """<section>
<h2>Security key or passkey</h2>
<p><label for="key-name">Name</label><br>
<input id="key-name" maxlength="100" value="Security key"></p>
<p><button type="button" id="add-key">Add a security key</button></p>
</section>"""
    )
    body = f"""<div id="mfa" data-csrf="{escape(csrf)}" data-next="{escape(next_url)}">
{state}{app}{key}
<p id="setup-status" role="status"></p>
<section id="codes" hidden>
<h2>Your recovery codes</h2>
<p>Keep them somewhere safe: each works once, in place of your second factor.
They are shown only now.</p>
<ol id="code-list"></ol>
</section>
<p><a id="done" href="{escape(next_url)}">Continue</a></p>
</div>
{SCRIPT}"""
    return page(200, "Second factor", body)
