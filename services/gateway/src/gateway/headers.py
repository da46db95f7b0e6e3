"""Security headers on every response, decided in one place.

- API answers (JSON, CSV): nothing may load from them or frame them.
- The HTML pages: scripts, styles and images from this site only (no inline
  script), never framed. There is no `form-action`: Chrome applies it to the
  redirects after a form is sent, and the sign-in form's redirect ends at a
  course hub on another origin (OAuth), which the pages cannot list.
- The API documentation (Swagger UI, /schema): its code from this site too
  (vendored, no CDN, no inline script); its widgets set inline styles.
- HSTS only when the public URL is https (browsers ignore it on http anyway,
  and a development gateway on loopback must stay reachable over http).
- `Cache-Control: no-store` on everything but /static: answers carry personal
  data and must not stay in a shared cache or the browser's.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from gateway.settings import GatewaySettings

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
HSTS = "max-age=31536000"
COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
STATIC_PREFIX = "/static/"
DOCS_PREFIX = "/schema"


def make_security_headers(settings: GatewaySettings) -> BeforeMessageSendHookHandler:
    https = settings.public_url.startswith("https://")

    async def send_security_headers(message: Message, scope: Scope) -> None:
        """`before_send` hook: a header the handler set itself is kept."""
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        path: str = scope.get("path", "")
        for name, value in COMMON.items():
            headers.setdefault(name, value)
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if path.startswith(DOCS_PREFIX):
            headers.setdefault("Content-Security-Policy", DOCS_CSP)
        elif headers.get("content-type", "").startswith("text/html"):
            headers.setdefault("Content-Security-Policy", PAGE_CSP)
        else:
            headers.setdefault("Content-Security-Policy", API_CSP)
        if not path.startswith(STATIC_PREFIX):
            headers.setdefault("Cache-Control", "no-store")

    return send_security_headers
