"""The audit log, your sessions, the pending states and the security headers,
through the HTTP API on both databases."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.settings import GatewaySettings
from gateway.store import users
from gateway.tables import audit_log
from jhaas_runtime.db import Database

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    assert_error,
    bearer,
    create_user,
    login,
    make_client,
    token_for,
)

pytestmark = pytest.mark.integration

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Test/1.0"


async def audit(client: Client, admin: str, **filters: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=filters, headers=bearer(admin))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_sign_ins_and_account_changes_are_audited_for_admins(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    leader = await create_user(client, admin, *LEADER, "leader")
    refused = await login(client, LEADER[0], "not the password at all")
    assert refused.status_code == 401
    unknown = await login(client, "nobody-here", "not the password at all")
    assert unknown.status_code == 401
    promoted = await client.patch(
        f"/api/v1/users/{leader['user_id']}",
        json={"roles": ["leader", "governance"], "disabled": True},
        headers=bearer(admin),
    )
    assert promoted.status_code == 200, promoted.text

    entries = await audit(client, admin)
    kinds = [entry["kind"] for entry in entries]
    # Newest first; both changes of one request, in the same transaction.
    assert kinds[:2] == ["user.disabled", "user.roles_changed"] or kinds[:2] == [
        "user.roles_changed",
        "user.disabled",
    ]
    admin_id = entries[0]["actor_id"]
    roles_changed = next(e for e in entries if e["kind"] == "user.roles_changed")
    assert roles_changed["subject_id"] == leader["user_id"]
    assert roles_changed["details"] == {
        "before": ["leader"],
        "after": ["governance", "leader"],
    }
    created = next(e for e in entries if e["kind"] == "user.created")
    assert (created["actor_id"], created["subject_id"]) == (admin_id, leader["user_id"])

    failures = await audit(client, admin, kind="sign_in.failed")
    assert [(f["subject_id"], f["details"]["reason"]) for f in failures] == [
        (None, "unknown username"),
        (leader["user_id"], "wrong password"),
    ]
    assert all(f["outcome"] == "refused" for f in failures)
    assert "not the password" not in str(failures)  # never a secret in the log
    assert all(f["address"] for f in failures)

    # Filters: a prefix, a person (as actor or subject), and pages.
    sign_ins = await audit(client, admin, kind="sign_in.")
    assert {e["kind"] for e in sign_ins} == {"sign_in.failed", "sign_in.succeeded"}
    about_leader = await audit(client, admin, user_id=leader["user_id"])
    assert {e["kind"] for e in about_leader} == {
        "user.created",
        "sign_in.failed",
        "user.roles_changed",
        "user.disabled",
    }
    first = await client.get("/api/v1/audit?limit=2", headers=bearer(admin))
    page = first.json()
    assert len(page["items"]) == 2 and page["next_before"] == page["items"][-1]["entry_id"]
    rest = await audit(client, admin, before=page["next_before"], limit=500)
    assert [e["entry_id"] for e in page["items"] + rest] == [e["entry_id"] for e in entries]


async def test_only_admins_read_the_audit_log_and_bad_filters_are_named(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *LEADER, "leader", "governance")
    leader = await token_for(client, *LEADER)
    denied = await client.get("/api/v1/audit", headers=bearer(leader))
    assert assert_error(denied, 403, "forbidden")["message"] == "only an admin can do this"
    for query, name in (
        ("kind=DROP%20TABLE", "kind"),
        ("actor_id=someone", "actor_id"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("since=yesterday", "since"),
        ("outcome=maybe", "outcome"),
    ):
        bad = await client.get(f"/api/v1/audit?{query}", headers=bearer(admin))
        assert name in assert_error(bad, 422, "invalid")["fields"], (query, bad.text)


async def test_the_audit_log_cannot_be_changed_in_the_database(
    client: Client, gateway_settings: GatewaySettings
) -> None:
    await token_for(client, *ADMIN)  # one entry at least
    db = Database(gateway_settings.runtime.database_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await db.write(
                lambda conn: conn.execute(audit_log.update().values(kind="nothing.happened"))
            )
        kinds = await db.read(lambda conn: conn.scalars(sa.select(audit_log.c.kind)).all())
        assert sorted(kinds) == ["mfa.enrolled", "sign_in.succeeded"]
    finally:
        await db.dispose()


async def test_you_list_and_end_your_own_sessions_only(client: Client) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *LEADER, "leader")
    phone = await login(client, *LEADER)
    laptop_response = await client.post(
        "/api/v1/auth/login",
        json={"username": LEADER[0], "password": LEADER[1]},
        headers={"User-Agent": BROWSER},
    )
    client.cookies.clear()
    phone_token = phone.json()["access_token"]
    laptop_token = laptop_response.json()["access_token"]

    listed = await client.get("/api/v1/auth/sessions", headers=bearer(laptop_token))
    assert listed.status_code == 200, listed.text
    sessions = listed.json()["items"]
    assert len(sessions) == 2
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1 and current[0]["user_agent"] == BROWSER
    assert current[0]["method"] == "password"
    assert all(s["address"] for s in sessions)
    assert "token" not in str(sessions).replace("session", "")
    phone_session = next(s["session_id"] for s in sessions if not s["current"])

    # The admin cannot end the leader's session through their own session list.
    foreign = await client.delete(f"/api/v1/auth/sessions/{phone_session}", headers=bearer(admin))
    assert_error(foreign, 404, "not_found")
    assert (await client.get("/api/v1/auth/me", headers=bearer(phone_token))).status_code == 200

    ended = await client.delete(
        f"/api/v1/auth/sessions/{phone_session}", headers=bearer(laptop_token)
    )
    assert ended.status_code == 204
    gone = await client.get("/api/v1/auth/me", headers=bearer(phone_token))
    assert gone.status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(laptop_token))).status_code == 200

    other = await token_for(client, *LEADER)
    everywhere = await client.post("/api/v1/auth/logout-everywhere", headers=bearer(other))
    assert everywhere.status_code == 204
    for token in (other, laptop_token):
        assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401
    revoked = await audit(client, admin, kind="session.revoked")
    assert revoked[0]["details"] == {"session_id": phone_session}
    signed_out = await audit(client, admin, kind="sign_out")
    assert signed_out[0]["details"] == {"everywhere": True}


async def test_a_session_waiting_for_its_second_factor_reaches_only_that(
    client: Client, gateway_settings: GatewaySettings
) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *LEADER, "leader")
    leader = await token_for(client, *LEADER)
    # No route enrolls a factor yet in this test: mark the account as enrolled the
    # way the MFA code does, then sign in again.
    db = Database(gateway_settings.runtime.database_url)
    try:
        await db.write(
            lambda conn: conn.execute(
                users.update().where(users.c.username == LEADER[0]).values(mfa_enrolled=True)
            )
        )
    finally:
        await db.dispose()
    assert (await client.get("/api/v1/auth/sessions", headers=bearer(leader))).status_code == 200

    pending = await login(client, *LEADER)
    assert pending.json()["mfa_required"] is True
    token = pending.json()["access_token"]
    refused = await client.get("/api/v1/auth/sessions", headers=bearer(token))
    assert "second factor" in assert_error(refused, 403, "forbidden")["message"]
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    out = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert out.status_code == 204


async def test_every_answer_carries_the_security_headers(client: Client) -> None:
    api = await client.get("/api/v1/auth/me")
    assert api.status_code == 401
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in api.headers["content-security-policy"]
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["referrer-policy"] == "no-referrer"
    assert api.headers["x-frame-options"] == "DENY"
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["strict-transport-security"] == "max-age=31536000"

    page = await client.get("/signin?next=/join")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert '<link rel="stylesheet" href="/static/jhaas.css">' in page.text
    style = await client.get("/static/jhaas.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert "no-store" not in style.headers.get("cache-control", "")

    docs = await client.get("/schema/swagger")
    assert docs.status_code == 200
    # The documentation's code comes from this site (vendored), none inline.
    policy = docs.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "http" not in policy
    assert '<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js" defer>' in docs.text
    assert "<script>" not in docs.text and "cdn" not in docs.text
    bundle = await client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text


async def test_no_hsts_over_plain_http(gateway_settings: GatewaySettings) -> None:
    settings = replace(gateway_settings, public_url="http://127.0.0.1:8000", cookie_secure=False)
    async with make_client(settings) as client:
        answer = await client.get("/healthz")
        assert "strict-transport-security" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
