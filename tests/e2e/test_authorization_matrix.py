"""The authorization matrix (issue 8): for every route of the gateway's route
table, every caller role (and nobody signed in), and the caller's own resource
vs. someone else's, the exact status the whole product answers.

The entries are in authz_entries.py, the world (people and resources) in
authz_world.py. A route of the app without an entry fails
`test_every_route_has_an_entry`, and so does an entry whose route is gone.
"""

from __future__ import annotations

import asyncio
import inspect
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace

import authz_ui_admin_pages as ui_admin
import httpx
import pytest
import pytest_asyncio
from authz_course_pages import COURSE_PAGES
from authz_entries import ENTRIES
from authz_matrix import Call, Cell, Entry, Scope, missing_entry_message, template
from authz_outside import outside_services
from authz_secrets import furnish_victim, owing_second_factor
from authz_world import Actor, Role, World, build_world

from deployer_svc.backends.local import teardown_all
from deployer_svc.settings import load_or_create_installation_id
from gateway.app import create_app
from gateway.settings import GatewaySettings
from jhaas_launcher.stack import Stack

pytestmark = pytest.mark.e2e

# Not a route of the app's own: every other method of a route is one.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
# Cells of one route run at once, this many at a time (the machine has 2 cores).
PARALLEL = 8
Key = tuple[str, str]  # a route: method, path template


def route_table() -> set[tuple[str, str]]:
    """Every (method, path template) the gateway serves, from its app as built."""
    with tempfile.TemporaryDirectory() as folder:
        # Built, not started: no database, no bus.
        env = {"JHAAS_DATA_DIR": folder, "JHAAS_JWT_SECRET": "m" * 32}
        app = create_app(GatewaySettings.from_env(env))
    return {
        (method, template(r.path))
        for r in app.routes
        for method in getattr(r, "methods", ())
        if method not in IMPLICIT_METHODS
    }


