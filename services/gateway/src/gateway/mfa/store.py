"""The second factors' rows: units of work over one connection (docs/development.md).

Every check that must happen once (a TOTP step, a recovery code, a WebAuthn
challenge, a signature count) is a single conditional statement, so that two
gateway replicas given the same code at the same instant cannot both take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store import AccountStore
from gateway.tables import mfa_recovery_codes, mfa_totp, webauthn_challenges, webauthn_credentials
from jhaas_runtime.db import insert_for

CHALLENGE_PRUNE_BATCH = 200


@dataclass(frozen=True, kw_only=True)
class TotpRecord:
    user_id: str
    sealed_secret: str
    confirmed_at: datetime | None
    last_step: int | None


@dataclass(frozen=True, kw_only=True)
class CredentialRecord:
    credential_id: str
    user_id: str
    name: str
    public_key: str
    sign_count: int
    transports: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None


# --- TOTP ----------------------------------------------------------------------

_TOTP_OF = sa.select(mfa_totp).where(mfa_totp.c.user_id == sa.bindparam("user_id"))
# The compare-and-set of a code: its step must be later than any step taken before.
_TAKE_STEP = (
    mfa_totp.update()
    .where(
        mfa_totp.c.user_id == sa.bindparam("p_user_id"),
        mfa_totp.c.confirmed_at.is_not(None),
        sa.or_(mfa_totp.c.last_step.is_(None), mfa_totp.c.last_step < sa.bindparam("p_step")),
    )
    .values(last_step=sa.bindparam("p_step"))
    .returning(mfa_totp.c.user_id)
)
_CONFIRM = (
    mfa_totp.update()
    .where(
        mfa_totp.c.user_id == sa.bindparam("p_user_id"),
        mfa_totp.c.confirmed_at.is_(None),
        mfa_totp.c.sealed_secret == sa.bindparam("p_sealed_secret"),
    )
    .values(confirmed_at=sa.bindparam("p_now"), last_step=sa.bindparam("p_step"))
    .returning(mfa_totp.c.user_id)
)


def totp_of(conn: Connection, user_id: str) -> TotpRecord | None:
    row = conn.execute(_TOTP_OF, {"user_id": user_id}).first()
    if row is None:
        return None
    return TotpRecord(
        user_id=row.user_id,
        sealed_secret=row.sealed_secret,
        confirmed_at=row.confirmed_at,
        last_step=row.last_step,
    )


def put_unconfirmed_totp(conn: Connection, user_id: str, sealed_secret: str, now: datetime) -> bool:
    """Start (or restart) an enrollment; False when a confirmed TOTP exists already."""
    conn.execute(
        mfa_totp.delete().where(mfa_totp.c.user_id == user_id, mfa_totp.c.confirmed_at.is_(None))
    )
    stored = conn.scalar(
        insert_for(conn, mfa_totp)
        .values(user_id=user_id, sealed_secret=sealed_secret, created_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"])
        .returning(mfa_totp.c.user_id)
    )
    return stored is not None


def confirm_totp(
    conn: Connection, user_id: str, sealed_secret: str, step: int, now: datetime
) -> bool:
    """Confirm the very enrollment whose secret was checked (not one started since)."""
    params = {"p_user_id": user_id, "p_sealed_secret": sealed_secret, "p_step": step, "p_now": now}
    return conn.execute(_CONFIRM, params).first() is not None


def take_totp_step(conn: Connection, user_id: str, step: int) -> bool:
    """True once per step and user: a code's step no later than the last one taken is refused."""
    return conn.execute(_TAKE_STEP, {"p_user_id": user_id, "p_step": step}).first() is not None


def delete_totp(conn: Connection, user_id: str) -> bool:
    deleted = conn.execute(
        mfa_totp.delete().where(mfa_totp.c.user_id == user_id).returning(mfa_totp.c.user_id)
    ).first()
    return deleted is not None


# --- recovery codes ------------------------------------------------------------

_USE_CODE = (
    mfa_recovery_codes.update()
    .where(
        mfa_recovery_codes.c.code_hash == sa.bindparam("p_code_hash"),
        mfa_recovery_codes.c.user_id == sa.bindparam("p_user_id"),
        mfa_recovery_codes.c.used_at.is_(None),
    )
    .values(used_at=sa.bindparam("p_now"))
    .returning(mfa_recovery_codes.c.code_hash)
)


def replace_recovery_codes(
    conn: Connection, user_id: str, code_hashes: list[str], now: datetime
) -> None:
    """The user's codes become exactly these: every earlier code stops working."""
    conn.execute(mfa_recovery_codes.delete().where(mfa_recovery_codes.c.user_id == user_id))
    conn.execute(
        mfa_recovery_codes.insert(),
        [{"code_hash": h, "user_id": user_id, "created_at": now} for h in code_hashes],
    )


def use_recovery_code(conn: Connection, user_id: str, code_hash: str, now: datetime) -> bool:
    """True once per code: the code is marked used in the same statement that finds it."""
    params = {"p_code_hash": code_hash, "p_user_id": user_id, "p_now": now}
    return conn.execute(_USE_CODE, params).first() is not None


def unused_recovery_codes(conn: Connection, user_id: str) -> int:
    query = sa.select(sa.func.count()).where(
        mfa_recovery_codes.c.user_id == user_id, mfa_recovery_codes.c.used_at.is_(None)
    )
    return int(conn.scalar(query) or 0)


# --- WebAuthn ------------------------------------------------------------------


