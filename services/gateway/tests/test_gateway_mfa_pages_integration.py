"""The browser's second step in a browser's shoes (cookies, forms, redirects): /signin
sends a session that owes its second factor to /signin/mfa, whose form takes a code
bound to the session's CSRF token and goes on only to a path on this site."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, SteppedClock, make_client
from mfa_helpers import code, enroll, sign_in
from oauth_helpers import query_of, sign_in_form

pytestmark = pytest.mark.integration

FORM_PAGE = "/signin/mfa"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def client(gateway_settings: GatewaySettings, clock: SteppedClock) -> AsyncIterator[Client]:
    async with make_client(gateway_settings, clock=clock) as test_client:
        yield test_client


async def enrolled_admin(client: Client, clock: SteppedClock) -> tuple[str, list[str]]:
    token, _ = await sign_in(client, *ADMIN)
    secret, codes = await enroll(client, token, clock)
    return secret, codes


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


async def second_step(client: Client, next_url: str) -> httpx.Response:
    signed_in = await sign_in_form(client, *ADMIN, next_url=next_url)
    assert signed_in.status_code == 303
    location = signed_in.headers["location"]
    assert location.startswith(f"{FORM_PAGE}?") and query_of(location)["next"] == next_url
    page = await client.get(location, follow_redirects=False)
    assert page.status_code == 200, page.text
    return page


async def post_code(
    client: Client, page: httpx.Response, code: str, **extra: str
) -> httpx.Response:
    form = {"csrf": csrf_of(page), "next": "/api/v1/users", "code": code, **extra}
    return await client.post(FORM_PAGE, data=form, follow_redirects=False)


async def test_signing_in_with_a_password_then_a_code(client: Client, clock: SteppedClock) -> None:
    secret, _ = await enrolled_admin(client, clock)
    page = await second_step(client, "/api/v1/users")
    assert 'name="code"' in page.text
    assert "use-key" not in page.text  # no security key: no button, no script
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    # Owed: the API refuses the half-signed-in session.
    assert (await client.get("/api/v1/users")).status_code == 403
    done = await post_code(client, page, code(secret, clock, steps_ahead=1))
    assert done.status_code == 303 and done.headers["location"] == "/api/v1/users"
    assert (await client.get("/api/v1/users")).status_code == 200
    # Fully signed in: the page sends the browser on.
    again = await client.get(FORM_PAGE, params={"next": "/healthz"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/healthz"


async def test_a_wrong_or_replayed_code_shows_the_form_again(
    client: Client, clock: SteppedClock
) -> None:
    secret, _ = await enrolled_admin(client, clock)
    page = await second_step(client, "/api/v1/users")
    wrong = await post_code(client, page, "12345678901")
    assert wrong.status_code == 401
    assert "neither a 6-digit code nor a recovery code" in wrong.text
    spent = await post_code(client, page, code(secret, clock))  # the confirmation's code
    assert spent.status_code == 401 and "used already" in spent.text
    assert (await client.get("/api/v1/users")).status_code == 403


async def test_a_recovery_code_in_the_form(client: Client, clock: SteppedClock) -> None:
    _, codes = await enrolled_admin(client, clock)
    page = await second_step(client, "/api/v1/users")
    done = await post_code(client, page, codes[0])
    assert done.status_code == 303
    assert (await client.get("/api/v1/users")).status_code == 200


async def test_a_post_without_the_sessions_csrf_token_is_refused(
    client: Client, clock: SteppedClock
) -> None:
    secret, _ = await enrolled_admin(client, clock)
    page = await second_step(client, "/api/v1/users")
    forged = await post_code(client, page, code(secret, clock, 1), csrf="forged")
    assert forged.status_code == 403
    assert (await client.get("/api/v1/users")).status_code == 403


async def test_next_never_leaves_the_site(client: Client, clock: SteppedClock) -> None:
    secret, _ = await enrolled_admin(client, clock)
    page = await second_step(client, "/")
    for evil in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        done = await post_code(client, page, code(secret, clock, 1), next=evil)
        assert done.headers["location"] == "/" or done.status_code == 401
        clock.advance(30)
    shown = await client.get(FORM_PAGE, params={"next": "//evil.example"}, follow_redirects=False)
    assert shown.headers["location"] == "/"


async def test_a_stranger_is_sent_to_sign_in_first(client: Client) -> None:
    page = await client.get(FORM_PAGE, params={"next": "/x"}, follow_redirects=False)
    assert page.status_code == 303
    location = page.headers["location"]
    assert location.startswith("/signin?")
    assert query_of(location)["next"] == "/signin/mfa?next=%2Fx"


async def test_an_admin_without_a_factor_is_sent_to_set_one_up(client: Client) -> None:
    signed_in = await sign_in_form(client, *ADMIN, next_url="/api/v1/users")
    location = signed_in.headers["location"]
    assert location.startswith("/signin/mfa/setup?")
    page = await client.get(location, follow_redirects=False)
    assert page.status_code == 200
    assert 'id="start-totp"' in page.text and 'id="add-key"' in page.text
    assert '<script src="/static/mfa.js"></script>' in page.text
    script = await client.get("/static/mfa.js")
    assert script.status_code == 200 and "navigator.credentials.create" in script.text