def test_every_route_has_an_entry() -> None:
    routes = route_table()
    entries = [entry.key for entry in ENTRIES]
    assert len(entries) == len(set(entries)), "a route has two entries"
    missing = sorted(routes - set(entries))
    stale = sorted(set(entries) - routes)
    problems = [missing_entry_message(m, p) for m, p in missing] + [
        f"the matrix has an entry for {m} {p}, which the gateway no longer serves: remove it"
        for m, p in stale
    ]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The whole product, one per module, with its people and resources (and an
    OpenID provider and a mail server beside it)."""
    folder = tmp_path_factory.mktemp("matrix")
    with outside_services(folder) as (port, idp, mail, env):
        stack = Stack(data_dir=folder / "data", gateway_port=port, extra_env=env)
        try:
            await stack.start()
            built = await build_world(stack, idp, mail)
            try:
                built.victim = await furnish_victim(built)
                yield built
            finally:
                if built.hubs is not None:
                    built.hubs.cancel()
                    await asyncio.gather(built.hubs, return_exceptions=True)
                await built.http.aclose()
        finally:
            stack.stop()
            # Hubs outlive the product's processes (a restart must not end a class).
            data = stack.data_dir
            await teardown_all(data / "hubs", load_or_create_installation_id(data))


async def send(world: World, entry: Entry, cell: Cell, call: Call) -> httpx.Response:
    actor = None if cell.role is Role.ANONYMOUS else (call.actor or world.actors[cell.role])
    headers: dict[str, str] = {}
    if call.headers is not None:
        headers.update(call.headers)
    elif actor is not None:
        if call.cookies:
            headers.update(actor.cookie_header)
            headers["X-CSRF-Token"] = actor.csrf
        else:
            headers.update(actor.bearer)
    form = call.form
    if call.csrf_in_form:
        form = {**(form or {}), "csrf": actor.csrf if actor else ""}
    return await world.http.request(
        entry.method,
        entry.path.format(**call.params),
        params=call.query,
        json=call.json,
        data=form,
        headers=headers,
    )


async def run_cell(
    world: World,
    entry: Entry,
    cell: Cell,
    *,
    actor: Actor | None = None,
    says: str = "",
    expected: int | None = None,
) -> str | None:
    """None when the cell holds, else what went wrong. `actor` calls instead of the
    cell's own caller, and the answer must then be `expected` (default: the cell's);
    `says` is what the answer (its body, or where it sends the browser) must say."""
    where = f"{entry.method} {entry.path} as {cell}" + (" (the actor)" if actor else "")
    status = cell.expected if expected is None else expected
    try:
        call = await entry.build(world, cell)
        if actor is not None:
            call = replace(call, actor=actor)
        probe = call.unchanged if not cell.allowed else None
        before = await probe() if probe else None
        r = await send(world, entry, cell, call)
        if r.status_code != status:
            return f"{where}: expected {status}, got {r.status_code}: {r.text[:300]}"
        if says not in f"{r.text} {r.headers.get('location', '')}".lower():
            return f"{where}: the answer does not say {says!r}: {r.text[:300]}"
        if call.check is not None and cell.allowed:
            checked = call.check(r)
            if inspect.isawaitable(checked):
                await checked
        if probe is not None:
            after = await probe()
            if after != before:
                return f"{where}: refused ({r.status_code}), yet changed {before!r} -> {after!r}"
    except AssertionError as exc:
        return f"{where}: {exc}"
    return None


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.method} {e.path}" for e in ENTRIES])
async def test_route(world: World, entry: Entry) -> None:
    gate = asyncio.Semaphore(PARALLEL)

    async def bounded(cell: Cell) -> str | None:
        async with gate:
            return await run_cell(world, entry, cell)

    failures = [f for f in await asyncio.gather(*map(bounded, entry.cells())) if f]
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


# Routes that act on no session: sign-in itself (with a password, or the
# provider's answer), and what a hub calls with its client secret or access token.
NO_SESSION = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/signin"),
    ("GET", "/signin/oidc/{provider}/callback"),
    ("POST", "/oauth/token"),
    ("GET", "/oauth/userinfo"),
    ("POST", "/oauth/userinfo"),
}
# Routes a caller with something to do first still reaches (REACHABLE_BEFORE in
# the gateway, and the pages of that step): to see who they are and what they
# must do, do it, or leave.
ANY_STAGE = {
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/auth/mfa"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-everywhere"),
} | ui_admin.ANY_STAGE
BEFORE_PASSWORD_CHANGE = ANY_STAGE | {
    ("POST", "/api/v1/auth/password"),
    ("GET", "/signin/password"),
    ("POST", "/signin/password"),
}
BEFORE_SECOND_FACTOR = ANY_STAGE | {
    ("POST", "/api/v1/auth/mfa/verify"),
    ("POST", "/api/v1/auth/mfa/webauthn/authenticate/options"),
    ("POST", "/api/v1/auth/mfa/webauthn/authenticate"),
    ("GET", "/signin/mfa"),
    ("POST", "/signin/mfa"),
}
BEFORE_MFA_ENROLLMENT = ANY_STAGE | {
    ("POST", "/api/v1/auth/password"),
    ("GET", "/signin/password"),
    ("POST", "/signin/password"),
    ("POST", "/api/v1/auth/mfa/totp"),
    ("POST", "/api/v1/auth/mfa/totp/confirm"),
    ("POST", "/api/v1/auth/mfa/webauthn/register/options"),
    ("POST", "/api/v1/auth/mfa/webauthn/register"),
    ("GET", "/signin/mfa/setup"),
}
# The pages that a signed-in browser reaches for: instead of refusing, they send a
# browser with a step still to take to that step's page (303).
BROWSER_PAGES = {
    ("GET", "/join/{code}"),
    ("POST", "/join/{code}"),
    ("GET", "/oauth/authorize"),
} | COURSE_PAGES
# The leader's request pages (issue 11, lane ui-form).
BROWSER_PAGES |= {
    (method, path)
    for method in ("GET", "POST")
    for path in ("/requests/new", "/requests/{request_id}/edit", "/courses/{request_id}/change")
}
# The reviewer's pages (issue 11, ui-review).
BROWSER_PAGES |= {
    ("GET", "/reviews"),
    ("GET", "/reviews/{request_id}"),
    ("POST", "/reviews/{request_id}"),
    ("POST", "/reviews/{request_id}/changes/{change_id}"),
    ("GET", "/governance/calendar"),
    ("GET", "/governance/audit"),
}
# The admin and account pages (issue 11, ui-admin).
BROWSER_PAGES |= ui_admin.PAGES
SECOND_STEP_PAGES = {("GET", "/signin/mfa"), ("POST", "/signin/mfa")}
Answer = tuple[int, str]  # a status, and what the answer (or where it sends to) says


def test_the_exceptions_are_routes() -> None:
    stages = BEFORE_PASSWORD_CHANGE | BEFORE_SECOND_FACTOR | BEFORE_MFA_ENROLLMENT
    assert route_table() >= (stages | NO_SESSION | BROWSER_PAGES)


async def answered(world: World, actor: Actor, role: Role, answers: dict[Key, Answer]) -> None:
    """`actor` calls each route of `answers` as a refused caller of `role` would (at
    the standing resources), and gets that answer; a refusal changes nothing."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(entry: Entry) -> str | None:
        scope = Scope.OTHER if Scope.OTHER in entry.rows else next(iter(entry.rows))
        status, says = answers[entry.key]
        async with gate:
            cell = Cell(role, scope, 403)
            return await run_cell(world, entry, cell, actor=actor, says=says, expected=status)

    calls = [one(entry) for entry in ENTRIES if entry.key in answers]
    failures = [f for f in await asyncio.gather(*calls) if f]
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


