"""Sign-ins in flight and the identities linked to accounts, over one connection.

A login in flight is found by the SHA-256 of its state and taken (deleted) in
the same statement that reads it: a callback replayed, or raced by a second
tab, finds nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store import users
from gateway.tables import identities, oidc_logins
from jhaas_runtime.db import insert_for
from jhaas_schemas.model import Role


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class PendingLogin:
    state_hash: str
    provider: str
    nonce: str
    sealed_verifier: str
    next_url: str
    link_user_id: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class IdentityRecord:
    provider: str
    subject: str
    user_id: str
    email: str | None
    created_at: datetime
    last_sign_in_at: datetime | None
    # What the provider's role mapping gave at the last sign-in (roles.py):
    # exactly these may be taken away when the mapping stops giving them.
    mapped_roles: tuple[Role, ...] = ()


_TAKE_LOGIN = (
    oidc_logins.delete()
    .where(oidc_logins.c.state_hash == sa.bindparam("state_hash"))
    .returning(*oidc_logins.c)
)


class IdentityStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- sign-ins in flight ---------------------------------------------------

    def add_login(self, login: PendingLogin) -> None:
        self.conn.execute(oidc_logins.delete().where(oidc_logins.c.expires_at <= login.created_at))
        self.conn.execute(
            oidc_logins.insert().values(
                state_hash=login.state_hash,
                provider=login.provider,
                nonce=login.nonce,
                code_verifier=login.sealed_verifier,
                next_url=login.next_url,
                link_user_id=login.link_user_id,
                created_at=login.created_at,
                expires_at=login.expires_at,
            )
        )

    def take_login(self, state_hash: str, now: datetime) -> PendingLogin | None:
        """The login for this state, once: it is gone afterwards, expired or not."""
        row = self.conn.execute(_TAKE_LOGIN, {"state_hash": state_hash}).first()
        if row is None or row.expires_at <= now:
            return None
        return PendingLogin(
            state_hash=row.state_hash,
            provider=row.provider,
            nonce=row.nonce,
            sealed_verifier=row.code_verifier,
            next_url=row.next_url,
            link_user_id=row.link_user_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    # --- identities -----------------------------------------------------------

    def get(self, provider: str, subject: str) -> IdentityRecord | None:
        query = sa.select(identities).where(
            identities.c.provider == provider, identities.c.subject == subject
        )
        row = self.conn.execute(query).first()
        return None if row is None else _identity(row)

    def of_user(self, user_id: str) -> list[IdentityRecord]:
        query = (
            sa.select(identities)
            .where(identities.c.user_id == user_id)
            .order_by(identities.c.provider, identities.c.subject)
        )
        return [_identity(row) for row in self.conn.execute(query).all()]

    def add(self, record: IdentityRecord) -> bool:
        """False when this identity is already linked (to anyone)."""
        inserted = self.conn.scalar(
            insert_for(self.conn, identities)
            .values(
                provider=record.provider,
                subject=record.subject,
                user_id=record.user_id,
                email=record.email,
                created_at=record.created_at,
                last_sign_in_at=record.last_sign_in_at,
                mapped_roles=_joined(record.mapped_roles),
            )
            .on_conflict_do_nothing(index_elements=["provider", "subject"])
            .returning(identities.c.user_id)
        )
        return inserted is not None

    def signed_in(
        self, record: IdentityRecord, email: str | None, mapped: frozenset[Role], now: datetime
    ) -> None:
        self.conn.execute(
            identities.update()
            .where(identities.c.provider == record.provider, identities.c.subject == record.subject)
            .values(email=email, last_sign_in_at=now, mapped_roles=_joined(mapped))
        )

    def remove(self, user_id: str, provider: str) -> list[IdentityRecord]:
        removed = self.conn.execute(
            identities.delete()
            .where(identities.c.user_id == user_id, identities.c.provider == provider)
            .returning(*identities.c)
        ).all()
        return [_identity(row) for row in removed]

    def account_with_email(self, email: str) -> str | None:
        """The id of an account that has this e-mail verified, as its own or a linked
        identity's (identities keep only addresses their provider verified).

        An unverified address is whatever someone typed: counting it would let
        anyone keep a stranger from signing in by typing the stranger's address.
        """
        address = email.strip().lower()
        own = sa.select(users.c.user_id).where(
            sa.func.lower(users.c.email) == address, users.c.email_verified.is_(True)
        )
        linked = sa.select(identities.c.user_id).where(sa.func.lower(identities.c.email) == address)
        found = self.conn.scalar(own.limit(1)) or self.conn.scalar(linked.limit(1))
        return str(found) if found is not None else None


def _joined(roles: frozenset[Role] | tuple[Role, ...]) -> str:
    return ",".join(sorted(role.value for role in roles))


def _identity(row: sa.Row[tuple[object, ...]]) -> IdentityRecord:
    m = row._mapping
    mapped = str(m["mapped_roles"] or "")
    return IdentityRecord(
        provider=m["provider"],
        subject=m["subject"],
        user_id=m["user_id"],
        email=m["email"],
        created_at=m["created_at"],
        last_sign_in_at=m["last_sign_in_at"],
        mapped_roles=tuple(Role(value) for value in mapped.split(",") if value),
    )
