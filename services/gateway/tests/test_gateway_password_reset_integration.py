"""A forgotten password reset by a mailed link, against a real SMTP server, on SQLite and
PostgreSQL: the link works once, for 30 minutes, for a reset only; asking tells
nobody which accounts exist."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    Client,
    SteppedClock,
    assert_error,
    bearer,
    create_user,
    login,
    make_client,
    token_for,
)
from mail_helpers import MailServer
from self_helpers import API, audit_kinds, link_token, mails_to, verified_user, with_mail

pytestmark = pytest.mark.integration

ANN = ("ann", "ann password 12")
ANN_MAIL = "ann@uni.example"
NEW = "a new passphrase for ann"
RESET = f"{API}/auth/password-reset"


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def mail_client(
    gateway_settings: GatewaySettings, mail_server: MailServer, clock: SteppedClock
) -> AsyncIterator[Client]:
    async with make_client(with_mail(gateway_settings, mail_server), clock=clock) as client:
        yield client


async def ask(client: Client, **body: str) -> tuple[int, dict[str, object]]:
    response = await client.post(RESET, json=body)
    return response.status_code, response.json()


async def reset_link(client: Client, server: MailServer, count: int = 1) -> str:
    assert (await ask(client, username=ANN[0]))[0] == 202
    return link_token((await mails_to(server, ANN_MAIL, count + 1))[-1])  # +1: the verify mail


async def confirm(client: Client, token: str, password: str = NEW) -> int:
    response = await client.post(
        f"{RESET}/confirm", json={"token": token, "new_password": password}
    )
    return response.status_code


async def test_a_reset_link_sets_the_password_and_ends_every_session(
    mail_client: Client, mail_server: MailServer
) -> None:
    user, session = await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    token = await reset_link(mail_client, mail_server)
    mail = (await mails_to(mail_server, ANN_MAIL, 2))[-1]
    assert mail.message["Subject"] == "Reset your JHaaS password"
    assert "https://testserver.local/reset-password#token=" in mail.text

    assert await confirm(mail_client, token) == 204
    assert_error(
        await mail_client.get(f"{API}/auth/me", headers=bearer(session)), 401, "unauthorized"
    )
    assert (await login(mail_client, *ANN)).status_code == 401
    assert (await login(mail_client, ANN[0], NEW)).status_code == 200
    kinds = await audit_kinds(mail_client, user["user_id"])
    assert kinds.index("password.reset_requested") < kinds.index("password.reset")


async def test_the_link_works_once(mail_client: Client, mail_server: MailServer) -> None:
    await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    token = await reset_link(mail_client, mail_server)
    assert await confirm(mail_client, token) == 204
    again = await mail_client.post(
        f"{RESET}/confirm", json={"token": token, "new_password": "yet another passphrase"}
    )
    assert "used already" in assert_error(again, 409, "conflict")["message"]
    assert (await login(mail_client, ANN[0], NEW)).status_code == 200


async def test_two_uses_at_once_set_one_password(
    mail_client: Client, mail_server: MailServer
) -> None:
    await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    token = await reset_link(mail_client, mail_server)
    passwords = ["first new passphrase", "second new passphrase"]
    statuses = await asyncio.gather(*(confirm(mail_client, token, p) for p in passwords))
    assert sorted(statuses) == [204, 409]
    winner = passwords[statuses.index(204)]
    assert (await login(mail_client, ANN[0], winner)).status_code == 200
    loser = passwords[1 - statuses.index(204)]
    assert (await login(mail_client, ANN[0], loser)).status_code == 401


async def test_an_expired_link_is_refused(
    mail_client: Client, mail_server: MailServer, clock: SteppedClock
) -> None:
    await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    token = await reset_link(mail_client, mail_server)
    clock.advance(31 * 60)
    refused = await mail_client.post(f"{RESET}/confirm", json={"token": token, "new_password": NEW})
    assert "expired" in assert_error(refused, 409, "conflict")["message"]
    assert (await login(mail_client, *ANN)).status_code == 200


async def test_a_link_for_another_purpose_is_refused(
    mail_client: Client, mail_server: MailServer
) -> None:
    _, session = await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    changed = await mail_client.patch(
        f"{API}/me", json={"email": "ann@new.example"}, headers=bearer(session)
    )
    assert changed.status_code == 200, changed.text
    verify_token = link_token((await mails_to(mail_server, "ann@new.example"))[0])
    refused = await mail_client.post(
        f"{RESET}/confirm", json={"token": verify_token, "new_password": NEW}
    )
    assert "not for a password reset" in assert_error(refused, 422, "invalid")["message"]
    reset_token = await reset_link(mail_client, mail_server)
    wrong_way = await mail_client.post(
        f"{API}/me/email/verify", json={"token": reset_token}, headers=bearer(session)
    )
    assert "not for confirming" in assert_error(wrong_way, 422, "invalid")["message"]
    # Neither link was used up by the wrong door.
    assert await confirm(mail_client, reset_token) == 204


async def test_a_weak_password_is_refused_and_the_link_still_works(
    mail_client: Client, mail_server: MailServer
) -> None:
    await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    token = await reset_link(mail_client, mail_server)
    weak = await mail_client.post(
        f"{RESET}/confirm", json={"token": token, "new_password": "Sunshine2024!"}
    )
    assert "new_password" in assert_error(weak, 422, "invalid")["fields"]
    forged = await mail_client.post(
        f"{RESET}/confirm", json={"token": "x" * 43, "new_password": NEW}
    )
    assert "not valid" in assert_error(forged, 422, "invalid")["message"]
    assert await confirm(mail_client, token) == 204


async def test_the_answer_tells_nobody_which_accounts_exist(
    mail_client: Client, mail_server: MailServer
) -> None:
    await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    admin = await token_for(mail_client, *ADMIN)
    await create_user(mail_client, admin, "bob", "bob password 12")  # no e-mail address
    answers = [
        await ask(mail_client, username="nobody-here"),
        await ask(mail_client, username="bob"),
        await ask(mail_client, email="nobody@uni.example"),
        await ask(mail_client, email="ANN@uni.example"),  # the address, in any case
    ]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0][0] == 202
    # Ann's reset mail arrives; nothing went anywhere else.
    await mails_to(mail_server, ANN_MAIL, 2)
    assert {tuple(m.recipients) for m in mail_server.inbox} == {(ANN_MAIL,)}


async def test_a_disabled_account_gets_no_link(
    mail_client: Client, mail_server: MailServer
) -> None:
    user, _ = await verified_user(mail_client, mail_server, *ANN, ANN_MAIL)
    admin = await token_for(mail_client, *ADMIN)
    disabled = await mail_client.patch(
        f"{API}/users/{user['user_id']}", json={"disabled": True}, headers=bearer(admin)
    )
    assert disabled.status_code == 200, disabled.text
    assert (await ask(mail_client, username=ANN[0]))[0] == 202
    kinds = await audit_kinds(mail_client, user["user_id"])
    assert "password.reset_requested" not in kinds
    assert len([m for m in mail_server.inbox if m.recipients == [ANN_MAIL]]) == 1  # the verify


async def test_asking_often_must_wait(mail_client: Client, mail_server: MailServer) -> None:
    statuses = [(await mail_client.post(RESET, json={"username": "ann"})) for _ in range(4)]
    assert [r.status_code for r in statuses[:3]] == [202, 202, 202]
    refused = assert_error(statuses[3], 429, "too_many_requests")
    assert "password resets" in refused["message"]
    assert int(statuses[3].headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "body", [{}, {"username": "ann", "email": "ann@uni.example"}, {"email": "not-an-address"}]
)
async def test_a_bad_request_names_the_problem(mail_client: Client, body: dict[str, str]) -> None:
    response = await mail_client.post(RESET, json=body)
    assert assert_error(response, 422, "invalid")["fields"]


async def test_without_a_mail_server_the_reset_is_off(client: Client) -> None:
    refused = await client.post(RESET, json={"username": ADMIN[0]})
    assert "JHAAS_SMTP_URL" in assert_error(refused, 503, "unavailable")["message"]


async def test_the_reset_page_reads_the_token_with_its_own_script(client: Client) -> None:
    page = await client.get("/reset-password")
    assert page.status_code == 200
    assert '<script src="/static/reset-password.js"></script>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/static/reset-password.js")
    assert script.status_code == 200
    assert "/api/v1/auth/password-reset/confirm" in script.text
