"""The password page (/signin/password) in a browser's shoes: a generated password
leads there after the sign-in form, every problem is shown next to its field and
changes nothing, and a good new password replaces the old one and goes on (to set
up a second factor first, for an admin)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, bearer, login, make_client, token_for
from oauth_helpers import sign_in_form

from gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

PAGE = "/signin/password"
NEW = "a tall giraffe reads 42 books"


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


def field_error(page: httpx.Response, field: str) -> str:
    """The text shown under a field (its id-error paragraph), tags stripped."""
    after = page.text.split(f'id="{field}-error">', 1)[1].split("</p>", 1)[0]
    return after.split("</span>", 1)[-1].strip()


async def test_a_generated_password_is_replaced_on_its_page_before_going_on(
    gateway_settings: GatewaySettings,
) -> None:
    settings = replace(gateway_settings, admin_username="admin", admin_password=None)
    password_file = settings.data_dir / "initial-admin-password"
    async with make_client(settings) as client:
        generated = password_file.read_text().strip()
        signed_in = await sign_in_form(client, "admin", generated, next_url="/")
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == f"{PAGE}?next=%2F"

        page = await client.get(PAGE, params={"next": "/"})
        assert page.status_code == 200, page.text
        assert "generated for you" in page.text
        assert page.headers["cache-control"] == "no-store"
        csrf = csrf_of(page)

        async def post(**fields: str) -> httpx.Response:
            form = {"csrf": csrf, "next": "/", "current_password": generated}
            sent: httpx.Response = await client.post(
                PAGE, data={**form, **fields}, follow_redirects=False
            )
            return sent

        differ = await post(new_password=NEW, again=NEW + "!")
        assert differ.status_code == 400, differ.text
        assert field_error(differ, "again") == "The two new passwords are not the same."
        assert NEW not in differ.text and generated not in differ.text  # never sent back

        short = await post(new_password="short", again="short")
        assert short.status_code == 400
        assert "at least 12 characters" in field_error(short, "new_password")

        common = await post(new_password="password1234", again="password1234")
        assert common.status_code == 422, common.text
        assert "common password" in field_error(common, "new_password")

        wrong = await post(current_password="not the generated one", new_password=NEW, again=NEW)
        assert wrong.status_code == 422, wrong.text
        assert field_error(wrong, "current_password") == "That is not your current password."

        forged = await post(csrf="0" * 64, new_password=NEW, again=NEW)
        assert forged.status_code == 403, forged.text
        assert "form expired" in forged.text
        assert password_file.exists()  # nothing changed by any of these

        changed = await post(new_password=NEW, again=NEW)
        assert changed.status_code == 303, changed.text
        # An admin sets up a second factor before anything else.
        assert changed.headers["location"] == f"/signin/mfa/setup?next={quote('/', safe='')}"
        assert not password_file.exists()

        assert (await login(client, "admin", generated)).status_code == 401
        again = await login(client, "admin", NEW)
        assert again.status_code == 200, again.text
        assert again.json()["password_change_required"] is False


async def test_a_stranger_signs_in_first_and_a_foreign_form_is_refused(client: Client) -> None:
    stranger = await client.get(PAGE, params={"next": "/join"}, follow_redirects=False)
    assert stranger.status_code == 303
    assert stranger.headers["location"] == "/signin?next=" + quote(f"{PAGE}?next=%2Fjoin", safe="")
    json = await client.post(PAGE, json={"new_password": NEW}, follow_redirects=False)
    assert json.status_code == 415, json.text
    assert "application/x-www-form-urlencoded" in json.text


async def test_a_page_refused_for_a_generated_password_links_to_the_password_page(
    client: Client,
) -> None:
    admin = await token_for(client, *ADMIN)
    made = await client.post(
        "/api/v1/users",
        json={"username": "pat", "password": "pat's first password", "roles": ["participant"]}
        | {"password_change_required": True},
        headers=bearer(admin),
    )
    assert made.status_code == 201, made.text
    signed_in = await sign_in_form(
        client, "pat", "pat's first password", next_url="/join/ABCDEFGHJK"
    )
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == f"{PAGE}?next=%2Fjoin%2FABCDEFGHJK"

    # Going elsewhere first: refused as every route refuses such a person, with the way on.
    refused = await client.get("/join/ABCDEFGHJK", follow_redirects=False)
    assert refused.status_code == 403, refused.text
    assert "Change your password first" in refused.text
    assert f'href="{PAGE}?next=%2Fjoin%2FABCDEFGHJK">Change your password</a>' in refused.text
