"""The gateway's cookies: their names and attributes, in one place.

A hub runs on a sibling subdomain (hub-x.example.org beside example.org), so
a participant's notebook script can set cookies for the parent domain: a
planted sign-in form cookie or session cookie (login CSRF, session fixation).
Over https every cookie is therefore a `__Host-` cookie (Secure, Path=/, no
Domain): a browser accepts such a cookie only from this very host, and the
gateway reads no other name. On plain http (development on loopback) the
prefix is impossible, so the plain names and the narrower paths stay.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie

from gateway.settings import GatewaySettings

SESSION = "jhaas_session"
CSRF = "jhaas_csrf"  # the page's script repeats it in the X-CSRF-Token header
DEVICE = "jhaas_device"  # a browser that signed in to an account before (throttle.py)
SIGN_IN_FORM = "jhaas_signin"  # the sign-in form's login-CSRF cookie (controllers/signin.py)
OIDC_LOGIN = "jhaas_oidc"  # binds a provider sign-in to its browser (identity/binding.py)
HOST_PREFIX = "__Host-"


def cookie_name(settings: GatewaySettings, base: str) -> str:
    return HOST_PREFIX + base if settings.cookie_secure else base


def read_cookie(
    connection: ASGIConnection[Any, Any, Any, Any], settings: GatewaySettings, base: str
) -> str:
    """The cookie's value under the name this gateway sets, "" when absent."""
    return connection.cookies.get(cookie_name(settings, base)) or ""


def make_cookie(
    settings: GatewaySettings,
    base: str,
    value: str,
    max_age: timedelta,
    *,
    path: str = "/",
    samesite: Literal["lax", "strict"] = "lax",
) -> Cookie:
    """`path` narrows a cookie on http only: `__Host-` requires Path=/."""
    secure = settings.cookie_secure
    return Cookie(
        key=cookie_name(settings, base),
        value=value,
        max_age=int(max_age.total_seconds()),
        path="/" if secure else path,
        domain=None,
        httponly=base != CSRF,
        secure=secure,
        samesite=samesite,
    )
