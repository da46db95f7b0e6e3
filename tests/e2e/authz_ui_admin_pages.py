"""The matrix's calls of the admin pages, the account page and signing out (issue 11,
lane ui-admin): page routes signed in by the session cookie, forms carrying the
caller's CSRF token. A stranger is sent to sign in (303); a page refuses with a
page (403/404) and changes nothing.

`PAGES` are the routes that send a browser with a step still to take to that
step's page (the matrix's BROWSER_PAGES); `ANY_STAGE` those it reaches in any
state (signing out)."""

from __future__ import annotations

from typing import Any

import httpx
from authz_account_calls import tokens_of, victim
from authz_calls import caller, course_of, status_and
from authz_matrix import Call, Cell, Scope
from authz_secrets import new_token
from authz_world import Role, World

A = Role.ANONYMOUS

PAGES = {
    ("GET", "/admin"),
    ("GET", "/admin/users"),
    ("POST", "/admin/users"),
    ("POST", "/admin/users/{user_id}/roles"),
    ("POST", "/admin/users/{user_id}/disable"),
    ("POST", "/admin/users/{user_id}/enable"),
    ("POST", "/admin/users/{user_id}/mfa-reset"),
    ("GET", "/admin/deployments"),
    ("POST", "/admin/deployments/{request_id}/redeploy"),
    ("GET", "/admin/policy"),
    ("GET", "/admin/audit"),
    ("GET", "/account"),
    ("POST", "/account/profile"),
    ("POST", "/account/sessions/{session_id}/end"),
    ("POST", "/account/sessions/end-all"),
    ("POST", "/account/tokens/{token_id}/revoke"),
    ("GET", "/account/confirm"),
    ("POST", "/account/confirm"),
}
ANY_STAGE = {("POST", "/signout")}


def says(*words: str) -> Any:
    """A check that the page says each of `words`."""

    def check(r: httpx.Response) -> None:
        for word in words:
            assert word in r.text, r.text[:500]

    return check


async def page(w: World, cell: Cell) -> Call:
    return Call(cookies=True)


async def admin_page(w: World, cell: Cell) -> Call:
    """An admin page: only admins see it (others a 403 page, strangers sign in first)."""
    return Call(cookies=True, check=says("Signed in as") if cell.role is Role.ADMIN else None)


def user_of(w: World, user_id: str) -> Any:
    async def probe() -> Any:
        r = await w.http.get("/api/v1/users", headers=w.actors[Role.ADMIN].bearer)
        [user] = [u for u in r.json()["items"] if u["user_id"] == user_id]
        return sorted(user["roles"]), user["disabled"]

    return probe


async def create_user(w: World, cell: Cell) -> Call:
    username = w.name("page")

    async def exists() -> bool:
        r = await w.http.get("/api/v1/users", headers=w.actors[Role.ADMIN].bearer)
        return username in {u["username"] for u in r.json()["items"]}

    return Call(
        form={"username": username, "roles": "admin"},
        cookies=True,
        csrf_in_form=True,
        unchanged=exists,
        check=says('id="created-password"') if cell.role is Role.ADMIN else None,
    )


async def user_roles(w: World, cell: Cell) -> Call:
    """Refused: the caller makes itself (or someone else) an admin. Allowed: the admin
    sets the roles the user has already (changes nothing)."""
    target = caller(w, cell) if cell.scope is Scope.OWN else w.others["person"]
    roles = list(target.person.roles) if cell.allowed else ["admin"]
    return Call(
        params={"user_id": target.user_id},
        form={"roles": roles} if roles else {},  # type: ignore[dict-item]
        cookies=True,
        csrf_in_form=True,
        unchanged=user_of(w, target.user_id),
    )


async def disable_user(w: World, cell: Cell) -> Call:
    """Allowed (admins): a fresh person is disabled. Refused: the standing person."""
    if cell.role is Role.ADMIN:
        target = await w.fresh_actor(Role.NONE)

        async def disabled(_: httpx.Response) -> None:
            assert (await user_of(w, target.user_id)())[1] is True

        return Call(
            params={"user_id": target.user_id}, cookies=True, csrf_in_form=True, check=disabled
        )
    target = w.others["person"]
    return Call(
        params={"user_id": target.user_id},
        cookies=True,
        csrf_in_form=True,
        unchanged=user_of(w, target.user_id),
    )


