"""The OAuth provider's tables and units of work: codes, access tokens, signing keys.

Codes and access tokens are kept only as SHA-256 hashes: whoever reads the
database cannot redeem or replay what they find there. Each row names the
course (request_id) and the person, so a removal can revoke exactly what the
gateway issued to that person for that course's hub.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store import metadata
from jhaas_runtime.db import insert_for
from jhaas_runtime.types import UtcDateTime

oauth_codes = sa.Table(
    "oauth_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("redirect_uri", sa.String(2000), nullable=False),
    sa.Column("scope", sa.String(200), nullable=False),
    sa.Column("nonce", sa.String(255), nullable=True),
    sa.Column("code_challenge", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
    # Set by the one exchange that redeems it; a second one finds it set.
    sa.Column("used_at", UtcDateTime(), nullable=True),
    sa.Index("ix_oauth_codes_user_course", "user_id", "request_id"),
)

oauth_tokens = sa.Table(
    "oauth_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=True, index=True),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("scope", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
    sa.Index("ix_oauth_tokens_user_course", "user_id", "request_id"),
)

oauth_signing_keys = sa.Table(
    "oauth_signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    # 1, 2, 3...: unique, so two replicas rotating at once make one key, not two.
    sa.Column("generation", sa.Integer, nullable=False, unique=True),
    sa.Column("public_jwk", sa.Text, nullable=False),
    sa.Column("sealed_private_key", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # When its successor was made: it signs nothing after, and is published
    # until every ID token it signed has expired.
    sa.Column("retired_at", UtcDateTime(), nullable=True),
)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class CodeRecord:
    code_hash: str
    client_id: str
    request_id: str
    user_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    # What Authlib asks of a code (its AuthorizationCodeMixin).
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> None:
        return None

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    token_hash: str
    code_hash: str | None
    client_id: str
    request_id: str
    user_id: str
    scope: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class KeyRecord:
    kid: str
    generation: int
    public_jwk: str
    sealed_private_key: str
    created_at: datetime
    retired_at: datetime | None


def add_code(conn: Connection, code: CodeRecord, keep_used_for: timedelta) -> None:
    # Housekeeping rides along with issuing, as sessions are purged at sign-in.
    purge_expired(conn, code.created_at, keep_used_for)
    conn.execute(oauth_codes.insert().values(**_columns(code)))


def redeem_code(
    conn: Connection, code_hash: str, client_id: str, now: datetime
) -> tuple[CodeRecord | None, bool]:
    """Mark the client's code used: (its record, whether THIS call redeemed it).

    A code already used, or of another client, is not redeemed; a used one of
    this client revokes every token issued from it (RFC 6749, 4.1.2).
    """
    row = conn.execute(
        sa.select(oauth_codes).where(
            oauth_codes.c.code_hash == code_hash, oauth_codes.c.client_id == client_id
        )
    ).first()
    if row is None:
        return None, False
    record = CodeRecord(**row._mapping)
    claimed = conn.execute(
        oauth_codes.update()
        .where(oauth_codes.c.code_hash == code_hash, oauth_codes.c.used_at.is_(None))
        .values(used_at=now)
        .returning(oauth_codes.c.code_hash)
    ).first()
    if claimed is None:
        conn.execute(oauth_tokens.delete().where(oauth_tokens.c.code_hash == code_hash))
        return record, False
    return record, True


def nonce_used(conn: Connection, client_id: str, nonce: str) -> bool:
    found = conn.scalar(
        sa.select(oauth_codes.c.code_hash)
        .where(oauth_codes.c.client_id == client_id, oauth_codes.c.nonce == nonce)
        .limit(1)
    )
    return found is not None


def add_token(conn: Connection, token: TokenRecord) -> None:
    conn.execute(oauth_tokens.insert().values(**_columns(token)))


def live_token(conn: Connection, token_hash: str, now: datetime) -> TokenRecord | None:
    row = conn.execute(
        sa.select(oauth_tokens).where(
            oauth_tokens.c.token_hash == token_hash, oauth_tokens.c.expires_at > now
        )
    ).first()
    return None if row is None else TokenRecord(**row._mapping)


def delete_grants(conn: Connection, user_id: str, request_id: str) -> int:
    """Every code and token of this person for this course's hub; how many went."""
    gone = 0
    for table in (oauth_codes, oauth_tokens):
        result = conn.execute(
            table.delete().where(table.c.user_id == user_id, table.c.request_id == request_id)
        )
        gone += max(result.rowcount, 0)
    return gone


def purge_expired(conn: Connection, now: datetime, keep_used_for: timedelta) -> None:
    # A used code is kept while tokens issued from it may live, so that a
    # replayed code still revokes them.
    conn.execute(oauth_codes.delete().where(oauth_codes.c.expires_at <= now - keep_used_for))
    conn.execute(oauth_tokens.delete().where(oauth_tokens.c.expires_at <= now))


# --- signing keys -------------------------------------------------------------


def signing_keys(conn: Connection) -> list[KeyRecord]:
    """Every stored key, newest first."""
    query = sa.select(oauth_signing_keys).order_by(oauth_signing_keys.c.generation.desc())
    return [KeyRecord(**row._mapping) for row in conn.execute(query).all()]


def add_signing_key(conn: Connection, key: KeyRecord, published_for: timedelta) -> bool:
    """Store `key` as the successor of generation - 1; False when another
    replica made that successor first (then nothing changes)."""
    inserted = conn.scalar(
        insert_for(conn, oauth_signing_keys)
        .values(**_columns(key))
        .on_conflict_do_nothing(index_elements=["generation"])
        .returning(oauth_signing_keys.c.kid)
    )
    if inserted is None:
        return False
    conn.execute(
        oauth_signing_keys.update()
        .where(
            oauth_signing_keys.c.generation < key.generation,
            oauth_signing_keys.c.retired_at.is_(None),
        )
        .values(retired_at=key.created_at)
    )
    conn.execute(
        oauth_signing_keys.delete().where(
            oauth_signing_keys.c.retired_at <= key.created_at - published_for
        )
    )
    return True


def _columns(record: CodeRecord | TokenRecord | KeyRecord) -> dict[str, object]:
    return dict(record.__dict__)
