"""Single-use links sent by mail: a password reset, an e-mail address to confirm.

Only the SHA-256 of a link's token is stored (`account_tokens`): whoever reads
the database cannot use what they find. Using a link is one conditional
UPDATE ... RETURNING: of two uses at the same moment, on any replica, exactly
one finds the row still unused.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.tables import account_tokens
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput


class Purpose(enum.StrEnum):
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a secret
    VERIFY_EMAIL = "verify_email"


PURPOSE_WORDS = {
    Purpose.PASSWORD_RESET: "a password reset",
    Purpose.VERIFY_EMAIL: "confirming an e-mail address",
}


def new_link_token() -> str:
    return secrets.token_urlsafe(32)


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class UsedLink:
    user_id: str
    email: str | None


_USE = (
    account_tokens.update()
    .where(
        # (Not the columns' names: an UPDATE reserves those for its SET clause.)
        account_tokens.c.token_hash == sa.bindparam("hash"),
        account_tokens.c.purpose == sa.bindparam("for_purpose"),
        account_tokens.c.user_id
        == sa.func.coalesce(sa.bindparam("only_user", type_=sa.String), account_tokens.c.user_id),
        account_tokens.c.used_at.is_(None),
        account_tokens.c.expires_at > sa.bindparam("now"),
    )
    .values(used_at=sa.bindparam("now"))
    .returning(account_tokens.c.user_id, account_tokens.c.email)
)
_FIND = sa.select(account_tokens).where(account_tokens.c.token_hash == sa.bindparam("token_hash"))


def add_link(
    conn: Connection,
    *,
    token: str,
    user_id: str,
    purpose: Purpose,
    email: str | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    conn.execute(
        account_tokens.insert().values(
            token_hash=link_digest(token),
            user_id=user_id,
            purpose=purpose.value,
            email=email,
            created_at=now,
            expires_at=expires_at,
        )
    )


def find_link(conn: Connection, token: str) -> sa.Row[tuple[object, ...]] | None:
    return conn.execute(_FIND, {"token_hash": link_digest(token)}).first()


def use_link(
    conn: Connection, token: str, purpose: Purpose, now: datetime, *, user_id: str | None = None
) -> UsedLink:
    """Mark the link used and return whose it is; else raise naming why it is no good.

    With `user_id`, only that user's link is used: another account's stays unused.
    """
    params = {
        "hash": link_digest(token),
        "for_purpose": purpose.value,
        "only_user": user_id,
        "now": now,
    }
    row = conn.execute(_USE, params).first()
    if row is not None:
        return UsedLink(user_id=row.user_id, email=row.email)
    refusal = link_refusal(find_link(conn, token), purpose, now, user_id)
    raise refusal or Conflict(
        "this link was used meanwhile; ask for a new one", {"token": "was used"}
    )


def link_refusal(
    row: sa.Row[tuple[object, ...]] | None,
    purpose: Purpose,
    now: datetime,
    user_id: str | None = None,
) -> Exception | None:
    """Why the link `row` cannot be used now (an error to raise), or None when it can."""
    field = {"token": "is not valid"}
    if row is None:
        return InvalidInput("this link is not valid: copy the whole link from the mail", field)
    m = row._mapping
    if m["purpose"] != purpose.value:
        return InvalidInput(f"this link is not for {PURPOSE_WORDS[purpose]}", field)
    if user_id is not None and m["user_id"] != user_id:
        return Forbidden("this link belongs to another account: sign in to that one")
    if m["used_at"] is not None:
        return Conflict("this link was used already; ask for a new one", {"token": "was used"})
    expires_at: datetime = m["expires_at"]
    if expires_at <= now:
        return Conflict("this link has expired; ask for a new one", {"token": "has expired"})
    return None


def drop_open_links(conn: Connection, user_id: str, purpose: Purpose, now: datetime) -> None:
    """Void the user's other unused links of this purpose (one new password or address wins)."""
    conn.execute(
        account_tokens.delete().where(
            account_tokens.c.user_id == user_id,
            account_tokens.c.purpose == purpose.value,
            account_tokens.c.used_at.is_(None),
        )
    )
    # Used and expired links of anyone are history nobody needs.
    conn.execute(account_tokens.delete().where(account_tokens.c.expires_at <= now))


_PENDING_EMAIL = (
    sa.select(account_tokens.c.email)
    .where(
        account_tokens.c.user_id == sa.bindparam("user_id"),
        account_tokens.c.purpose == Purpose.VERIFY_EMAIL.value,
        account_tokens.c.used_at.is_(None),
        account_tokens.c.expires_at > sa.bindparam("now"),
    )
    .order_by(account_tokens.c.created_at.desc())
    .limit(1)
)


def pending_email(conn: Connection, user_id: str, now: datetime) -> str | None:
    found: str | None = conn.scalar(_PENDING_EMAIL, {"user_id": user_id, "now": now})
    return found
