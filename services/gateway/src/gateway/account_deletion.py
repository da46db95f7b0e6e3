"""Deleting an account, by its owner or an admin.

Refused while the person leads a course that is not over (request-svc knows):
its participants and hub still need their leader. Otherwise participant-svc
first withdraws them from every course as if they had left (their hub users
go) and ends their tutorships; then, in one unit of work, the gateway
deletes the user row (sessions, tokens, identities, second factors and links
go with it by foreign key), the hubs' OAuth grants to them, and writes
`account.deleted` with ids only. The last active admin is never deleted.
A failure after the withdrawal leaves the account in place; asking again
finishes it (the withdrawal does nothing the second time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy.engine import Connection

from gateway import audit
from gateway.oauth.store import oauth_codes, oauth_tokens
from gateway.store import AccountStore, UserRecord, users
from jhaas_runtime.db import Database
from jhaas_schemas.errors import Conflict, NotFound
from jhaas_schemas.model import Role
from jhaas_schemas.rpc import (
    HubRequestList,
    ParticipantOps,
    RequestOps,
    UserRef,
    UserWithdrawn,
)

R = TypeVar("R")
Services = Callable[[str, msgspec.Struct, type[R]], Awaitable[R]]
LAST_ADMIN = "the last active admin cannot be deleted: make another admin first"


def _is_last_admin(store: AccountStore, user: UserRecord) -> bool:
    return Role.ADMIN in user.roles and not user.disabled and store.count_active_admins() <= 1


def _check_not_last_admin(conn: Connection, user_id: str) -> UserRecord:
    store = AccountStore(conn)
    user = store.get_user(user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    if _is_last_admin(store, user):
        raise Conflict(LAST_ADMIN)
    return user


async def delete_account(
    db: Database,
    services: Services[Any],
    *,
    user_id: str,
    actor_id: str,
    address: str | None,
    now: Callable[[], datetime],
) -> None:
    """Delete `user_id` (the checks of who may are the caller's), or raise why not."""
    await db.read(_check_not_last_admin, user_id)
    ref = UserRef(user_id=user_id)
    leading: HubRequestList = await services(RequestOps.LEADING, ref, HubRequestList)
    if leading.items:
        courses = "; ".join(f"{r.spec.title!r} ({r.status})" for r in leading.items[:10])
        who = "you lead" if actor_id == user_id else "this user leads"
        raise Conflict(
            f"{who} courses that are not over: {courses}. Withdraw or cancel them, or wait "
            "until they have ended, then delete the account",
            {"courses": ", ".join(r.request_id for r in leading.items)},
        )
    withdrawn: UserWithdrawn = await services(ParticipantOps.WITHDRAW_USER, ref, UserWithdrawn)
    details: audit.Details = {
        "by_admin": actor_id != user_id,
        "participations_left": len(withdrawn.left),
        "tutorships_ended": len(withdrawn.tutor_of),
    }
    await db.write(_delete, user_id, actor_id, address, details, now())


def _delete(
    conn: Connection,
    user_id: str,
    actor_id: str,
    address: str | None,
    details: audit.Details,
    now: datetime,
) -> None:
    store = AccountStore(conn)
    user = store.get_user(user_id, for_update=True)
    if user is None:
        raise NotFound(f"no user {user_id!r}")  # deleted meanwhile
    if _is_last_admin(store, user):
        raise Conflict(LAST_ADMIN)  # another admin went meanwhile
    for table in (oauth_codes, oauth_tokens):  # no foreign key: the hubs' grants
        conn.execute(table.delete().where(table.c.user_id == user_id))
    conn.execute(users.delete().where(users.c.user_id == user_id))
    audit.record(
        conn,
        "account.deleted",
        now=now,
        actor_id=actor_id,
        subject_id=user_id,
        address=address,
        details=details,
    )
