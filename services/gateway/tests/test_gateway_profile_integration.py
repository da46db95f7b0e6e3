"""Your profile on SQLite and PostgreSQL: name, language, and an e-mail address that
counts only once the link mailed to it is used by the same account."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, assert_error, bearer, create_user, make_client, token_for
from mail_helpers import MailServer
from self_helpers import API, audit_kinds, link_token, mails_to, me, verified_user, with_mail

pytestmark = pytest.mark.integration

ANN = ("ann", "ann password 12")


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
async def mail_client(
    gateway_settings: GatewaySettings, mail_server: MailServer
) -> AsyncIterator[Client]:
    async with make_client(with_mail(gateway_settings, mail_server)) as client:
        yield client


async def test_name_and_language_change_at_once(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *ANN)
    token = await token_for(client, *ANN)
    shown = (await me(client, token)).json()
    assert (shown["email"], shown["email_verified"], shown["preferred_language"]) == (
        None,
        False,
        "",  # none chosen: the pages follow the browser (migration 0005)
    )
    assert shown["has_password"] is True
    changed = await me(
        client, token, "PATCH", json={"display_name": "Ann Smith", "preferred_language": "de"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["display_name"], changed.json()["preferred_language"]) == (
        "Ann Smith",
        "de",
    )
    assert (await client.get(f"{API}/auth/me", headers=bearer(token))).json()["display_name"] == (
        "Ann Smith"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"preferred_language": "xx"}, "preferred_language"),
        ({"email": "not an address"}, "email"),
        ({"display_name": "two\nlines"}, "display_name"),
        ({"username": "eve"}, "username"),
    ],
)
async def test_a_bad_change_names_the_field(
    client: Client, body: dict[str, str], field: str
) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *ANN)
    token = await token_for(client, *ANN)
    refused = await me(client, token, "PATCH", json=body)
    assert field in str(assert_error(refused, 422, "invalid"))


async def test_a_new_address_is_pending_until_its_link_is_used(
    mail_client: Client, mail_server: MailServer
) -> None:
    user, token = await verified_user(mail_client, mail_server, *ANN, "ann@uni.example")
    changed = await me(mail_client, token, "PATCH", json={"email": "ann@new.example"})
    assert changed.status_code == 200, changed.text
    profile = changed.json()
    # The verified address stays until the new one is confirmed.
    assert (profile["email"], profile["pending_email"]) == ("ann@uni.example", "ann@new.example")
    [mail] = await mails_to(mail_server, "ann@new.example")
    assert mail.message["Subject"] == "Confirm your e-mail address for JHaaS"
    assert "/verify-email#token=" in mail.text

    # Another account cannot use the link, and does not use it up.
    admin = await token_for(mail_client, *ADMIN)
    await create_user(mail_client, admin, "eve", "eve password 123")
    eve = await token_for(mail_client, "eve", "eve password 123")
    stolen = await mail_client.post(
        f"{API}/me/email/verify", json={"token": link_token(mail)}, headers=bearer(eve)
    )
    assert "another account" in assert_error(stolen, 403, "forbidden")["message"]
    assert (await me(mail_client, eve)).json()["email"] is None

    used = await mail_client.post(
        f"{API}/me/email/verify", json={"token": link_token(mail)}, headers=bearer(token)
    )
    assert used.status_code == 200, used.text
    assert (used.json()["email"], used.json()["pending_email"]) == ("ann@new.example", None)
    again = await mail_client.post(
        f"{API}/me/email/verify", json={"token": link_token(mail)}, headers=bearer(token)
    )
    assert_error(again, 409, "conflict")
    assert (await audit_kinds(mail_client, user["user_id"])).count("email.verified") == 2


async def test_an_earlier_pending_address_is_void_once_a_newer_is_asked_for(
    mail_client: Client, mail_server: MailServer
) -> None:
    admin = await token_for(mail_client, *ADMIN)
    await create_user(mail_client, admin, *ANN)
    token = await token_for(mail_client, *ANN)
    await me(mail_client, token, "PATCH", json={"email": "first@uni.example"})
    await me(mail_client, token, "PATCH", json={"email": "second@uni.example"})
    [first] = await mails_to(mail_server, "first@uni.example")
    await mails_to(mail_server, "second@uni.example")
    stale = await mail_client.post(
        f"{API}/me/email/verify", json={"token": link_token(first)}, headers=bearer(token)
    )
    assert "not valid" in assert_error(stale, 422, "invalid")["message"]
    assert (await me(mail_client, token)).json()["pending_email"] == "second@uni.example"


async def test_without_a_mail_server_an_address_cannot_be_given(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *ANN)
    token = await token_for(client, *ANN)
    refused = await me(client, token, "PATCH", json={"email": "ann@uni.example"})
    assert "JHAAS_SMTP_URL" in assert_error(refused, 503, "unavailable")["message"]
    assert (await me(client, token)).json()["pending_email"] is None


async def test_the_verify_page_uses_its_own_script(client: Client) -> None:
    page = await client.get("/verify-email")
    assert '<script src="/static/verify-email.js"></script>' in page.text
    script = await client.get("/static/verify-email.js")
    assert "/api/v1/me/email/verify" in script.text


async def test_asking_for_many_addresses_must_wait(mail_client: Client) -> None:
    admin = await token_for(mail_client, *ADMIN)
    await create_user(mail_client, admin, *ANN)
    token = await token_for(mail_client, *ANN)
    answers = [
        await me(mail_client, token, "PATCH", json={"email": f"inbox{n}@victim.example"})
        for n in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert "try again" in assert_error(answers[3], 429, "too_many_requests")["message"]
    # A name change alone is no mail and never waits.
    renamed = await me(mail_client, token, "PATCH", json={"display_name": "Ann"})
    assert renamed.status_code == 200
