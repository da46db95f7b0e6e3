"""The pages as a browser gets them: in the person's language, with the form's problems
tied to their fields, and nothing typed lost (but a password) when a form comes back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, bearer, create_user, token_for
from oauth_helpers import sign_in_form

pytestmark = pytest.mark.integration

ANN = ("ann", "ann password 12")
GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


def csrf_of(text: str) -> str:
    return text.split('name="csrf" value="')[1].split('"')[0]


async def test_a_stranger_gets_the_browser_language(client: Client) -> None:
    german = await client.get("/signin", headers=GERMAN)
    assert '<html lang="de">' in german.text
    assert (
        "<title>Anmelden - JHaaS</title>" in german.text and ">Benutzername</label>" in german.text
    )
    english = await client.get("/signin", headers=ENGLISH)
    assert '<html lang="en">' in english.text and ">Username</label>" in english.text
    neither = await client.get("/signin", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in neither.text


async def test_the_profile_language_wins_over_the_browser(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *ANN)
    client.cookies.clear()
    assert (await sign_in_form(client, *ANN)).status_code == 303
    # Ann chose no language (the default, ""): her German browser decides.
    page = await client.get("/join", headers=GERMAN)
    assert '<html lang="de">' in page.text and "Angemeldet als ann" in page.text
    token = await token_for(client, *ANN)
    changed = await client.patch(
        "/api/v1/me", json={"preferred_language": "en"}, headers=bearer(token)
    )
    assert changed.status_code == 200, changed.text
    client.cookies.clear()
    assert (await sign_in_form(client, *ANN)).status_code == 303
    # She chose English: a German browser gets English.
    page = await client.get("/join", headers=GERMAN)
    assert '<html lang="en">' in page.text and "Signed in as ann" in page.text
    changed = await client.patch(
        "/api/v1/me", json={"preferred_language": "de"}, headers=bearer(token)
    )
    assert changed.status_code == 200, changed.text
    client.cookies.clear()
    assert (await sign_in_form(client, *ANN)).status_code == 303
    page = await client.get("/join", headers=ENGLISH)
    assert '<html lang="de">' in page.text and "Angemeldet als ann" in page.text
    assert ">Beitrittscode</label>" in page.text


async def test_a_refused_sign_in_keeps_the_username_not_the_password(client: Client) -> None:
    form = await client.get("/signin", headers=ENGLISH)
    typed = {"csrf": csrf_of(form.text), "next": "/", "username": '"><b>root', "password": "x y"}
    refused = await client.post("/signin", data=typed, headers=ENGLISH)
    assert refused.status_code == 401, refused.text
    assert 'value="&#34;&gt;&lt;b&gt;root"' in refused.text  # kept, and escaped
    assert 'value="x y"' not in refused.text
    assert 'class="error-summary" role="alert"' in refused.text


async def test_a_missing_field_is_named_next_to_it_and_in_the_summary(client: Client) -> None:
    form = await client.get("/signin", headers=GERMAN)
    typed = {"csrf": csrf_of(form.text), "next": "/", "username": "ann", "password": ""}
    refused = await client.post("/signin", data=typed, headers=GERMAN)
    assert refused.status_code == 400, refused.text
    page = refused.text
    assert '<a href="#password">Geben Sie Ihr Passwort ein.</a>' in page
    assert 'aria-describedby="password-error" aria-invalid="true"' in page
    assert 'id="password-error"' in page and 'value="ann"' in page
    assert 'aria-describedby="username-error"' not in page