def credentials_of(conn: Connection, user_id: str) -> list[CredentialRecord]:
    query = (
        sa.select(webauthn_credentials)
        .where(webauthn_credentials.c.user_id == user_id)
        .order_by(webauthn_credentials.c.created_at)
    )
    return [_credential(row) for row in conn.execute(query)]


def credential_of(conn: Connection, user_id: str, credential_id: str) -> CredentialRecord | None:
    """The credential, only when it is this user's."""
    row = conn.execute(
        sa.select(webauthn_credentials).where(
            webauthn_credentials.c.credential_id == credential_id,
            webauthn_credentials.c.user_id == user_id,
        )
    ).first()
    return None if row is None else _credential(row)


def add_credential(conn: Connection, record: CredentialRecord) -> bool:
    """False when the credential is registered already (to anyone)."""
    stored = conn.scalar(
        insert_for(conn, webauthn_credentials)
        .values(
            credential_id=record.credential_id,
            user_id=record.user_id,
            name=record.name,
            public_key=record.public_key,
            sign_count=record.sign_count,
            transports=",".join(record.transports),
            created_at=record.created_at,
        )
        .on_conflict_do_nothing(index_elements=["credential_id"])
        .returning(webauthn_credentials.c.credential_id)
    )
    return stored is not None


def advance_sign_count(
    conn: Connection, credential_id: str, seen: int, new: int, now: datetime
) -> bool:
    """Store the new count only if nobody else used the key since `seen` was read."""
    done = conn.execute(
        webauthn_credentials.update()
        .where(
            webauthn_credentials.c.credential_id == credential_id,
            webauthn_credentials.c.sign_count == seen,
        )
        .values(sign_count=new, last_used_at=now)
        .returning(webauthn_credentials.c.credential_id)
    ).first()
    return done is not None


def delete_credential(conn: Connection, user_id: str, credential_id: str) -> bool:
    done = conn.execute(
        webauthn_credentials.delete()
        .where(
            webauthn_credentials.c.credential_id == credential_id,
            webauthn_credentials.c.user_id == user_id,
        )
        .returning(webauthn_credentials.c.credential_id)
    ).first()
    return done is not None


def add_challenge(
    conn: Connection,
    *,
    challenge_hash: str,
    user_id: str,
    session_id: str,
    purpose: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    _prune_challenges(conn, now)
    conn.execute(
        webauthn_challenges.insert().values(
            challenge_hash=challenge_hash,
            user_id=user_id,
            session_id=session_id,
            purpose=purpose,
            created_at=now,
            expires_at=expires_at,
        )
    )


def take_challenge(
    conn: Connection,
    *,
    challenge_hash: str,
    user_id: str,
    session_id: str,
    purpose: str,
    now: datetime,
) -> bool:
    """True once: the challenge is this session's, for this purpose, unexpired; it is
    deleted by the statement that finds it."""
    taken = conn.execute(
        webauthn_challenges.delete()
        .where(
            webauthn_challenges.c.challenge_hash == challenge_hash,
            webauthn_challenges.c.user_id == user_id,
            webauthn_challenges.c.session_id == session_id,
            webauthn_challenges.c.purpose == purpose,
            webauthn_challenges.c.expires_at > now,
        )
        .returning(webauthn_challenges.c.challenge_hash)
    ).first()
    return taken is not None


def _prune_challenges(conn: Connection, now: datetime) -> None:
    stale = (
        sa.select(webauthn_challenges.c.challenge_hash)
        .where(webauthn_challenges.c.expires_at <= now)
        .limit(CHALLENGE_PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    conn.execute(
        webauthn_challenges.delete().where(
            webauthn_challenges.c.challenge_hash.in_(stale.scalar_subquery())
        )
    )


# --- the user's second factors as a whole -------------------------------------


def methods_left(conn: Connection, user_id: str) -> int:
    """Confirmed second factors: a confirmed TOTP and each security key."""
    totp = sa.select(sa.func.count()).where(
        mfa_totp.c.user_id == user_id, mfa_totp.c.confirmed_at.is_not(None)
    )
    keys = sa.select(sa.func.count()).where(webauthn_credentials.c.user_id == user_id)
    return int(conn.scalar(totp) or 0) + int(conn.scalar(keys) or 0)


def sync_enrolled(conn: Connection, user_id: str, now: datetime) -> bool:
    """Keep users.mfa_enrolled true exactly while a confirmed factor exists; without
    one, the recovery codes go too (they stand in for a factor, not for none)."""
    enrolled = methods_left(conn, user_id) > 0
    AccountStore(conn).set_mfa_enrolled(user_id, enrolled, now)
    if not enrolled:
        conn.execute(mfa_recovery_codes.delete().where(mfa_recovery_codes.c.user_id == user_id))
    return enrolled


def forget_all(conn: Connection, user_id: str, now: datetime) -> None:
    """Every second factor of the user, gone (an admin's reset)."""
    for table in (mfa_totp, webauthn_credentials, webauthn_challenges, mfa_recovery_codes):
        conn.execute(table.delete().where(table.c.user_id == user_id))
    AccountStore(conn).set_mfa_enrolled(user_id, False, now)


def _credential(row: sa.Row[tuple[object, ...]]) -> CredentialRecord:
    m = row._mapping
    transports = str(m["transports"] or "")
    return CredentialRecord(
        credential_id=m["credential_id"],
        user_id=m["user_id"],
        name=m["name"],
        public_key=m["public_key"],
        sign_count=int(m["sign_count"]),
        transports=tuple(t for t in transports.split(",") if t),
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
    )
