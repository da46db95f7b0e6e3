"""Changing a password: every user can, with the rules of account creation; the
first admin with a generated password must, before anything else."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings
from jhaas_launcher import second_factor

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    assert_error,
    bearer,
    create_user,
    hub_spec,
    login,
    make_client,
    token_for,
)

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a brand new passphrase"


async def change(
    client: Client, token: str, current: str, new: str, **headers: str
) -> httpx.Response:
    body = {"current_password": current, "new_password": new}
    return await client.post("/api/v1/auth/password", json=body, headers=bearer(token, **headers))


async def test_a_user_changes_the_password_and_other_sessions_end(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *LEADER, "leader")
    this_session = await token_for(client, *LEADER)
    other_session = await token_for(client, *LEADER)

    assert (await change(client, this_session, LEADER[1], NEW_PASSWORD)).status_code == 204
    me = await client.get("/api/v1/auth/me", headers=bearer(this_session))
    assert me.status_code == 200
    assert_error(
        await client.get("/api/v1/auth/me", headers=bearer(other_session)), 401, "unauthorized"
    )
    assert (await login(client, *LEADER)).status_code == 401
    assert (await login(client, LEADER[0], NEW_PASSWORD)).status_code == 200
    # The admin's sessions are someone else's: untouched.
    assert (await client.get("/api/v1/users", headers=bearer(admin))).status_code == 200


@pytest.mark.parametrize(
    ("current", "new", "field", "says"),
    [
        (LEADER[1], "short", "new_password", "length >= 12"),
        (LEADER[1], "password1234", "new_password", "common"),
        (LEADER[1], "aaaabbbbaaaabbbb", "new_password", "different characters"),
        (LEADER[1], LEADER[1], "new_password", "differ"),
        ("not my password 1", NEW_PASSWORD, "current_password", "not your current password"),
    ],
)
async def test_a_bad_change_is_422_naming_the_field(
    client: Client, current: str, new: str, field: str, says: str
) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *LEADER, "leader")
    token = await token_for(client, *LEADER)
    fields = assert_error(await change(client, token, current, new), 422, "invalid")["fields"]
    assert list(fields) == [field]
    assert says in fields[field]
    assert (await login(client, *LEADER)).status_code == 200  # nothing changed


async def test_wrong_current_passwords_count_as_failed_sign_ins(
    gateway_settings: GatewaySettings,
) -> None:
    async with make_client(replace(gateway_settings, login_free_failures=2)) as client:
        token = await token_for(client, *ADMIN)
        for _ in range(3):
            response = await change(client, token, "a wrong password", NEW_PASSWORD)
            assert_error(response, 422, "invalid")
        throttled = await change(client, token, ADMIN[1], NEW_PASSWORD)
        assert_error(throttled, 429, "too_many_requests")
        assert int(throttled.headers["Retry-After"]) >= 1


async def test_a_cookie_session_changes_the_password_only_with_the_csrf_header(
    client: Client,
) -> None:
    signed_in = await login(client, *ADMIN)
    session, csrf = (
        signed_in.cookies["__Host-jhaas_session"],
        signed_in.cookies["__Host-jhaas_csrf"],
    )
    cookie = {"Cookie": f"__Host-jhaas_session={session}; __Host-jhaas_csrf={csrf}"}
    body = {"current_password": ADMIN[1], "new_password": NEW_PASSWORD}
    refused = await client.post("/api/v1/auth/password", json=body, headers=cookie)
    assert_error(refused, 403, "forbidden")
    accepted = await client.post(
        "/api/v1/auth/password", json=body, headers={**cookie, "X-CSRF-Token": csrf}
    )
    assert accepted.status_code == 204, accepted.text


async def test_common_passwords_and_the_username_are_refused_for_new_accounts(
    client: Client,
) -> None:
    admin = await token_for(client, *ADMIN)
    for password in ("qwerty123456", "samuel.smith", "111111111111"):
        response = await client.post(
            "/api/v1/users",
            json={"username": "samuel.smith", "password": password},
            headers=bearer(admin),
        )
        assert "password" in assert_error(response, 422, "invalid")["fields"]


async def test_an_admin_may_require_a_new_user_to_choose_a_password(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    created = await client.post(
        "/api/v1/users",
        json={
            "username": LEADER[0],
            "password": LEADER[1],
            "roles": ["leader"],
            "password_change_required": True,
        },
        headers=bearer(admin),
    )
    assert created.json()["password_change_required"] is True
    token = await token_for(client, *LEADER)
    refused = await client.get("/api/v1/requests", headers=bearer(token))
    assert "/api/v1/auth/password" in assert_error(refused, 403, "forbidden")["message"]


async def test_the_generated_first_admin_password_must_be_changed_first(
    gateway_settings: GatewaySettings, request_svc: object
) -> None:
    settings = replace(gateway_settings, admin_username="admin", admin_password=None)
    password_file = settings.data_dir / "initial-admin-password"
    async with make_client(settings) as client:
        generated = password_file.read_text().strip()
        signed_in = await login(client, "admin", generated)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["password_change_required"] is True
        token = signed_in.json()["access_token"]
        me = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert me.json()["password_change_required"] is True

        for method, path, body in [
            ("GET", "/api/v1/users", None),
            ("POST", "/api/v1/users", {"username": "sam", "password": "long enough pass"}),
            ("GET", "/api/v1/requests", None),
            ("POST", "/api/v1/requests", hub_spec()),
            ("GET", "/api/v1/reviews", None),
        ]:
            response = await client.request(method, path, json=body, headers=bearer(token))
            message = assert_error(response, 403, "forbidden")["message"]
            assert "POST /api/v1/auth/password" in message, path
        assert password_file.exists()

        assert (await change(client, token, generated, NEW_PASSWORD)).status_code == 204
        assert not password_file.exists()
        assert (await client.get("/api/v1/auth/me", headers=bearer(token))).json()[
            "password_change_required"
        ] is False
        # Then the admin's second factor, before anything else.
        listed = await client.get("/api/v1/requests", headers=bearer(token))
        assert "set up a second factor first" in assert_error(listed, 403, "forbidden")["message"]
        await second_factor.set_up_app(client, bearer(token), "admin")
        listed = await client.get("/api/v1/requests", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert (await login(client, "admin", generated)).status_code == 401
        assert (await login(client, "admin", NEW_PASSWORD)).json()[
            "password_change_required"
        ] is False
