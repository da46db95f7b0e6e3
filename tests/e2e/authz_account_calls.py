"""How the matrix's cells call the routes of one's own account (issue 8): the
profile, mailed links, API tokens, second factors, linked identities, and the
pages of the sign-in's second step and of an identity provider.

"own" is the caller's own factor, token, link or identity; "other" the
victim's (authz_world.Victim), named by its id: it must be unknown to the
caller (404) or refused, and stay as it was. Cells that set up or remove a
factor, or end their caller's sessions, call as a fresh person.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from authz_calls import caller, status_and
from authz_matrix import Call, Cell, Scope
from authz_outside import IDP_NAME
from authz_secrets import (
    add_key,
    authenticator,
    current_code,
    email_link,
    key_assertion,
    key_id,
    link_identity,
    new_subject,
    new_token,
    next_code,
    ok,
    owing_second_factor,
    reset_link,
    started_sign_in,
)
from authz_world import Actor, Role, Victim, World
from idp_helpers import sign_in_at_idp
from webauthn_helpers import SoftAuthenticator

from jhaas_launcher.second_factor import STEP_SECONDS, totp_code

A = Role.ANONYMOUS
MFA = "/api/v1/auth/mfa"
STEP_UP_ROLES = (Role.GOVERNANCE, Role.ADMIN)  # their standing sessions checked a factor


def victim(w: World) -> Victim:
    assert w.victim is not None
    return w.victim


def past_guards(cell: Cell) -> bool:
    """Whether the cell expects the route's own answer rather than a guard's refusal:
    then its caller must get past every guard (a second factor checked just now)."""
    return cell.role is not A and cell.expected not in (401, 403)


async def checked_caller(w: World, cell: Cell) -> Actor | None:
    """A caller that passes a step-up guard, for cells that expect the route's own
    answer: the standing governance and admin sessions checked a factor; anyone
    else, a fresh person who sets up an app. None: the cell's standing caller."""
    if not past_guards(cell) or cell.role in STEP_UP_ROLES:
        return None
    return await w.fresh_actor(cell.role, set_up=True)


def ended(actor: Actor, w: World) -> Any:
    """A check that `actor`'s session no longer works."""

    async def check(_: httpx.Response) -> None:
        r = await w.http.get("/api/v1/auth/me", headers=actor.bearer)
        assert r.status_code == 401, r.text

    return check


def signed_in_fully(actor: Actor, w: World) -> Any:
    """A check that `actor`'s session now reaches a route that needs nothing pending."""

    async def check(_: httpx.Response) -> None:
        r = await w.http.get("/api/v1/courses", headers=actor.bearer)
        assert r.status_code == 200, r.text

    return check


# --- the profile ------------------------------------------------------------------------


async def update_profile(w: World, cell: Cell) -> Call:
    """The language the caller has already (changes nothing but the audit log)."""

    def check(r: httpx.Response) -> None:
        assert r.json()["user_id"] == caller(w, cell).user_id, r.text

    return Call(json={"preferred_language": "en"}, check=None if cell.role is A else check)


async def export(w: World, cell: Cell) -> Call:
    if cell.role is A:
        return Call()
    expected = caller(w, cell).user_id

    def check(r: httpx.Response) -> None:
        assert r.json()["profile"]["user_id"] == expected, r.text[:300]
        assert r.headers["content-disposition"].startswith("attachment"), r.headers

    return Call(check=check)


async def delete_me(w: World, cell: Cell) -> Call:
    """A fresh person deletes their account; the standing leader (of a course that is
    not over) is refused and stays, as does a refused caller."""
    if cell.role is A:
        return Call(json={"password": "whatever-it-was"})
    if cell.role is Role.LEADER or not past_guards(cell):
        standing = caller(w, cell)
        return Call(
            json={"password": standing.person.password},
            unchanged=status_and(standing, w, "/api/v1/auth/me", "user_id"),
        )
    actor = await w.fresh_actor(cell.role)
    return Call(actor=actor, json={"password": actor.person.password}, check=ended(actor, w))


async def verify_email(w: World, cell: Cell) -> Call:
    """own: the link mailed to the caller (a fresh person); other: the victim's link."""
    if cell.scope is Scope.OWN:
        actor = await w.fresh_actor(cell.role)
        token = await email_link(w, actor)

        def check(r: httpx.Response) -> None:
            assert r.json()["email_verified"] and r.json()["email"], r.text

        return Call(actor=actor, json={"token": token}, check=check)
    them = victim(w)
    keys = ("email", "email_verified", "pending_email")
    return Call(
        json={"token": them.email_link},
        unchanged=status_and(them.actor, w, "/api/v1/me", *keys),
    )