async def sweep(
    world: World, actor: Actor, reachable: set[Key], says: str, pages: dict[Key, Answer]
) -> None:
    """Every route of the table but the `reachable` ones and those acting on no
    session refuses `actor` (403 saying `says`) and changes nothing, whatever the
    resource; the `pages` answer as given instead. A new route is refused unless
    it says otherwise."""
    swept = [e for e in ENTRIES if e.who != "anyone" and e.key not in reachable | NO_SESSION]
    await answered(world, actor, Role.NONE, {e.key: pages.get(e.key, (403, says)) for e in swept})


@pytest.mark.asyncio(loop_scope="module")
async def test_a_generated_password_is_replaced_before_anything_else(world: World) -> None:
    person = await world.create_person("gen", "leader", password_change_required=True)
    actor = await world.sign_in(Role.LEADER, person)
    # The second step's pages have nothing to ask of such a session: on to `next`.
    pages = {key: (303, "") for key in SECOND_STEP_PAGES}
    await sweep(world, actor, BEFORE_PASSWORD_CHANGE, "change your password", pages)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_session_owing_its_second_factor_reaches_only_its_check(world: World) -> None:
    actor = await owing_second_factor(world, Role.LEADER)
    to_check = (303, "/signin/mfa?next=")
    pages = {key: to_check for key in BROWSER_PAGES | {("GET", "/signin/mfa/setup")}}
    # The password page is a browser page too: to the check first, as the API refuses.
    pages |= {(method, "/signin/password"): to_check for method in ("GET", "POST")}
    await sweep(world, actor, BEFORE_SECOND_FACTOR, "finish signing in first", pages)


@pytest.mark.asyncio(loop_scope="module")
async def test_governance_sets_up_a_second_factor_before_anything_else(world: World) -> None:
    actor = await world.fresh_actor(Role.GOVERNANCE, set_up=False)
    to_set_up = (303, "/signin/mfa/setup?next=")
    pages = {key: to_set_up for key in BROWSER_PAGES | SECOND_STEP_PAGES}
    await sweep(world, actor, BEFORE_MFA_ENROLLMENT, "set up a second factor first", pages)


# What a personal API token never reaches (requires_session): a person's
# sessions, password, second factors, linked identities, tokens and account.
NEEDS_A_SESSION = {
    ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-everywhere"),
    ("GET", "/api/v1/auth/sessions"),
    ("DELETE", "/api/v1/auth/sessions/{session_id}"),
    ("GET", "/api/v1/auth/mfa"),
    ("POST", "/api/v1/auth/mfa/totp"),
    ("POST", "/api/v1/auth/mfa/totp/confirm"),
    ("DELETE", "/api/v1/auth/mfa/totp"),
    ("POST", "/api/v1/auth/mfa/verify"),
    ("POST", "/api/v1/auth/mfa/recovery-codes"),
    ("POST", "/api/v1/auth/mfa/webauthn/register/options"),
    ("POST", "/api/v1/auth/mfa/webauthn/register"),
    ("POST", "/api/v1/auth/mfa/webauthn/authenticate/options"),
    ("POST", "/api/v1/auth/mfa/webauthn/authenticate"),
    ("DELETE", "/api/v1/auth/mfa/webauthn/{credential_id}"),
    ("POST", "/api/v1/auth/identities/{provider}/link"),
    ("DELETE", "/api/v1/auth/identities/{provider}"),
    ("PATCH", "/api/v1/me"),
    ("GET", "/api/v1/me/export"),
    ("DELETE", "/api/v1/me"),
    ("POST", "/api/v1/me/email/verify"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
}
# The step-up changes: a token is never a recent second-factor check.
STEP_UP = {
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/{user_id}"),
    ("DELETE", "/api/v1/users/{user_id}"),
    ("POST", "/api/v1/users/{user_id}/mfa/reset"),
    ("POST", "/api/v1/deployments/{request_id}/redeploy"),
}


def test_the_token_exceptions_are_routes() -> None:
    assert route_table() >= (NEEDS_A_SESSION | STEP_UP)


@pytest.mark.asyncio(loop_scope="module")
async def test_an_admins_api_token_reaches_no_session_route_and_no_step_up(world: World) -> None:
    """A script's token (or a stolen one) carries the admin role, yet changes no way of
    signing in, makes no more tokens, and makes no change that needs a recent check."""
    admin = world.actors[Role.ADMIN]
    body = {"name": world.name("script"), "roles": ["admin"]}
    r = await world.http.post("/api/v1/tokens", headers=admin.bearer, json=body)
    assert r.status_code == 201, r.text
    script = Actor(admin.person, token=str(r.json()["token"]), session="", csrf="")
    answers = {key: (403, "a personal api token cannot do it") for key in NEEDS_A_SESSION}
    answers |= {key: (403, "confirm your second factor first") for key in STEP_UP}
    await answered(world, script, Role.ADMIN, answers)