async def enable_user(w: World, cell: Cell) -> Call:
    """Allowed (admins): a disabled fresh person is enabled. Refused: nothing changes."""
    target = await w.fresh_actor(Role.NONE)
    admin = w.actors[Role.ADMIN]
    r = await w.http.patch(
        f"/api/v1/users/{target.user_id}", headers=admin.bearer, json={"disabled": True}
    )
    assert r.status_code == 200, r.text
    if cell.role is Role.ADMIN:

        async def enabled(_: httpx.Response) -> None:
            assert (await user_of(w, target.user_id)())[1] is False

        return Call(
            params={"user_id": target.user_id}, cookies=True, csrf_in_form=True, check=enabled
        )
    return Call(
        params={"user_id": target.user_id},
        cookies=True,
        csrf_in_form=True,
        unchanged=user_of(w, target.user_id),
    )


async def reset_mfa(w: World, cell: Cell) -> Call:
    """Allowed (admins): a fresh person with an app loses it. Refused: governance's."""
    if cell.role is Role.ADMIN:
        target = await w.fresh_actor(Role.NONE, set_up=True)

        async def reset(_: httpx.Response) -> None:
            r = await w.http.get("/api/v1/auth/me", headers=target.bearer)
            assert r.status_code == 401, r.text  # the reset ends the user's sessions

        return Call(
            params={"user_id": target.user_id}, cookies=True, csrf_in_form=True, check=reset
        )
    target = w.actors[Role.GOVERNANCE]
    return Call(
        params={"user_id": target.user_id},
        cookies=True,
        csrf_in_form=True,
        unchanged=status_and(target, w, "/api/v1/auth/mfa", "totp", "enrolled"),
    )


async def redeploy(w: World, cell: Cell) -> Call:
    """A running hub: admins get the deployer's 409 shown on the page; others a 403 page."""
    course = course_of(w, cell)
    return Call(
        params={"request_id": course.request_id},
        cookies=True,
        csrf_in_form=True,
    )


async def profile(w: World, cell: Cell) -> Call:
    """The caller's own profile: name and language as they are (changes nothing)."""
    return Call(
        form={"display_name": "", "preferred_language": "", "email": ""},
        cookies=True,
        csrf_in_form=True,
    )


async def end_session(w: World, cell: Cell) -> Call:
    """own: a second session of the caller's; other: a new session of someone else."""
    if cell.scope is Scope.OWN:
        second = await w.sign_in(cell.role, caller(w, cell).person)
        return Call(
            params={"session_id": await w.session_id(second)},
            cookies=True,
            csrf_in_form=True,
        )
    victim = await w.sign_in(Role.NONE, await w.create_person("pagevictim"))
    return Call(
        params={"session_id": await w.session_id(victim)},
        cookies=True,
        csrf_in_form=True,
        unchanged=status_and(victim, w, "/api/v1/auth/me", "user_id"),
    )


async def ends_every_session(w: World, cell: Cell) -> Call:
    """Signing out everywhere (or here): a fresh person's sessions, never a standing one."""
    if cell.role is A:
        return Call(form={"csrf": ""}, cookies=True)
    actor = await w.fresh_actor(cell.role)

    async def ended(_: httpx.Response) -> None:
        r = await w.http.get("/api/v1/auth/me", headers=actor.bearer)
        assert r.status_code == 401, r.text

    return Call(actor=actor, cookies=True, csrf_in_form=True, check=ended)


async def revoke_token(w: World, cell: Cell) -> Call:
    """own: a new token of the caller's; other: the victim's (unknown to the caller)."""
    if cell.scope is Scope.OTHER:
        them = victim(w)
        return Call(
            params={"token_id": them.token_id},
            cookies=True,
            csrf_in_form=True,
            unchanged=tokens_of(them.actor, w),
        )
    actor = caller(w, cell)
    token_id = await new_token(w, actor, [])

    async def revoked(_: httpx.Response) -> None:
        _, tokens = await tokens_of(actor, w)()
        assert dict(tokens)[token_id] is not None, tokens

    return Call(params={"token_id": token_id}, cookies=True, csrf_in_form=True, check=revoked)


async def confirm(w: World, cell: Cell) -> Call:
    """The code form without a code: those with a second factor are asked for it (400),
    those without are sent to sign in again (303)."""
    return Call(form={"next": "/account", "code": ""}, cookies=True, csrf_in_form=True)
