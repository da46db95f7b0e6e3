"""Personal API tokens: for a person's scripts, scoped, expiring, revocable.

A token reads `jhaas_pat_<random>` and is shown once; only its SHA-256 is
kept. It carries at most the roles its owner held when it was made, and on
every request only those the owner still holds: a role taken from the owner
is gone from their tokens at once. It reaches no session, MFA or token
management route (`guards.requires_session`), and never counts as a recent
second-factor check.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway import audit
from gateway.accounts import Caller, Clock
from gateway.self_schemas import TokenInfo
from gateway.store import user_roles, users
from gateway.tables import api_tokens
from jhaas_runtime.db import Database
from jhaas_schemas.errors import InvalidInput, NotFound
from jhaas_schemas.model import Role

PREFIX = "jhaas_pat_"
# last_used_at is written at most this often per token: not a write per request.
USE_RECORDED_EVERY = timedelta(minutes=1)


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRefused(Exception):
    """The token cannot be used; the message says why (for a 401)."""


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    token_id: str
    user_id: str
    name: str
    roles: tuple[Role, ...]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


def _roles(text: str) -> tuple[Role, ...]:
    return tuple(sorted({Role(part) for part in text.split(",") if part}))


def _record(row: sa.Row[tuple[object, ...]]) -> TokenRecord:
    m = row._mapping
    return TokenRecord(
        token_id=m["token_id"],
        user_id=m["user_id"],
        name=m["name"],
        roles=_roles(m["roles"]),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


# Run on every request that carries a personal token: one statement, built once.
_CALLER_BY_TOKEN = (
    sa.select(
        api_tokens.c.token_id,
        api_tokens.c.roles.label("token_roles"),
        api_tokens.c.expires_at,
        api_tokens.c.revoked_at,
        api_tokens.c.last_used_at,
        users.c.user_id,
        users.c.username,
        users.c.disabled,
        users.c.password_change_required,
        users.c.mfa_enrolled,
        user_roles.c.role,
    )
    .select_from(
        api_tokens.join(users, users.c.user_id == api_tokens.c.user_id).outerjoin(
            user_roles, user_roles.c.user_id == users.c.user_id
        )
    )
    .where(api_tokens.c.token_hash == sa.bindparam("token_hash"))
)
_RECORD_USE = (
    api_tokens.update()
    .where(
        api_tokens.c.token_id == sa.bindparam("used_token"),
        sa.or_(
            api_tokens.c.last_used_at.is_(None),
            api_tokens.c.last_used_at < sa.bindparam("stale_before"),
        ),
    )
    .values(last_used_at=sa.bindparam("now"))
)
_OF_USER = (
    sa.select(api_tokens)
    .where(api_tokens.c.user_id == sa.bindparam("user_id"))
    .order_by(api_tokens.c.created_at.desc(), api_tokens.c.token_id)
)


def token_info(record: TokenRecord) -> TokenInfo:
    return TokenInfo(
        token_id=record.token_id,
        name=record.name,
        roles=list(record.roles),
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
    )


def tokens_of(conn: Connection, user_id: str) -> list[TokenRecord]:
    return [_record(row) for row in conn.execute(_OF_USER, {"user_id": user_id})]


class PersonalTokens:
    def __init__(self, db: Database, *, max_days: int, clock: Clock) -> None:
        self.db = db
        self.max_days = max_days
        self.clock = clock

    async def caller_for(self, token: str) -> Caller:
        """The caller a personal token stands for, or TokenRefused saying why not."""
        now = self.clock()
        rows = await self.db.lookup(
            lambda conn: conn.execute(_CALLER_BY_TOKEN, {"token_hash": token_digest(token)}).all()
        )
        if not rows:
            raise TokenRefused("this personal API token is not known; make a new one")
        first = rows[0]
        if first.revoked_at is not None:
            raise TokenRefused("this personal API token was revoked")
        if first.expires_at <= now:
            raise TokenRefused(
                f"this personal API token expired at {first.expires_at.isoformat()}; make a new one"
            )
        if first.disabled:
            raise TokenRefused("this account is disabled; ask an administrator")
        if first.last_used_at is None or now - first.last_used_at >= USE_RECORDED_EVERY:
            params = {
                "used_token": first.token_id,
                "now": now,
                "stale_before": now - USE_RECORDED_EVERY,
            }
            await self.db.write(lambda conn: conn.execute(_RECORD_USE, params))
        held = {Role(row.role) for row in rows if row.role is not None}
        return Caller(
            user_id=first.user_id,
            username=first.username,
            roles=tuple(sorted(held.intersection(_roles(first.token_roles)))),
            session_id="",  # no session: nothing that needs one accepts a token
            password_change_required=bool(first.password_change_required),
            mfa_enrolled=bool(first.mfa_enrolled),
            api_token_id=first.token_id,
        )

    async def issue(
        self,
        caller: Caller,
        *,
        name: str,
        roles: list[Role],
        days: int | None,
        address: str | None,
    ) -> tuple[TokenRecord, str]:
        """A new token of the caller's (roles they hold now) and its secret, shown once."""
        beyond = sorted(set(roles) - set(caller.roles))
        if beyond:
            held = ", ".join(caller.roles) or "none"
            problem = f"you do not hold {', '.join(beyond)} (you hold: {held})"
            raise InvalidInput(
                f"a token can only carry your own roles: {problem}", {"roles": problem}
            )
        days = self.max_days if days is None else days
        if days > self.max_days:
            problem = f"must be at most {self.max_days} (JHAAS_API_TOKEN_MAX_DAYS)"
            raise InvalidInput(f"expires_in_days {problem}", {"expires_in_days": problem})
        now = self.clock()
        token = new_token()
        record = TokenRecord(
            token_id=str(uuid.uuid4()),
            user_id=caller.user_id,
            name=name,
            roles=tuple(sorted(set(roles))),
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        await self.db.write(_add, record, token_digest(token), address)
        return record, token

    async def list(self, user_id: str) -> list[TokenRecord]:
        return await self.db.read(tokens_of, user_id)

    async def revoke(self, caller: Caller, token_id: str, address: str | None) -> None:
        """Revoke one of the caller's tokens; another user's id is unknown (404)."""
        now = self.clock()
        if not await self.db.write(_revoke, caller.user_id, token_id, address, now):
            raise NotFound(f"you have no API token {token_id[:64]!r}")


def _add(conn: Connection, record: TokenRecord, token_hash: str, address: str | None) -> None:
    conn.execute(
        api_tokens.insert().values(
            token_id=record.token_id,
            user_id=record.user_id,
            name=record.name,
            token_hash=token_hash,
            roles=",".join(record.roles),
            created_at=record.created_at,
            expires_at=record.expires_at,
        )
    )
    audit.record(
        conn,
        "token.issued",
        now=record.created_at,
        actor_id=record.user_id,
        subject_id=record.user_id,
        address=address,
        details={
            "token_id": record.token_id,
            "roles": list(record.roles),
            "expires_at": record.expires_at.isoformat(),
        },
    )


def _revoke(
    conn: Connection, user_id: str, token_id: str, address: str | None, now: datetime
) -> bool:
    owned = conn.execute(
        sa.select(api_tokens.c.revoked_at).where(
            api_tokens.c.token_id == token_id, api_tokens.c.user_id == user_id
        )
    ).first()
    if owned is None:
        return False
    if owned.revoked_at is None:  # revoking twice is no second event
        conn.execute(
            api_tokens.update()
            .where(api_tokens.c.token_id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        audit.record(
            conn,
            "token.revoked",
            now=now,
            actor_id=user_id,
            subject_id=user_id,
            address=address,
            details={"token_id": token_id},
        )
    return True
