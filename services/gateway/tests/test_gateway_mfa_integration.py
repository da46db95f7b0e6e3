"""Second factors over the API, on both databases: an authenticator app (TOTP) and
recovery codes; who must have one, what they reach before; step-up; an admin's reset."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    SteppedClock,
    assert_error,
    bearer,
    create_user,
    make_client,
)
from mfa_helpers import (
    MFA,
    audit_entries,
    code,
    confirm,
    enroll,
    sign_in,
    start_totp,
    verify,
)

pytestmark = pytest.mark.integration

GOVERNOR = ("gina", "governance password 1")
STEP_UP = "confirm your second factor first"
ENROLL_FIRST = "set up a second factor first"
CONFIRM_FIRST = "finish signing in first"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def client(gateway_settings: GatewaySettings, clock: SteppedClock) -> AsyncIterator[Client]:
    async with make_client(gateway_settings, clock=clock) as test_client:
        yield test_client


async def admin_with_app(client: Client, clock: SteppedClock) -> tuple[str, str, list[str]]:
    token, owed = await sign_in(client, *ADMIN)
    assert not owed
    secret, codes = await enroll(client, token, clock)
    return token, secret, codes


async def test_an_admin_without_a_second_factor_reaches_only_its_setup(
    client: Client, clock: SteppedClock
) -> None:
    token, owed = await sign_in(client, *ADMIN)
    assert not owed
    body = assert_error(await client.get("/api/v1/users", headers=bearer(token)), 403, "forbidden")
    assert ENROLL_FIRST in body["message"]
    status = await client.get(MFA, headers=bearer(token))
    assert status.status_code == 200
    assert status.json() | {"security_keys": []} == {
        "required": True,
        "enrolled": False,
        "totp": False,
        "security_keys": [],
        "recovery_codes_left": 0,
        "webauthn_available": True,
    }
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200

    secret = await start_totp(client, token)
    # Not confirmed yet: still nothing else.
    assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 403
    wrong = await confirm(client, token, "000000" if code(secret, clock) != "000000" else "111111")
    assert assert_error(wrong, 422, "invalid")["fields"] == {
        "code": "is not the code your authenticator app shows now"
    }
    confirmed = await confirm(client, token, code(secret, clock))
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(set(codes)) == 10
    assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 200
    status = (await client.get(MFA, headers=bearer(token))).json()
    assert (status["enrolled"], status["totp"], status["recovery_codes_left"]) == (True, True, 10)


async def test_the_next_sign_in_owes_a_code_and_reaches_only_the_check(
    client: Client, clock: SteppedClock
) -> None:
    _, secret, _ = await admin_with_app(client, clock)
    token, owed = await sign_in(client, *ADMIN)
    assert owed
    for method, path in [
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/auth/sessions"),
        ("POST", f"{MFA}/totp"),  # whoever has only the password adds no factor of theirs
        ("POST", f"{MFA}/webauthn/register/options"),
        ("POST", f"{MFA}/recovery-codes"),
        ("DELETE", f"{MFA}/totp"),
    ]:
        response = await client.request(method, path, headers=bearer(token))
        assert CONFIRM_FIRST in assert_error(response, 403, "forbidden")["message"], path
    assert (await client.get(MFA, headers=bearer(token))).status_code == 200
    verified = await verify(client, token, code(secret, clock, steps_ahead=1))
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"method": "totp"}
    assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 200


async def test_a_used_code_is_refused_even_inside_its_window(
    client: Client, clock: SteppedClock
) -> None:
    admin, secret, _ = await admin_with_app(client, clock)
    first, _ = await sign_in(client, *ADMIN)
    second, _ = await sign_in(client, *ADMIN)
    now = code(secret, clock, steps_ahead=1)
    assert (await verify(client, first, now)).status_code == 200
    replayed = assert_error(await verify(client, second, now), 422, "invalid")
    assert replayed["fields"] == {"code": "was used already; wait for the next code"}
    # The code of the confirmation (an earlier step) is spent as well.
    earlier = assert_error(await verify(client, second, code(secret, clock)), 422, "invalid")
    assert "used already" in earlier["fields"]["code"]
    assert (await client.get("/api/v1/users", headers=bearer(second))).status_code == 403
    clock.advance(30)
    assert (await verify(client, second, code(secret, clock, steps_ahead=1))).status_code == 200
    failed = await audit_entries(client, admin, "mfa.failed")
    assert [e["details"]["reason"] for e in failed].count(
        "was used already; wait for the next code"
    ) == 2
    assert all(e["outcome"] == "refused" for e in failed)


async def test_two_replicas_checking_one_code_at_once_accept_it_once(
    gateway_settings: GatewaySettings, clock: SteppedClock
) -> None:
    async with (
        make_client(gateway_settings, clock=clock) as one,
        make_client(gateway_settings, clock=clock) as two,
    ):
        _, secret, _ = await admin_with_app(one, clock)
        tokens = [(await sign_in(one, *ADMIN))[0] for _ in range(2)]
        now = code(secret, clock, steps_ahead=1)
        answers = await asyncio.gather(verify(one, tokens[0], now), verify(two, tokens[1], now))
        assert sorted(a.status_code for a in answers) == [200, 422]


async def test_a_recovery_code_works_once(client: Client, clock: SteppedClock) -> None:
    admin, _, codes = await admin_with_app(client, clock)
    first, _ = await sign_in(client, *ADMIN)
    typed = codes[3].upper().replace("-", " ")  # as a person might type it
    used = await verify(client, first, typed)
    assert used.status_code == 200, used.text
    assert used.json() == {"method": "recovery_code"}
    second, _ = await sign_in(client, *ADMIN)
    again = assert_error(await verify(client, second, codes[3]), 422, "invalid")
    assert again["fields"] == {"code": "is not one of your unused recovery codes"}
    assert (await client.get(MFA, headers=bearer(first))).json()["recovery_codes_left"] == 9
    [entry] = await audit_entries(client, admin, "mfa.recovery_code_used")
    assert entry["details"]["left"] == 9
    assert codes[3] not in str(entry) and codes[3].replace("-", "") not in str(entry)


async def test_new_recovery_codes_replace_the_old_ones_right_after_a_check(
    client: Client, clock: SteppedClock
) -> None:
    admin, _, old = await admin_with_app(client, clock)
    clock.advance(301)
    stale = assert_error(
        await client.post(f"{MFA}/recovery-codes", headers=bearer(admin)), 403, "forbidden"
    )
    assert STEP_UP in stale["message"]
    assert (await verify(client, admin, old[0])).status_code == 200
    fresh = await client.post(f"{MFA}/recovery-codes", headers=bearer(admin))
    assert fresh.status_code == 201, fresh.text
    new = fresh.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert (await verify(client, admin, old[1])).status_code == 422
    assert (await verify(client, admin, new[0])).status_code == 200


async def test_mfa_is_optional_for_a_leader_unless_required_for_all(
    gateway_settings: GatewaySettings, clock: SteppedClock
) -> None:
    async with make_client(gateway_settings, clock=clock) as client:
        admin, _, _ = await admin_with_app(client, clock)
        await create_user(client, admin, *LEADER, "leader")
        leader, owed = await sign_in(client, *LEADER)
        assert not owed
        assert (
            await client.get("/api/v1/auth/sessions", headers=bearer(leader))
        ).status_code == 200
        assert (await client.get(MFA, headers=bearer(leader))).json()["required"] is False
    required = replace(gateway_settings, mfa_required_for_all=True)
    async with make_client(required, clock=clock) as client:
        leader, _ = await sign_in(client, *LEADER)
        refused = await client.get("/api/v1/auth/sessions", headers=bearer(leader))
        assert ENROLL_FIRST in assert_error(refused, 403, "forbidden")["message"]
        await enroll(client, leader, clock)
        assert (
            await client.get("/api/v1/auth/sessions", headers=bearer(leader))
        ).status_code == 200


async def test_a_governance_user_acts_once_enrolled(
    client: Client, clock: SteppedClock, request_svc: object
) -> None:
    admin, _, _ = await admin_with_app(client, clock)
    await create_user(client, admin, *GOVERNOR, "governance")
    governor, _ = await sign_in(client, *GOVERNOR)
    refused = await client.get("/api/v1/requests", headers=bearer(governor))
    assert ENROLL_FIRST in assert_error(refused, 403, "forbidden")["message"]
    await enroll(client, governor, clock)
    assert (await client.get("/api/v1/requests", headers=bearer(governor))).status_code == 200


async def test_step_up_refused_without_a_recent_check_and_allowed_right_after(
    client: Client, clock: SteppedClock
) -> None:
    admin, secret, _ = await admin_with_app(client, clock)
    leader = await create_user(client, admin, *LEADER, "leader")
    clock.advance(301)
    role_change = {"roles": ["leader", "governance"]}
    path = f"/api/v1/users/{leader['user_id']}"
    for response in [
        await client.patch(path, json=role_change, headers=bearer(admin)),
        await client.post("/api/v1/deployments/r-1/redeploy", headers=bearer(admin)),
    ]:
        assert STEP_UP in assert_error(response, 403, "forbidden")["message"]
    # A change that is no step-up one still works.
    assert (await client.get("/api/v1/users", headers=bearer(admin))).status_code == 200
    assert (await verify(client, admin, code(secret, clock))).status_code == 200
    changed = await client.patch(path, json=role_change, headers=bearer(admin))
    assert changed.status_code == 200, changed.text
    assert changed.json()["roles"] == ["governance", "leader"]
    redeploy = await client.post("/api/v1/deployments/r-1/redeploy", headers=bearer(admin))
    assert redeploy.status_code != 403, redeploy.text


async def test_an_admin_resets_a_users_mfa_audited_and_their_sessions_end(
    client: Client, clock: SteppedClock
) -> None:
    admin, secret, _ = await admin_with_app(client, clock)
    governor_id = (await create_user(client, admin, *GOVERNOR, "governance"))["user_id"]
    governor, _ = await sign_in(client, *GOVERNOR)
    await enroll(client, governor, clock)
    reset = f"/api/v1/users/{governor_id}/mfa/reset"

    assert_error(await client.post(reset, headers=bearer(governor)), 403, "forbidden")
    clock.advance(301)
    stale = assert_error(await client.post(reset, headers=bearer(admin)), 403, "forbidden")
    assert STEP_UP in stale["message"]
    assert (await client.get(MFA, headers=bearer(governor))).json()["enrolled"] is True

    assert (await verify(client, admin, code(secret, clock))).status_code == 200
    assert (await client.post(reset, headers=bearer(admin))).status_code == 204
    assert_error(await client.get(MFA, headers=bearer(governor)), 401, "unauthorized")
    [entry] = await audit_entries(client, admin, "mfa.reset")
    me = (await client.get("/api/v1/auth/me", headers=bearer(admin))).json()
    assert (entry["actor_id"], entry["subject_id"], entry["outcome"]) == (
        me["user_id"],
        governor_id,
        "ok",
    )
    _, owed = await sign_in(client, *GOVERNOR, keep_cookies=True)
    assert not owed  # nothing to confirm: the governor sets up a factor anew
    refused = await client.get("/api/v1/requests")
    assert ENROLL_FIRST in assert_error(refused, 403, "forbidden")["message"]
    client.cookies.clear()
    unknown = await client.post(
        "/api/v1/users/00000000-0000-4000-8000-000000000000/mfa/reset", headers=bearer(admin)
    )
    assert_error(unknown, 404, "not_found")


async def test_removing_the_last_factor_is_refused_when_mandatory(
    client: Client, clock: SteppedClock
) -> None:
    admin, _, _ = await admin_with_app(client, clock)
    refused = assert_error(
        await client.delete(f"{MFA}/totp", headers=bearer(admin)), 409, "conflict"
    )
    assert "last second factor" in refused["message"]
    await create_user(client, admin, *LEADER, "leader")
    leader, _ = await sign_in(client, *LEADER)
    await enroll(client, leader, clock)
    assert (await client.delete(f"{MFA}/totp", headers=bearer(leader))).status_code == 204
    status = (await client.get(MFA, headers=bearer(leader))).json()
    assert (status["enrolled"], status["recovery_codes_left"]) == (False, 0)
    assert (await sign_in(client, *LEADER))[1] is False
    [removed] = await audit_entries(client, admin, "mfa.removed")
    assert removed["details"] == {"method": "totp", "factors_left": False}


async def test_failed_codes_are_throttled_by_account(client: Client, clock: SteppedClock) -> None:
    _, secret, _ = await admin_with_app(client, clock)
    token, _ = await sign_in(client, *ADMIN)
    right = code(secret, clock, steps_ahead=1)
    wrong = "123456" if right != "123456" else "654321"
    for _ in range(6):
        assert (await verify(client, token, wrong)).status_code == 422
    throttled = await verify(client, token, right)
    assert throttled.status_code == 429
    assert "retry-after" in throttled.headers
    clock.advance(2)
    assert (await verify(client, token, right)).status_code == 200
