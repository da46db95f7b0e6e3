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

import httpx
import pytest
import pytest_asyncio
from authz_entries import ENTRIES
from authz_matrix import Call, Cell, Entry, Scope, missing_entry_message, template
from authz_world import ADMIN_PASSWORD, Actor, Role, World, build_world

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
    """The whole product, one per module, with its people and resources."""
    stack = Stack(
        data_dir=tmp_path_factory.mktemp("matrix") / "data",
        extra_env={"JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD, "JHAAS_LOG_FORMAT": "console"},
    )
    try:
        await stack.start()
        built = await build_world(stack)
        try:
            yield built
        finally:
            if built.hubs is not None:
                built.hubs.cancel()
                await asyncio.gather(built.hubs, return_exceptions=True)
            await built.http.aclose()
    finally:
        stack.stop()
        # Hubs outlive the product's processes (a restart must not end a class).
        await teardown_all(stack.data_dir / "hubs", load_or_create_installation_id(stack.data_dir))


async def send(world: World, entry: Entry, cell: Cell, call: Call) -> httpx.Response:
    headers: dict[str, str] = {}
    if call.headers is not None:
        headers.update(call.headers)
    elif cell.role is not Role.ANONYMOUS:
        actor = call.actor or world.actors[cell.role]
        if call.cookies:
            headers.update(actor.cookie_header)
            headers["X-CSRF-Token"] = actor.csrf
        else:
            headers.update(actor.bearer)
    return await world.http.request(
        entry.method,
        entry.path.format(**call.params),
        params=call.query,
        json=call.json,
        data=call.form,
        headers=headers,
    )


async def run_cell(
    world: World, entry: Entry, cell: Cell, *, actor: Actor | None = None, says: str = ""
) -> str | None:
    """None when the cell holds, else what went wrong. `actor` calls instead of the
    cell's own caller; `says` is what the answer must say."""
    where = f"{entry.method} {entry.path} as {cell}" + (" (the actor)" if actor else "")
    try:
        call = await entry.build(world, cell)
        if actor is not None:
            call = replace(call, actor=actor)
        probe = call.unchanged if not cell.allowed else None
        before = await probe() if probe else None
        r = await send(world, entry, cell, call)
        if r.status_code != cell.expected:
            return f"{where}: expected {cell.expected}, got {r.status_code}: {r.text[:300]}"
        if says not in r.text.lower():
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


# Routes a caller with a generated password still reaches (REACHABLE_BEFORE in
# the gateway): to see who they are, choose a password, or leave.
BEFORE_PASSWORD_CHANGE = {
    ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/auth/password"),
    ("GET", "/signin/password"),
    ("POST", "/signin/password"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-everywhere"),
}
# Routes that act on no session: sign-in itself, and what a hub calls with its
# client secret or access token.
NO_SESSION = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/signin"),
    ("POST", "/oauth/token"),
    ("GET", "/oauth/userinfo"),
    ("POST", "/oauth/userinfo"),
}


def test_the_exceptions_are_routes() -> None:
    assert route_table() >= (BEFORE_PASSWORD_CHANGE | NO_SESSION)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_generated_password_is_replaced_before_anything_else(world: World) -> None:
    """Every other route of the table refuses such a caller (403 saying what to do
    first) and changes nothing, whatever the resource: a new route is refused
    unless it says otherwise."""
    person = await world.create_person("gen", "leader", password_change_required=True)
    actor = await world.sign_in(Role.LEADER, person)
    gate = asyncio.Semaphore(PARALLEL)

    async def refused(entry: Entry) -> str | None:
        # The cell of a refused caller of no role: it names the standing resources.
        scope = Scope.OTHER if Scope.OTHER in entry.rows else next(iter(entry.rows))
        async with gate:
            return await run_cell(
                world, entry, Cell(Role.NONE, scope, 403), actor=actor, says="change your password"
            )

    swept = [
        e for e in ENTRIES if e.who != "anyone" and e.key not in BEFORE_PASSWORD_CHANGE | NO_SESSION
    ]
    failures = [f for f in await asyncio.gather(*map(refused, swept)) if f]
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