# --- personal API tokens ---------------------------------------------------------------

# A role each caller does not hold: asking a token for it is asking for more power.
NOT_HELD = {
    Role.ANONYMOUS: "admin",
    Role.NONE: "participant",
    Role.PARTICIPANT: "leader",
    Role.LEADER: "admin",
    Role.GOVERNANCE: "admin",
    Role.ADMIN: "governance",
}


def tokens_of(actor: Actor, w: World, name: str | None = None) -> Any:
    """`actor`'s tokens (named `name`): ids and when revoked."""

    async def probe() -> Any:
        r = await w.http.get("/api/v1/tokens", headers=actor.bearer)
        items = [t for t in r.json()["items"] if name in (None, t["name"])]
        return r.status_code, sorted((t["token_id"], t["revoked_at"]) for t in items)

    return probe


async def list_tokens(w: World, cell: Cell) -> Call:
    if cell.role is A:
        return Call()
    theirs = victim(w).token_id

    def check(r: httpx.Response) -> None:
        assert theirs not in {t["token_id"] for t in r.json()["items"]}, r.text

    return Call(check=check)


async def create_token(w: World, cell: Cell) -> Call:
    """own: a token with the caller's own roles; other: with a role they do not hold."""
    if cell.role is A:
        return Call(json={"name": "matrix", "roles": [NOT_HELD[A]]})
    actor, name = caller(w, cell), w.name("t")
    roles = list(actor.person.roles) if cell.scope is Scope.OWN else [NOT_HELD[cell.role]]
    return Call(json={"name": name, "roles": roles}, unchanged=tokens_of(actor, w, name))


async def revoke_token(w: World, cell: Cell) -> Call:
    """own: a new token of the caller's; other: the victim's."""
    if cell.scope is Scope.OTHER:
        them = victim(w)
        return Call(params={"token_id": them.token_id}, unchanged=tokens_of(them.actor, w))
    actor = caller(w, cell)
    token_id = await new_token(w, actor, [])

    async def check(_: httpx.Response) -> None:
        _, tokens = await tokens_of(actor, w)()
        assert dict(tokens)[token_id] is not None, tokens

    return Call(params={"token_id": token_id}, check=check)


# --- second factors ---------------------------------------------------------------------


def mfa_of(actor: Actor, w: World) -> Any:
    return status_and(actor, w, MFA, "totp", "enrolled", "security_keys")


async def mfa_status(w: World, cell: Cell) -> Call:
    if cell.role is A:
        return Call()
    required = cell.role in STEP_UP_ROLES

    def check(r: httpx.Response) -> None:
        assert r.json()["required"] is required and r.json()["enrolled"] is required, r.text

    return Call(check=check)


async def begin_totp(w: World, cell: Cell) -> Call:
    """A fresh person with no factor yet (governance and admin: before they may act)."""
    if not past_guards(cell):
        return Call()

    def check(r: httpx.Response) -> None:
        assert r.json()["otpauth_uri"].startswith("otpauth://totp/"), r.text

    return Call(actor=await w.fresh_actor(cell.role, set_up=False), check=check)


def recovery_codes(r: httpx.Response) -> None:
    assert len(r.json()["recovery_codes"]) == 10, r.text


