"""Cookie tossing: a hub on a sibling subdomain cannot plant the gateway's cookies.

Over https every gateway cookie is `__Host-` (Secure, Path=/, no Domain), which
a browser accepts only from the gateway's own host; a cookie planted under the
plain name by a notebook's script on hub-x.example.org is ignored.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, login, make_client

pytestmark = pytest.mark.integration

NAMES = {"jhaas_session", "jhaas_csrf", "jhaas_device", "jhaas_signin"}


def set_cookies(response: httpx.Response) -> dict[str, tuple[str, str]]:
    """name -> (value, the raw Set-Cookie header), of every cookie the response sets."""
    found: dict[str, tuple[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            found[name] = (morsel.value, header)
    return found


def form_field(page: str) -> str:
    return page.split('name="csrf" value="')[1].split('"')[0]


async def test_over_https_every_cookie_is_a_host_cookie(
    gateway_settings: GatewaySettings,
) -> None:
    settings = replace(gateway_settings, cookie_secure=True)
    async with make_client(settings) as client:
        form = await client.get("/signin", params={"next": "/"})
        signed_in = await client.post(
            "/signin",
            data={
                "csrf": form_field(form.text),
                "next": "/",
                "username": ADMIN[0],
                "password": ADMIN[1],
            },
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
        api = await login(client, *ADMIN)
    cookies = set_cookies(form) | set_cookies(signed_in) | set_cookies(api)
    assert set(cookies) == {"__Host-" + name for name in NAMES}
    for _, header in cookies.values():
        attributes = [part.strip().lower() for part in header.split(";")[1:]]
        assert "path=/" in attributes, header
        assert "secure" in attributes, header
        assert not any(a.startswith("domain") for a in attributes), header


async def test_cookies_planted_under_the_plain_names_are_ignored(
    gateway_settings: GatewaySettings,
) -> None:
    settings = replace(gateway_settings, cookie_secure=True)
    async with make_client(settings) as client:
        session = set_cookies(await login(client, *ADMIN))["__Host-jhaas_session"][0]
        me = await client.get("/api/v1/auth/me", headers={"Cookie": f"jhaas_session={session}"})
        assert me.status_code == 401, me.text

        # Login CSRF: the attacker fetches a form of their own, plants its cookie
        # in the victim's browser and makes the victim post the matching field.
        attacker = await client.get("/signin")
        planted = set_cookies(attacker)["__Host-jhaas_signin"][0]
        client.cookies.clear()
        fields = {
            "csrf": form_field(attacker.text),
            "next": "/",
            "username": ADMIN[0],
            "password": ADMIN[1],
        }
        tossed = await client.post(
            "/signin",
            data=fields,
            headers={"Cookie": f"jhaas_signin={planted}"},
            follow_redirects=False,
        )
        assert tossed.status_code == 403, tossed.text
        client.cookies.clear()
        own = await client.post(
            "/signin",
            data=fields,
            headers={"Cookie": f"__Host-jhaas_signin={planted}"},
            follow_redirects=False,
        )
        assert own.status_code == 303, own.text


async def test_on_plain_http_the_names_and_paths_stay(gateway_settings: GatewaySettings) -> None:
    settings = replace(gateway_settings, cookie_secure=False)
    async with make_client(settings) as client:
        form = await client.get("/signin")
        api = await login(client, *ADMIN)
    cookies = set_cookies(form) | set_cookies(api)
    assert set(cookies) == NAMES
    assert "Path=/signin" in cookies["jhaas_signin"][1]
    assert "Path=/api/v1/auth" in cookies["jhaas_device"][1]
    assert "secure" not in cookies["jhaas_session"][1].lower()
