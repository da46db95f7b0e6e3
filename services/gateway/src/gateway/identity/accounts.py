"""The accounts side of a provider's sign-in, each a unit of work: find or make the
account, keep its mapped roles up to date, link and unlink identities."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Connection

from gateway.audit import Details, record
from gateway.identity.client import VerifiedIdentity
from gateway.identity.errors import CallbackRefused
from gateway.identity.roles import numbered, username_candidates
from gateway.identity.store import IdentityRecord, IdentityStore
from gateway.store import NO_PASSWORD, AccountStore, UsernameTaken, UserRecord
from jhaas_schemas.errors import Conflict, NotFound
from jhaas_schemas.model import Role

MAX_USERNAME_TRIES = 50


def account_for(
    conn: Connection, identity: VerifiedIdentity, mapped: frozenset[Role], now: datetime
) -> UserRecord:
    """The identity's account, its roles brought up to date; or a new account."""
    identities, accounts = IdentityStore(conn), AccountStore(conn)
    known = identities.get(identity.provider, identity.subject)
    if known is None:
        return _new_account(conn, identity, mapped, now)
    user = accounts.get_user(known.user_id, for_update=True)
    if user is None or user.disabled:
        raise CallbackRefused(
            403, "this account is disabled; ask an administrator", "disabled", user_id=known.user_id
        )
    user = _refresh_roles(conn, user, known, mapped, now)
    identities.signed_in(known, identity.verified_email, mapped, now)
    return user


def _refresh_roles(
    conn: Connection,
    user: UserRecord,
    known: IdentityRecord,
    mapped: frozenset[Role],
    now: datetime,
) -> UserRecord:
    before = set(user.roles)
    taken = set(known.mapped_roles) - mapped
    roles = (before - taken) | mapped
    accounts = AccountStore(conn)
    if Role.ADMIN in taken and Role.ADMIN in before and accounts.count_active_admins() <= 1:
        roles.add(Role.ADMIN)  # never leave the installation without an admin
    if not roles:
        roles = {Role.PARTICIPANT}
    if roles == before:
        return user
    changed = replace(user, roles=tuple(sorted(roles)), updated_at=now)
    accounts.save_user(changed)
    record(
        conn,
        "user.roles_changed",
        subject_id=user.user_id,
        details={
            "added": _values(roles - before),
            "removed": _values(before - roles),
            "by": f"oidc:{known.provider}",
        },
        now=now,
    )
    return changed


def _new_account(
    conn: Connection, identity: VerifiedIdentity, mapped: frozenset[Role], now: datetime
) -> UserRecord:
    identities, accounts = IdentityStore(conn), AccountStore(conn)
    if identity.email and identities.account_with_email(identity.email) is not None:
        # Never merged silently: the person links this provider from the account.
        raise CallbackRefused(
            409,
            "an account with this e-mail address exists already: sign in to it and link this "
            "provider from your account",
            "email_in_use",
        )
    user = _add_user_with_free_name(accounts, identity, set(mapped) or {Role.PARTICIPANT}, now)
    added = identities.add(
        IdentityRecord(
            provider=identity.provider,
            subject=identity.subject,
            user_id=user.user_id,
            email=identity.verified_email,
            created_at=now,
            last_sign_in_at=now,
            mapped_roles=tuple(sorted(mapped)),
        )
    )
    if not added:  # the same person's other tab made the account first: roll this one back
        raise CallbackRefused(409, "you signed in at the same moment elsewhere; try again", "race")
    details: Details = {"provider": identity.provider, "roles": _values(user.roles)}
    record(conn, "user.created", subject_id=user.user_id, details=details, now=now)
    record(conn, "identity.created_account", subject_id=user.user_id, details=details, now=now)
    return user


def _add_user_with_free_name(
    accounts: AccountStore, identity: VerifiedIdentity, roles: set[Role], now: datetime
) -> UserRecord:
    display_name = identity.claims.get("name")
    for name in _names(identity):
        user = UserRecord(
            user_id=str(uuid.uuid4()),
            username=name,
            display_name=display_name[:200] if isinstance(display_name, str) else "",
            password_hash=NO_PASSWORD,
            roles=tuple(sorted(roles)),
            disabled=False,
            created_at=now,
            updated_at=now,
            email=identity.email,
            email_verified=identity.email_verified,
        )
        try:
            accounts.add_user(user)
        except UsernameTaken:
            continue
        return user
    raise CallbackRefused(409, "no free username could be made; ask an administrator", "username")


def _names(identity: VerifiedIdentity) -> list[str]:
    candidates = list(username_candidates(identity.claims))
    numbered_names = [
        numbered(candidates[0], number) for number in range(2, MAX_USERNAME_TRIES + 2)
    ]
    return [*candidates, *numbered_names]


def link_identity(
    conn: Connection, user_id: str, identity: VerifiedIdentity, now: datetime
) -> None:
    identities = IdentityStore(conn)
    known = identities.get(identity.provider, identity.subject)
    if known is not None and known.user_id != user_id:
        raise CallbackRefused(
            409, "this identity belongs to another account already", "link_identity_taken"
        )
    if known is not None:
        return  # linked already: nothing changes
    if any(linked.provider == identity.provider for linked in identities.of_user(user_id)):
        raise CallbackRefused(
            409,
            "your account is linked to another identity at this provider; unlink it first",
            "link_provider_taken",
        )
    identities.add(
        IdentityRecord(
            provider=identity.provider,
            subject=identity.subject,
            user_id=user_id,
            email=identity.verified_email,
            created_at=now,
            last_sign_in_at=None,
        )
    )
    details = {"provider": identity.provider}
    record(conn, "identity.linked", actor_id=user_id, subject_id=user_id, details=details, now=now)


def unlink(conn: Connection, user_id: str, provider: str, now: datetime) -> None:
    user = AccountStore(conn).get_user(user_id, for_update=True)  # one unlink at a time
    identities = IdentityStore(conn)
    linked = identities.of_user(user_id)
    if user is None or not any(record.provider == provider for record in linked):
        raise NotFound(f"your account is not linked to {provider[:64]!r}")
    others = [record for record in linked if record.provider != provider]
    if not user.has_password and not others:
        raise Conflict(
            f"{provider!r} is the only way to sign in to your account: set a password or "
            "link another provider first",
            {"provider": "is the last way to sign in"},
        )
    identities.remove(user_id, provider)
    details = {"provider": provider}
    record(
        conn, "identity.unlinked", actor_id=user_id, subject_id=user_id, details=details, now=now
    )


def _values(roles: Iterable[Role]) -> list[str]:
    return sorted(role.value for role in roles)