async def confirm_totp(w: World, cell: Cell) -> Call:
    if not past_guards(cell):
        return Call(json={"code": "123456"})
    actor = await w.fresh_actor(cell.role, set_up=False)
    secret = ok(await w.http.post(f"{MFA}/totp", headers=actor.bearer))["secret"]
    code = totp_code(secret, int(time.time()) // STEP_SECONDS)
    return Call(actor=actor, json={"code": code}, check=recovery_codes)


async def remove_totp(w: World, cell: Cell) -> Call:
    """A fresh person's only factor: governance and admins must keep it (409)."""
    if not past_guards(cell):
        return Call()
    actor = await w.fresh_actor(cell.role, set_up=True)

    async def check(_: httpx.Response) -> None:
        _, status = await mfa_of(actor, w)()
        assert not status["totp"] and not status["enrolled"], status

    return Call(actor=actor, unchanged=mfa_of(actor, w), check=check)


async def verify_code(w: World, cell: Cell) -> Call:
    """own: a session owing its second factor, with its app's code; other: someone
    else's code (the standing governance person's app) typed by a person with an app."""
    if not past_guards(cell):
        return Call(json={"code": current_code(w.actors[Role.GOVERNANCE].person.username)})
    if cell.scope is Scope.OWN:
        actor = await owing_second_factor(w, cell.role)
        code = next_code(actor.person.username)
        return Call(actor=actor, json={"code": code}, check=signed_in_fully(actor, w))
    actor = await w.fresh_actor(cell.role, set_up=True)
    others = current_code(w.actors[Role.GOVERNANCE].person.username)
    return Call(actor=actor, json={"code": others}, unchanged=mfa_of(actor, w))


async def new_recovery_codes(w: World, cell: Cell) -> Call:
    if not past_guards(cell):
        return Call()
    return Call(actor=await w.fresh_actor(cell.role, set_up=True), check=recovery_codes)


async def key_options(w: World, cell: Cell) -> Call:
    def check(r: httpx.Response) -> None:
        assert r.json()["challenge"], r.text

    return Call(check=check)


async def register_key(w: World, cell: Cell) -> Call:
    """A fresh person's first factor: a software security key."""
    if not past_guards(cell):
        return Call(json={"credential": {}, "name": "matrix"})
    actor = await w.fresh_actor(cell.role, set_up=False)
    path = f"{MFA}/webauthn/register/options"
    options = ok(await w.http.post(path, headers=actor.bearer))
    credential = authenticator(w).register(options)
    return Call(actor=actor, json={"credential": credential}, check=recovery_codes)


async def key_holder(w: World, cell: Cell) -> tuple[Actor, SoftAuthenticator]:
    """A fresh person whose one factor is a security key, signed in again: a session
    owing its second factor, and the key."""
    fresh = await w.fresh_actor(cell.role, set_up=False)
    key = await add_key(w, fresh)
    return await w.sign_in(cell.role, fresh.person, confirm=False), key


async def authentication_options(w: World, cell: Cell) -> Call:
    if not past_guards(cell):
        return Call()
    actor, key = await key_holder(w, cell)

    def check(r: httpx.Response) -> None:
        allowed = [c["id"] for c in r.json()["allowCredentials"]]
        assert allowed == [key_id(key)], r.text

    return Call(actor=actor, check=check)


async def authenticate_with_key(w: World, cell: Cell) -> Call:
    if not past_guards(cell):
        return Call(json={"credential": {}})
    actor, key = await key_holder(w, cell)
    assertion = await key_assertion(w, actor, key)
    return Call(actor=actor, json={"credential": assertion}, check=signed_in_fully(actor, w))


async def remove_key(w: World, cell: Cell) -> Call:
    """own: a fresh person's key beside their app; other: the victim's key."""
    if cell.scope is Scope.OTHER:
        them = victim(w)
        return Call(
            params={"credential_id": them.credential_id},
            actor=await checked_caller(w, cell),
            unchanged=mfa_of(them.actor, w),
        )
    actor = await w.fresh_actor(cell.role, set_up=True)
    key = await add_key(w, actor)

    async def check(_: httpx.Response) -> None:
        _, status = await mfa_of(actor, w)()
        assert status["security_keys"] == [] and status["totp"], status

    return Call(params={"credential_id": key_id(key)}, actor=actor, check=check)


async def reset_mfa(w: World, cell: Cell) -> Call:
    """Allowed (admins): a fresh person's factors (own: a fresh admin's own), whose
    sessions end. Refused: the caller's own, or the standing governance person's."""
    if cell.allowed:
        own = cell.scope is Scope.OWN
        target = await w.fresh_actor(Role.ADMIN if own else Role.NONE, set_up=True)
        return Call(
            params={"user_id": target.user_id},
            actor=target if own else None,
            check=ended(target, w),
        )
    target = caller(w, cell) if cell.scope is Scope.OWN else w.actors[Role.GOVERNANCE]
    return Call(params={"user_id": target.user_id}, unchanged=mfa_of(target, w))


async def delete_user(w: World, cell: Cell) -> Call:
    """Allowed (admins): a fresh person (own: a fresh admin deletes their own account).
    Refused: the caller's own account, or someone else's."""
    if cell.allowed:
        target = await w.fresh_actor(Role.ADMIN if cell.scope is Scope.OWN else Role.NONE)
        actor = target if cell.scope is Scope.OWN else None
        return Call(params={"user_id": target.user_id}, actor=actor, check=ended(target, w))
    target = caller(w, cell) if cell.scope is Scope.OWN else w.others["person"]
    return Call(
        params={"user_id": target.user_id},
        unchanged=status_and(target, w, "/api/v1/auth/me", "user_id"),
    )


# --- identities at a provider -------------------------------------------------------------


async def providers(w: World, cell: Cell) -> Call:
    def check(r: httpx.Response) -> None:
        assert [p["name"] for p in r.json()["items"]] == [IDP_NAME], r.text

    return Call(check=check)


def identities_of(actor: Actor, w: World) -> Any:
    async def probe() -> Any:
        r = await w.http.get("/api/v1/auth/identities", headers=actor.bearer)
        return r.status_code, sorted((i["provider"], i["email"]) for i in r.json()["items"])

    return probe


async def linked_identities(w: World, cell: Cell) -> Call:
    """The standing people have none linked (the victim has)."""

    def check(r: httpx.Response) -> None:
        assert r.json()["items"] == [], r.text

    return Call(check=None if cell.role is A else check)


async def link_start(w: World, cell: Cell) -> Call:
    def check(r: httpx.Response) -> None:
        assert r.json()["url"].startswith(w.idp.issuer), r.text

    return Call(params={"provider": IDP_NAME}, check=check)


async def unlink(w: World, cell: Cell) -> Call:
    """own: a fresh person's linked identity; other: the provider only the victim linked."""
    params = {"provider": IDP_NAME}
    if cell.scope is Scope.OTHER:
        return Call(params=params, unchanged=identities_of(victim(w).actor, w))
    actor = await w.fresh_actor(cell.role)
    await link_identity(w, actor, await new_subject(w, "lnk"))

    async def check(_: httpx.Response) -> None:
        assert (await identities_of(actor, w)())[1] == [], "still linked"

    return Call(params=params, actor=actor, check=check)


async def oidc_start(w: World, cell: Cell) -> Call:
    def check(r: httpx.Response) -> None:
        assert r.headers["location"].startswith(w.idp.issuer), r.headers

    return Call(params={"provider": IDP_NAME}, cookies=True, check=check)


async def oidc_callback(w: World, cell: Cell) -> Call:
    """A new person at the provider signs in. own: the browser that started it (the
    caller's, with their session if any) comes back; other: the provider's answer
    lands in the caller's browser, which started a sign-in of its own (login CSRF)."""
    subject = await new_subject(w, "idp")
    binding, url = await started_sign_in(w)
    back = urlsplit(await sign_in_at_idp(url, subject))
    if cell.scope is Scope.OTHER:
        binding, _ = await started_sign_in(w)
    cookies = [binding] if cell.role is A else [binding, caller(w, cell).cookie_header["Cookie"]]

    async def accounts() -> Any:
        """The accounts of the provider's person (their name is the subject)."""
        r = await w.http.get("/api/v1/users", headers=w.actors[Role.ADMIN].bearer)
        return [u["user_id"] for u in r.json()["items"] if u["display_name"] == subject]

    async def check(r: httpx.Response) -> None:
        assert r.headers["location"] == "/", r.headers
        assert "jhaas_session=" in r.headers.get("set-cookie", ""), r.headers
        assert len(await accounts()) == 1, "no account made (or two)"

    return Call(
        params={"provider": IDP_NAME},
        query=dict(parse_qsl(back.query)),
        headers={"Cookie": "; ".join(cookies)},
        check=check,
        unchanged=accounts,
    )


# --- a forgotten password -------------------------------------------------------------------


async def ask_reset(w: World, cell: Cell) -> Call:
    """The same answer whether or not the account exists (this one does not)."""
    return Call(json={"username": w.name("nobody")})


async def confirm_reset(w: World, cell: Cell) -> Call:
    """A fresh person's reset link, used by whoever holds it: their sessions end."""
    person = await w.fresh_actor(Role.NONE)
    token = await reset_link(w, person)
    new_password = "n3w-" + person.person.password
    return Call(json={"token": token, "new_password": new_password}, check=ended(person, w))


# --- the pages of the second step ----------------------------------------------------------


def to_sign_in(r: httpx.Response) -> None:
    assert r.headers["location"].startswith("/signin?next="), r.headers


async def second_step_page(w: World, cell: Cell) -> Call:
    """A session owing its second factor gets the form; a stranger goes to sign in."""
    if cell.role is A:
        return Call(check=to_sign_in)
    if not past_guards(cell):
        return Call(cookies=True)
    return Call(actor=await owing_second_factor(w, cell.role), cookies=True)


async def second_step(w: World, cell: Cell) -> Call:
    """The form's post with the app's code, by a session owing its second factor."""
    form = {"code": "000000", "next": "/"}
    if cell.role is A:
        return Call(form=form, csrf_in_form=True, check=to_sign_in)
    if not cell.allowed:
        return Call(form=form, cookies=True, csrf_in_form=True)
    actor = await owing_second_factor(w, cell.role)
    form["code"] = next_code(actor.person.username)
    return Call(
        form=form, cookies=True, csrf_in_form=True, actor=actor, check=signed_in_fully(actor, w)
    )


async def setup_page(w: World, cell: Cell) -> Call:
    """The page to set up a second factor, with the browser's session cookie."""
    return Call(cookies=True, check=to_sign_in if cell.role is A else None)
