"""The admin pages and the account page in a browser's shoes (cookies, forms,
redirects), against the gateway: who gets in, the step-up detour and back, the
last admin kept, a generated password shown once, someone else's session, forms
from elsewhere and odd bodies refused in words (never a 500), signing out."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, SteppedClock, bearer, create_user, make_client
from mfa_helpers import code, enroll, sign_in
from oauth_helpers import query_of, sign_in_form

pytestmark = pytest.mark.integration

ANN = ("ann", "ann password 1234")
BOB = ("bob", "bob password 1234")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GERMAN = {"Accept-Language": "de-DE,de;q=0.9"}
ADMIN_GETS = ("/admin", "/admin/users", "/admin/deployments", "/admin/policy", "/admin/audit")
UUID = "7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a0e1"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def client(gateway_settings: GatewaySettings, clock: SteppedClock) -> AsyncIterator[Client]:
    async with make_client(gateway_settings, clock=clock) as test_client:
        yield test_client


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


class Admin:
    """The first admin with an authenticator app, and their API token."""

    def __init__(self, secret: str, token: str, clock: SteppedClock) -> None:
        self.secret, self.token, self.clock = secret, token, clock

    def code(self) -> str:
        self.clock.advance(30)  # a code counts once: each check takes the next step's
        return code(self.secret, self.clock)


@pytest.fixture
async def admin(client: Client, clock: SteppedClock) -> Admin:
    token, _ = await sign_in(client, *ADMIN, keep_cookies=True)
    secret, _ = await enroll(client, token, clock)
    client.cookies.clear()
    made = Admin(secret, token, clock)
    for who in (ANN, BOB):
        await create_user(client, token, *who)
    return made


async def browser_admin(client: Client, admin: Admin, next_url: str = "/admin/users") -> str:
    """Sign in through the forms with the second step; the page at `next_url`'s CSRF token."""
    client.cookies.clear()
    first = await sign_in_form(client, *ADMIN, next_url=next_url)
    assert first.status_code == 303 and first.headers["location"].startswith("/signin/mfa?")
    form = await client.get(first.headers["location"], follow_redirects=False)
    second = await client.post(
        "/signin/mfa",
        data={"csrf": csrf_of(form), "next": next_url, "code": admin.code()},
        follow_redirects=False,
    )
    assert second.status_code == 303 and second.headers["location"] == next_url, second.text
    page = await client.get(next_url, follow_redirects=False)
    assert page.status_code == 200, page.text
    return csrf_of(page)


async def browser_user(client: Client, who: tuple[str, str], next_url: str = "/account") -> str:
    client.cookies.clear()
    assert (await sign_in_form(client, *who, next_url=next_url)).status_code == 303
    page = await client.get(next_url, follow_redirects=False)
    assert page.status_code == 200, page.text
    return csrf_of(page)


async def user_of(client: Client, admin: Admin, username: str) -> dict[str, object]:
    users = await client.get("/api/v1/users", headers=bearer(admin.token))
    [found] = [u for u in users.json()["items"] if u["username"] == username]
    return dict(found)


