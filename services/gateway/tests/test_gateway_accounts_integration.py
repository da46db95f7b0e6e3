"""Accounts through the HTTP API: first admin, sign-in, cookies, users, sessions."""

from __future__ import annotations

import stat
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from gateway.accounts import Accounts
from gateway.settings import GatewaySettings
from gateway.store import VERSIONS_DIR, metadata
from jhaas_launcher import second_factor
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import alembic_config

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    bearer,
    create_user,
    fast_passwords,
    login,
    make_client,
    token_for,
)

pytestmark = pytest.mark.integration


def cookies_of(response_headers: list[str]) -> dict[str, SimpleCookie]:
    found: dict[str, SimpleCookie] = {}
    for header in response_headers:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name in jar:
            found[name] = jar
    return found


async def test_first_admin_from_env_signs_in_with_token_and_cookies(client: Client) -> None:
    response = await login(client, *ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 900
    assert body["user"]["username"] == ADMIN[0]
    assert body["user"]["roles"] == ["admin"]
    assert ADMIN[1] not in response.text
    assert "password_hash" not in response.text
    assert body["password_change_required"] is False  # the operator chose this password

    set_cookies = response.headers.get_list("set-cookie")
    cookies = cookies_of(set_cookies)
    session = cookies["__Host-jhaas_session"]["__Host-jhaas_session"]
    assert session.value
    assert session["httponly"] is True
    assert session["secure"] is True
    assert session["samesite"].lower() == "lax"
    assert session["path"] == "/"
    csrf = cookies["__Host-jhaas_csrf"]["__Host-jhaas_csrf"]
    assert csrf.value
    assert not csrf["httponly"]
    assert csrf["secure"] is True

    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["user_id"] == body["user"]["user_id"]


async def test_wrong_password_and_unknown_user_get_the_same_401(client: Client) -> None:
    wrong_password = await login(client, ADMIN[0], "not the password")
    unknown_user = await login(client, "nobody", "not the password")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "set-cookie" not in response.headers
    assert wrong_password.json()["message"] == unknown_user.json()["message"]
    assert wrong_password.json()["error"] == "unauthorized"


async def test_admin_manages_users_and_others_may_not(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    leader = await create_user(client, admin, *LEADER, "leader")
    assert leader["roles"] == ["leader"]
    assert leader["disabled"] is False

    taken = await client.post(
        "/api/v1/users",
        json={"username": LEADER[0], "password": "another password 1", "roles": []},
        headers=bearer(admin),
    )
    assert taken.status_code == 409
    assert taken.json()["fields"] == {"username": "is taken"}

    for bad, field in [
        ({"username": "Lea Upper", "password": "long enough pass"}, "username"),
        ({"username": "ab", "password": "long enough pass"}, "username"),
        ({"username": "sam", "password": "short"}, "password"),
        ({"username": "sam", "password": "long enough pass", "roles": ["king"]}, "roles[0]"),
    ]:
        response = await client.post("/api/v1/users", json=bad, headers=bearer(admin))
        assert response.status_code == 422, bad
        assert field in response.json()["fields"], response.json()

    listed = await client.get("/api/v1/users", headers=bearer(admin))
    assert listed.status_code == 200
    assert [u["username"] for u in listed.json()["items"]] == ["lea", "root"]

    leader_token = await token_for(client, *LEADER)
    refused = await client.post(
        "/api/v1/users",
        json={"username": "sam", "password": "long enough pass", "roles": ["admin"]},
        headers=bearer(leader_token),
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert (await client.get("/api/v1/users", headers=bearer(leader_token))).status_code == 403


async def test_role_change_applies_at_once_and_disabling_ends_sessions(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    leader = await create_user(client, admin, *LEADER, "leader")
    leader_token = await token_for(client, *LEADER)
    url = f"/api/v1/users/{leader['user_id']}"

    promoted = await client.patch(url, json={"roles": ["leader", "admin"]}, headers=bearer(admin))
    assert promoted.status_code == 200
    assert promoted.json()["roles"] == ["admin", "leader"]
    # At once: the new admin's session is asked to set up a second factor first.
    as_admin = await client.get("/api/v1/users", headers=bearer(leader_token))
    assert "set up a second factor first" in as_admin.json()["message"]
    await second_factor.set_up_app(client, bearer(leader_token), LEADER[0])
    assert (await client.get("/api/v1/users", headers=bearer(leader_token))).status_code == 200

    disabled = await client.patch(url, json={"disabled": True}, headers=bearer(admin))
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    assert (await client.get("/api/v1/auth/me", headers=bearer(leader_token))).status_code == 401
    again = await login(client, *LEADER)
    assert again.status_code == 401
    assert "disabled" in again.json()["message"]

    wrong_type = await client.patch(url, json={"disabled": "no"}, headers=bearer(admin))
    assert wrong_type.status_code == 422
    assert wrong_type.json()["fields"] == {"disabled": "Expected `bool`, got `str`"}
    unknown = await client.patch("/api/v1/users/nope", json={}, headers=bearer(admin))
    assert unknown.status_code == 404


async def test_the_last_admin_cannot_be_removed(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    me = (await client.get("/api/v1/auth/me", headers=bearer(admin))).json()
    url = f"/api/v1/users/{me['user_id']}"
    demoted = await client.patch(url, json={"roles": ["leader"]}, headers=bearer(admin))
    assert demoted.status_code == 409
    assert "roles" in demoted.json()["fields"]
    disabled = await client.patch(url, json={"disabled": True}, headers=bearer(admin))
    assert disabled.status_code == 409
    assert (await client.get("/api/v1/auth/me", headers=bearer(admin))).json()["roles"] == ["admin"]


async def test_generated_first_admin_password_goes_to_a_private_file(
    gateway_settings: GatewaySettings, capsys: pytest.CaptureFixture[str]
) -> None:

    settings = replace(gateway_settings, admin_username="admin", admin_password=None)
    async with make_client(settings) as client:
        password_file = settings.data_dir / "initial-admin-password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        password = password_file.read_text().strip()
        assert len(password) >= 12
        response = await login(client, "admin", password)
        assert response.status_code == 200
    logged = capsys.readouterr()
    assert str(password_file) in logged.out + logged.err
    assert password not in logged.out + logged.err

    # A second start finds the admin and leaves both account and file alone.
    async with make_client(settings) as client:
        assert password_file.read_text().strip() == password
        assert (await login(client, "admin", password)).status_code == 200


async def test_cookie_session_needs_the_csrf_header_for_unsafe_methods(client: Client) -> None:
    await token_for(client, *ADMIN)  # the admin's second factor, set up
    response = await login(client, *ADMIN)
    session = response.cookies["__Host-jhaas_session"]
    csrf = response.cookies["__Host-jhaas_csrf"]
    cookie = f"__Host-jhaas_session={session}; __Host-jhaas_csrf={csrf}"
    confirm = {"Cookie": cookie, "X-CSRF-Token": csrf}
    await second_factor.confirm_second_factor(client, confirm, ADMIN[0])

    me = await client.get("/api/v1/auth/me", headers={"Cookie": cookie})
    assert me.status_code == 200
    assert me.json()["username"] == ADMIN[0]

    new_user = {"username": "sam", "password": "long enough pass", "roles": ["participant"]}
    missing = await client.post("/api/v1/users", json=new_user, headers={"Cookie": cookie})
    assert missing.status_code == 403
    assert "X-CSRF-Token" in missing.json()["message"]
    wrong = await client.post(
        "/api/v1/users", json=new_user, headers={"Cookie": cookie, "X-CSRF-Token": "guess"}
    )
    assert wrong.status_code == 403
    listed = await client.get("/api/v1/users", headers={"Cookie": cookie})
    assert [u["username"] for u in listed.json()["items"]] == [ADMIN[0]]

    created = await client.post(
        "/api/v1/users", json=new_user, headers={"Cookie": cookie, "X-CSRF-Token": csrf}
    )
    assert created.status_code == 201


async def test_logout_ends_cookie_and_token_of_that_session(client: Client) -> None:
    response = await login(client, *ADMIN)
    token = response.json()["access_token"]
    session = response.cookies["__Host-jhaas_session"]
    csrf = response.cookies["__Host-jhaas_csrf"]
    cookie = f"__Host-jhaas_session={session}; __Host-jhaas_csrf={csrf}"

    out = await client.post("/api/v1/auth/logout", headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert out.status_code == 204
    cleared = cookies_of(out.headers.get_list("set-cookie"))
    assert cleared["__Host-jhaas_session"]["__Host-jhaas_session"]["max-age"] == "0"
    assert (await client.get("/api/v1/auth/me", headers={"Cookie": cookie})).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401
    # Another session of the same user is not affected.
    other = await token_for(client, *ADMIN)
    assert (await client.get("/api/v1/auth/me", headers=bearer(other))).status_code == 200


async def test_accounts_made_before_the_upgrade_keep_signing_in(
    gateway_settings: GatewaySettings,
) -> None:
    # A database at the first revision, with the admin in it, as a running install has.
    db = Database(gateway_settings.runtime.database_url)
    config = alembic_config(metadata, VERSIONS_DIR)

    def to_first_revision(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")

    def add_admin(connection: Connection, password_hash: str) -> None:
        connection.execute(
            sa.text(
                "INSERT INTO users (user_id, username, display_name, password_hash,"
                " disabled, created_at, updated_at) VALUES (:id, :name, '', :hash,"
                " false, :now, :now)"
            ),
            {
                "id": "7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a001",
                "name": ADMIN[0],
                "hash": password_hash,
                "now": datetime.now(UTC),
            },
        )
        connection.execute(
            sa.text("INSERT INTO user_roles (user_id, role) VALUES (:id, 'admin')"),
            {"id": "7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a001"},
        )

    try:
        await db.write(to_first_revision)
        accounts = Accounts(db, fast_passwords(), session_ttl=timedelta(hours=1))
        await db.write(add_admin, accounts.passwords.hash(ADMIN[1]))
    finally:
        await db.dispose()
    async with make_client(gateway_settings) as client:  # migrates to head at start
        response = await login(client, *ADMIN)
        assert response.status_code == 200, response.text
        assert response.json()["password_change_required"] is False
