"""The world's second factors, mailed links, linked identities and API tokens:
how a person of the matrix gets each, and the standing "someone else" whose
ones the refused cells reach for (`furnish_victim`).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from authz_outside import IDP_NAME
from authz_world import Actor, Role, Victim, World
from idp_helpers import sign_in_at_idp
from webauthn_helpers import SoftAuthenticator, b64url

from gateway.account_mail import RESET_PAGE, VERIFY_PAGE
from jhaas_launcher.second_factor import APPS, STEP_SECONDS, totp_code
from jhaas_launcher.testing import eventually

AUTH = "/api/v1/auth"
OIDC_COOKIE = "jhaas_oidc"  # plain http: the unprefixed name (gateway/cookies.py)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


# --- second factors -----------------------------------------------------------------


def current_code(username: str) -> str:
    """The code `username`'s app shows now, without spending it (for someone else to type)."""
    return totp_code(APPS[username].secret, int(time.time()) // STEP_SECONDS)


def next_code(username: str) -> str:
    """A code `username` has not used yet: the app's next, else a recovery code."""
    app = APPS[username]
    return app.next_code() or app.recovery_codes.pop()


async def owing_second_factor(w: World, role: Role) -> Actor:
    """A new person of `role` with an authenticator app, signed in again: a session
    that still owes its second factor."""
    fresh = await w.fresh_actor(role, set_up=True)
    return await w.sign_in(role, fresh.person, confirm=False)


def authenticator(w: World) -> SoftAuthenticator:
    return SoftAuthenticator(origin=str(w.stack.extra_env["JHAAS_PUBLIC_URL"]))


async def add_key(w: World, actor: Actor) -> SoftAuthenticator:
    """A security key registered for `actor` (whose session it then counts as checked)."""
    key = authenticator(w)
    path = f"{AUTH}/mfa/webauthn/register"
    options = ok(await w.http.post(f"{path}/options", headers=actor.bearer))
    body = {"credential": key.register(options), "name": "Matrix key"}
    ok(await w.http.post(path, headers=actor.bearer, json=body), 201)
    return key


def key_id(key: SoftAuthenticator) -> str:
    return b64url(key.credential_id)


async def key_assertion(w: World, actor: Actor, key: SoftAuthenticator) -> dict[str, Any]:
    """`key`'s answer to a challenge of `actor`'s session."""
    path = f"{AUTH}/mfa/webauthn/authenticate/options"
    return key.authenticate(ok(await w.http.post(path, headers=actor.bearer)))


# --- mailed links -------------------------------------------------------------------


def address_of(actor: Actor) -> str:
    return f"{actor.person.username}@matrix.example"


async def mailed_token(w: World, to: str, page: str) -> str:
    """The token of the latest link to `page` mailed to `to`."""

    async def mails() -> list[str]:
        return [m.text for m in list(w.mail.inbox) if to in m.recipients and page in m.text]

    texts = await eventually(mails, lambda found: len(found) > 0, timeout=15)
    match = re.search(re.escape(page) + r"#token=([A-Za-z0-9_-]+)", texts[-1])
    assert match is not None, texts[-1]
    return match.group(1)


async def email_link(w: World, actor: Actor) -> str:
    """`actor` gives an address of theirs: the token of the link mailed to confirm it."""
    headers = {**actor.bearer, **w.elsewhere()}
    ok(await w.http.patch("/api/v1/me", headers=headers, json={"email": address_of(actor)}))
    return await mailed_token(w, address_of(actor), VERIFY_PAGE)


async def reset_link(w: World, actor: Actor) -> str:
    """`actor` confirms an address, then forgets the password: the reset link's token."""
    token = await email_link(w, actor)
    ok(await w.http.post("/api/v1/me/email/verify", headers=actor.bearer, json={"token": token}))
    body = {"username": actor.person.username}
    ok(await w.http.post(f"{AUTH}/password-reset", headers=w.elsewhere(), json=body), 202)
    return await mailed_token(w, address_of(actor), RESET_PAGE)


# --- identities at the provider -----------------------------------------------------------


async def new_subject(w: World, prefix: str) -> str:
    """A new person at the provider (its login is the subject)."""
    subject = w.name(prefix)
    claims = {"sub": subject, "email": f"{subject}@uni.example", "email_verified": True}
    await asyncio.to_thread(w.idp.set_account, {**claims, "name": subject})
    return subject


def local(url: str) -> str:
    """The path and query of a URL of the gateway's (the provider knows it by its public URL)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def link_identity(w: World, actor: Actor, subject: str) -> None:
    """`actor` links `subject` of the provider to their account, in one browser."""
    path = f"{AUTH}/identities/{IDP_NAME}/link"
    r = await w.http.post(path, headers=actor.bearer)
    url = ok(r, 201)["url"]
    back = await sign_in_at_idp(url, subject)
    cookie = f"{OIDC_COOKIE}={r.cookies[OIDC_COOKIE]}; {actor.cookie_header['Cookie']}"
    r = await w.http.get(local(back), headers={"Cookie": cookie})
    assert r.status_code == 303, r.text


async def started_sign_in(w: World) -> tuple[str, str]:
    """A browser starts signing in with the provider: its binding cookie and the
    provider's URL."""
    r = await w.http.get(f"/signin/oidc/{IDP_NAME}")
    assert r.status_code == 303, r.text
    return f"{OIDC_COOKIE}={r.cookies[OIDC_COOKIE]}", r.headers["location"]


# --- API tokens -------------------------------------------------------------------------


async def new_token(w: World, actor: Actor, roles: list[str]) -> str:
    """A personal API token of `actor`'s: its id."""
    body = {"name": w.name("token"), "roles": roles}
    made = ok(await w.http.post("/api/v1/tokens", headers=actor.bearer, json=body), 201)
    return str(made["token_id"])


# --- someone else's ---------------------------------------------------------------------


async def furnish_victim(w: World) -> Victim:
    """A participant with one of each: an identity linked, a link to confirm an
    address waiting in their mail, an API token, a security key."""
    actor = await w.sign_in(Role.NONE, await w.create_person("vic", "participant"))
    subject = await new_subject(w, "vic")
    await link_identity(w, actor, subject)
    link = await email_link(w, actor)
    token_id = await new_token(w, actor, ["participant"])
    key = await add_key(w, actor)
    return Victim(actor, key_id(key), token_id, link, subject)