async def test_a_stranger_is_sent_to_sign_in_and_comes_back(client: Client) -> None:
    for path in (*ADMIN_GETS, "/account", "/account/confirm?next=%2Fadmin%2Fusers"):
        page = await client.get(path, follow_redirects=False)
        assert page.status_code == 303, path
        assert page.headers["location"].startswith("/signin?")
        assert query_of(page.headers["location"])["next"] == path
    for path in (
        "/admin/users",
        f"/admin/users/{UUID}/roles",
        "/admin/deployments/r-1/redeploy",
        "/account/profile",
        f"/account/sessions/{UUID}/end",
    ):
        posted = await client.post(path, data={"csrf": "x"}, follow_redirects=False)
        assert posted.status_code == 303 and posted.headers["location"].startswith("/signin?")
    # Signing out without a session is no error: the front page.
    out = await client.post("/signout", data={"csrf": "x"}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/"


async def test_someone_who_is_no_admin_gets_a_403_page_on_every_admin_page(
    client: Client, admin: Admin
) -> None:
    csrf = await browser_user(client, ANN)
    for path in ADMIN_GETS:
        page = await client.get(path, follow_redirects=False)
        assert page.status_code == 403, path
        assert "Only an admin can see this page." in page.text
    bob = await user_of(client, admin, "bob")
    for path in (
        "/admin/users",
        f"/admin/users/{bob['user_id']}/roles",
        f"/admin/users/{bob['user_id']}/disable",
        f"/admin/users/{bob['user_id']}/mfa-reset",
        "/admin/deployments/r-1/redeploy",
    ):
        posted = await client.post(
            path, data={"csrf": csrf, "roles": "admin", "username": "eve"}, follow_redirects=False
        )
        assert posted.status_code == 403, path
    assert (await user_of(client, admin, "bob"))["roles"] == []
    assert (await user_of(client, admin, "bob"))["disabled"] is False


async def test_an_admin_changes_roles_after_the_step_up_and_the_last_admin_stays(
    client: Client, admin: Admin, gateway_settings: GatewaySettings
) -> None:
    csrf = await browser_admin(client, admin)
    page = await client.get("/admin/users")
    assert "Users and roles" in page.text and ">ann</th>" in page.text
    ann = await user_of(client, admin, "ann")
    changed = await client.post(
        f"/admin/users/{ann['user_id']}/roles",
        data={"csrf": csrf, "roles": ["leader", "governance"]},
        follow_redirects=False,
    )
    assert changed.status_code == 303, changed.text
    assert (await user_of(client, admin, "ann"))["roles"] == ["governance", "leader"]
    shown = await client.get(changed.headers["location"])
    assert "The roles were saved." in shown.text

    # Minutes later the check is old: to the second factor, then back to the page.
    admin.clock.advance(gateway_settings.step_up_seconds + 1)
    asked = await client.post(
        f"/admin/users/{ann['user_id']}/roles",
        data={"csrf": csrf, "roles": "leader"},
        follow_redirects=False,
    )
    assert asked.status_code == 303
    assert asked.headers["location"] == "/account/confirm?next=%2Fadmin%2Fusers"
    assert (await user_of(client, admin, "ann"))["roles"] == ["governance", "leader"]
    confirm = await client.get(asked.headers["location"])
    assert confirm.status_code == 200 and "Confirm it is you" in confirm.text
    wrong = await client.post(
        "/account/confirm",
        data={"csrf": csrf, "next": "/admin/users", "code": "000000"},
        follow_redirects=False,
    )
    assert wrong.status_code == 401 and "That code" in wrong.text
    confirmed = await client.post(
        "/account/confirm",
        data={"csrf": csrf, "next": "/admin/users", "code": admin.code()},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/admin/users"
    again = await client.post(
        f"/admin/users/{ann['user_id']}/roles",
        data={"csrf": csrf, "roles": "leader"},
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert (await user_of(client, admin, "ann"))["roles"] == ["leader"]

    # The only admin cannot take their own role away, nor disable themselves.
    root = await user_of(client, admin, ADMIN[0])
    refused = await client.post(
        f"/admin/users/{root['user_id']}/roles", data={"csrf": csrf}, follow_redirects=False
    )
    assert refused.status_code == 409, refused.text
    assert "this change would leave no active admin" in refused.text
    assert 'class="error-summary"' in refused.text
    off = await client.post(
        f"/admin/users/{root['user_id']}/disable", data={"csrf": csrf}, follow_redirects=False
    )
    assert off.status_code == 409 and "no active admin" in off.text
    assert (await user_of(client, admin, ADMIN[0]))["roles"] == ["admin"]

    # Disable and enable Bob; reset a second factor of a user without one is fine too.
    bob = await user_of(client, admin, "bob")
    for action, disabled in (("disable", True), ("enable", False)):
        done = await client.post(
            f"/admin/users/{bob['user_id']}/{action}", data={"csrf": csrf}, follow_redirects=False
        )
        assert done.status_code == 303, done.text
        assert (await user_of(client, admin, "bob"))["disabled"] is disabled
    reset = await client.post(
        f"/admin/users/{bob['user_id']}/mfa-reset", data={"csrf": csrf}, follow_redirects=False
    )
    assert reset.status_code == 303, reset.text


async def test_a_new_account_gets_a_generated_password_shown_once(
    client: Client, admin: Admin
) -> None:
    csrf = await browser_admin(client, admin)
    made = await client.post(
        "/admin/users",
        data={"csrf": csrf, "username": "carla", "display_name": "Carla", "roles": "leader"},
        follow_redirects=False,
    )
    assert made.status_code == 201, made.text
    password = made.text.split('<code id="created-password">')[1].split("</code>")[0]
    assert len(password) >= 12
    carla = await user_of(client, admin, "carla")
    assert carla["roles"] == ["leader"] and carla["password_change_required"] is True
    assert password not in (await client.get("/admin/users")).text  # once
    signed_in = await client.post(
        "/api/v1/auth/login", json={"username": "carla", "password": password}
    )
    assert signed_in.status_code == 200 and signed_in.json()["password_change_required"]

    client.cookies.clear()
    csrf = await browser_admin(client, admin)
    taken = await client.post(
        "/admin/users",
        data={"csrf": csrf, "username": "carla", "display_name": "Second Carla"},
        follow_redirects=False,
    )
    assert taken.status_code == 409 and "is taken" in taken.text
    assert 'value="Second Carla"' in taken.text  # kept
    bad = await client.post(
        "/admin/users",
        data={"csrf": csrf, "username": "Carla Big", "display_name": "C"},
        follow_redirects=False,
    )
    assert bad.status_code == 422 and "lower-case letters" in bad.text
    assert 'value="Carla Big"' in bad.text and 'aria-invalid="true"' in bad.text
    odd_role = await client.post(
        "/admin/users",
        data={"csrf": csrf, "username": "dora", "roles": "emperor"},
        follow_redirects=False,
    )
    assert odd_role.status_code == 422 and "Choose roles from the list." in odd_role.text
    users = (await client.get("/api/v1/users", headers=bearer(admin.token))).json()["items"]
    assert {u["username"] for u in users} == {ADMIN[0], "ann", "bob", "carla"}


async def test_forms_from_elsewhere_and_odd_bodies_are_refused_in_words(
    client: Client, admin: Admin
) -> None:
    csrf = await browser_user(client, BOB)
    bobs = csrf
    csrf = await browser_admin(client, admin)
    ann = await user_of(client, admin, "ann")
    roles = f"/admin/users/{ann['user_id']}/roles"
    for fields in ({}, {"csrf": "guess"}, {"csrf": bobs}):
        for path in (roles, "/admin/users", "/account/profile", "/signout", "/account/confirm"):
            refused = await client.post(
                path, data={**fields, "roles": "admin", "username": "eve"}, follow_redirects=False
            )
            assert refused.status_code == 403, (path, fields)
            assert "did not come from this site" in refused.text
    as_json = await client.post(roles, json={"csrf": csrf, "roles": "admin"})
    assert as_json.status_code == 415
    not_utf8 = await client.post(
        roles, content=b"csrf=" + csrf.encode() + b"&roles=\xff", headers=FORM
    )
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.text
    unknown = await client.post(f"/admin/users/{UUID}/roles", data={"csrf": csrf})
    assert unknown.status_code == 404 and "There is no such user." in unknown.text
    malformed = await client.post("/admin/users/not-an-id/disable", data={"csrf": csrf})
    assert malformed.status_code == 404
    odd = await client.post(roles, data={"csrf": csrf, "roles": "emperor"})
    assert odd.status_code == 422 and "Choose roles from the list." in odd.text
    bad_id = await client.post("/admin/deployments/%0Abad/redeploy", data={"csrf": csrf})
    assert bad_id.status_code == 404
    assert (await user_of(client, admin, "ann"))["roles"] == []
    audit = await client.get("/admin/audit", params={"kind": "DROP TABLE", "since": "soon"})
    assert audit.status_code == 422
    assert "A kind is like" in audit.text and "Enter a date and time" in audit.text
    assert 'value="DROP TABLE"' in audit.text


async def test_the_audit_log_filters_and_pages(client: Client, admin: Admin) -> None:
    await browser_admin(client, admin)
    everything = await client.get("/admin/audit")
    assert everything.status_code == 200 and "mfa.enrolled" in everything.text
    only_mfa = await client.get("/admin/audit", params={"kind": "mfa."})
    assert only_mfa.status_code == 200
    rows = only_mfa.text.split("<tbody>")[1]
    assert "mfa." in rows and "user.created" not in rows
    created = await client.get("/admin/audit", params={"kind": "user.created"})
    assert "ann" in created.text.split("<tbody>")[1]


async def test_someone_elses_session_cannot_be_ended_from_the_account_page(
    client: Client, admin: Admin
) -> None:
    await browser_user(client, BOB)
    bobs_session = (await client.get("/api/v1/auth/sessions", headers=_csrf_headers(client))).json()
    bob_id = bobs_session["items"][0]["session_id"]
    bob_cookies = dict(client.cookies)
    csrf = await browser_user(client, ANN)
    refused = await client.post(
        f"/account/sessions/{bob_id}/end", data={"csrf": csrf}, follow_redirects=False
    )
    assert refused.status_code == 404 and "You have no such session." in refused.text
    token_refused = await client.post(
        f"/account/tokens/{UUID}/revoke", data={"csrf": csrf}, follow_redirects=False
    )
    assert token_refused.status_code == 404
    client.cookies.clear()
    for name, value in bob_cookies.items():
        client.cookies.set(name, value)
    assert (await client.get("/account", follow_redirects=False)).status_code == 200


def _csrf_headers(client: Client) -> dict[str, str]:
    csrf = [value for name, value in client.cookies.items() if name.endswith("jhaas_csrf")]
    return {"X-CSRF-Token": csrf[0]} if csrf else {}


async def test_the_account_page_saves_the_profile_and_signs_out(
    client: Client, admin: Admin, gateway_settings: GatewaySettings
) -> None:
    csrf = await browser_user(client, ANN)
    page = await client.get("/account", headers=GERMAN)
    assert '<html lang="de">' in page.text  # none chosen: the browser's
    assert '<option value="" selected>' in page.text
    saved = await client.post(
        "/account/profile",
        data={"csrf": csrf, "display_name": "Ann A.", "preferred_language": "en", "email": ""},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    page = await client.get("/account", headers=GERMAN)
    assert '<html lang="en">' in page.text and 'value="Ann A."' in page.text
    bad = await client.post(
        "/account/profile",
        data={"csrf": csrf, "display_name": "x\x07", "preferred_language": "fr"},
        follow_redirects=False,
    )
    assert bad.status_code == 422 and 'class="error-summary"' in bad.text
    # A new address, long after signing in (no second factor: sign in again first).
    admin.clock.advance(gateway_settings.step_up_seconds + 1)
    asked = await client.post(
        "/account/profile",
        data={
            "csrf": csrf,
            "display_name": "Ann A.",
            "preferred_language": "en",
            "email": "ann@example.org",
        },
        follow_redirects=False,
    )
    assert asked.status_code == 303 and asked.headers["location"].startswith("/signin?")
    assert query_of(asked.headers["location"])["next"].endswith(
        "email=ann%40example.org&preferred_language=en"
    )

    before = dict(client.cookies)
    out = await client.post("/signout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/"
    cleared = [c for c in out.headers.get_list("set-cookie") if "jhaas_session=" in c]
    assert cleared and "max-age=0" in cleared[0].lower()
    for name, value in before.items():  # the old cookie, kept by a careless browser
        client.cookies.set(name, value)
    assert (await client.get("/account", follow_redirects=False)).status_code == 303


async def test_every_page_speaks_german_to_a_german_browser(client: Client, admin: Admin) -> None:
    await browser_admin(client, admin)
    for path, heading in (
        ("/admin", "Verwaltung"),
        ("/admin/users", "Benutzer und Rollen"),
        ("/admin/audit", "Audit-Protokoll"),
        ("/account", "Ihr Konto"),
        ("/account/confirm?next=/admin", "Bestätigen Sie, dass Sie es sind"),
    ):
        page = await client.get(path, headers=GERMAN)
        assert page.status_code == 200, page.text
        assert f"<h1>{heading}</h1>" in page.text and '<html lang="de">' in page.text
    english = await client.get("/account")
    assert "0 security keys." in english.text and "unused recovery codes." in english.text


async def test_the_audit_log_pages_to_older_entries(client: Client, admin: Admin) -> None:
    for number in range(55):
        await create_user(client, admin.token, f"many{number:02d}", "many password 1234")
    await browser_admin(client, admin)
    first = await client.get("/admin/audit", params={"kind": "user.created"})
    assert first.status_code == 200
    assert first.text.count("<code>user.created</code>") == 50
    older = first.text.split('" rel="next"')[0].split('<a href="')[-1].replace("&amp;", "&")
    assert older.startswith("/admin/audit?kind=user.created&before=")
    second = await client.get(older)
    assert second.status_code == 200 and "(older page)" in second.text
    # 55 made here, 2 by the fixture: the rest are on the second page, the oldest last.
    assert second.text.count("<code>user.created</code>") == 7
    assert 'rel="next"' not in second.text
    for before in ("x", "²", "9" * 5000):  # "²".isdigit() is true, int() refuses it
        bad = await client.get("/admin/audit", params={"before": before})
        assert bad.status_code == 422 and "This page of the log does not exist." in bad.text
