"""Accounts and sessions: the gateway's tables and their repository.

A session keeps only the SHA-256 of its token: whoever reads the database
cannot sign in with what they find there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jhaas_runtime.db import insert_for
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.model import Role

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False, default=""),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # Set for a generated password: every call but a password change is refused.
    sa.Column("password_change_required", sa.Boolean, nullable=False, default=False),
    sa.Column("email", sa.String(320), nullable=True, index=True),
    sa.Column("email_verified", sa.Boolean, nullable=False, default=False),
    # "": none chosen, the pages follow the browser and mails are in English (migration 0005).
    sa.Column("preferred_language", sa.String(16), nullable=False, default=""),
    # True while the user has a confirmed second factor (kept by the MFA code):
    # the per-request caller query reads it instead of joining the MFA tables.
    sa.Column("mfa_enrolled", sa.Boolean, nullable=False, default=False),
)

# The password hash of an account without a password (one made by an identity
# provider): never a valid argon2 hash, so no password ever matches it.
NO_PASSWORD = "!"  # noqa: S105 - a marker, not a password

user_roles = sa.Table(
    "user_roles",
    metadata,
    sa.Column(
        "user_id",
        sa.String(36),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("role", sa.String(32), primary_key=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "user_id",
        sa.String(36),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
    # Signed in with the first factor; the second is still to come.
    sa.Column("mfa_pending", sa.Boolean, nullable=False, default=False),
    # The last successful second-factor check in this session (step-up).
    sa.Column("mfa_at", UtcDateTime(), nullable=True),
    sa.Column("method", sa.String(80), nullable=False, default="password"),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(300), nullable=True),
)


# Sign-in throttling (throttle.py): the keys are HMACs, never names or addresses.
sign_in_attempts = sa.Table(
    "sign_in_attempts",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    # Attempts not given back by a success: failures, and attempts being checked.
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_at", UtcDateTime(), nullable=False, index=True),
)

known_sign_ins = sa.Table(
    "known_sign_ins",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # (account, address)
    sa.Column("seen_at", UtcDateTime(), nullable=False, index=True),
)


class UsernameTaken(Exception):
    pass


@dataclass(frozen=True, kw_only=True)
class UserRecord:
    user_id: str
    username: str
    display_name: str
    password_hash: str
    roles: tuple[Role, ...]
    disabled: bool
    created_at: datetime
    updated_at: datetime
    password_change_required: bool = False
    email: str | None = None
    email_verified: bool = False
    preferred_language: str = ""
    mfa_enrolled: bool = False

    @property
    def has_password(self) -> bool:
        return self.password_hash != NO_PASSWORD


@dataclass(frozen=True, kw_only=True)
class SessionRecord:
    session_id: str
    token_hash: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    method: str = "password"
    mfa_pending: bool = False
    mfa_at: datetime | None = None
    address: str | None = None
    user_agent: str | None = None


def _ordered(roles: set[Role] | tuple[Role, ...] | list[Role]) -> tuple[Role, ...]:
    return tuple(sorted(set(roles)))


# The principal lookup runs on every authenticated request: built once, so each
# run is a hit in SQLAlchemy's compiled-statement cache, and it selects only
# what a Caller needs (no hashes, no timestamps to convert).
def _live_caller_query(*conditions: sa.ColumnElement[bool]) -> sa.Select[tuple[object, ...]]:
    return (
        sa.select(
            sessions.c.session_id,
            users.c.user_id,
            users.c.username,
            users.c.password_change_required,
            users.c.mfa_enrolled,
            users.c.preferred_language,
            sessions.c.mfa_pending,
            sessions.c.mfa_at,
            sessions.c.created_at,
            user_roles.c.role,
        )
        .select_from(
            sessions.join(users, users.c.user_id == sessions.c.user_id).outerjoin(
                user_roles, user_roles.c.user_id == users.c.user_id
            )
        )
        .where(
            *conditions,
            sessions.c.expires_at > sa.bindparam("now"),
            users.c.disabled.is_(False),
        )
    )


# Parameters: session_id, user_id (both from a verified bearer token), now.
LIVE_CALLER_BY_SESSION = _live_caller_query(
    sessions.c.session_id == sa.bindparam("session_id"),
    sessions.c.user_id == sa.bindparam("user_id"),
)
# Parameters: token_hash (SHA-256 of the session cookie), now.
LIVE_CALLER_BY_TOKEN_HASH = _live_caller_query(sessions.c.token_hash == sa.bindparam("token_hash"))


@dataclass(frozen=True, kw_only=True)
class LiveCaller:
    """A live session and its enabled user, with the user's roles as they are now."""

    session_id: str
    user_id: str
    username: str
    roles: tuple[Role, ...]
    password_change_required: bool
    mfa_enrolled: bool
    mfa_pending: bool
    mfa_at: datetime | None
    signed_in_at: datetime
    preferred_language: str = ""


def find_live_caller(
    conn: Connection, query: sa.Select[tuple[object, ...]], params: dict[str, object]
) -> LiveCaller | None:
    """Run one of the LIVE_CALLER_* queries: None when the session or its user is gone."""
    rows = conn.execute(query, params).all()
    if not rows:
        return None
    first = rows[0]
    return LiveCaller(
        session_id=first.session_id,
        user_id=first.user_id,
        username=first.username,
        roles=_ordered([Role(row.role) for row in rows if row.role is not None]),
        password_change_required=bool(first.password_change_required),
        mfa_enrolled=bool(first.mfa_enrolled),
        mfa_pending=bool(first.mfa_pending),
        mfa_at=first.mfa_at,
        signed_in_at=first.created_at,
        preferred_language=first.preferred_language,
    )


class AccountStore:
    """Users and sessions over one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- users ---------------------------------------------------------------

    def add_user(self, user: UserRecord) -> None:
        # ON CONFLICT instead of catching the error: on PostgreSQL a failed
        # statement would abort the whole transaction. (RETURNING, because
        # psycopg reports no row count for an INSERT.)
        inserted = self.conn.scalar(
            insert_for(self.conn, users)
            .values(
                user_id=user.user_id,
                username=user.username,
                display_name=user.display_name,
                password_hash=user.password_hash,
                disabled=user.disabled,
                created_at=user.created_at,
                updated_at=user.updated_at,
                password_change_required=user.password_change_required,
                email=user.email,
                email_verified=user.email_verified,
                preferred_language=user.preferred_language,
            )
            .on_conflict_do_nothing(index_elements=["username"])
            .returning(users.c.user_id)
        )
        if inserted is None:
            raise UsernameTaken(user.username)
        self._write_roles(user.user_id, user.roles)

    def save_user(self, user: UserRecord) -> None:
        self.conn.execute(
            users.update()
            .where(users.c.user_id == user.user_id)
            .values(
                display_name=user.display_name,
                password_hash=user.password_hash,
                disabled=user.disabled,
                updated_at=user.updated_at,
                password_change_required=user.password_change_required,
                email=user.email,
                email_verified=user.email_verified,
                preferred_language=user.preferred_language,
            )
        )
        self.conn.execute(user_roles.delete().where(user_roles.c.user_id == user.user_id))
        self._write_roles(user.user_id, user.roles)

    def replace_password_hash(
        self,
        user_id: str,
        *,
        old_hash: str,
        new_hash: str,
        password_change_required: bool,
        now: datetime,
    ) -> bool:
        """Set only the password columns, and only if the stored hash is still
        `old_hash` (nobody changed the password since it was checked): a whole-row
        write could undo what an admin changed meanwhile (disabled, roles)."""
        result = self.conn.execute(
            users.update()
            .where(users.c.user_id == user_id, users.c.password_hash == old_hash)
            .values(
                password_hash=new_hash,
                password_change_required=password_change_required,
                updated_at=now,
            )
        )
        return result.rowcount == 1

    def session_alive(self, session_id: str, now: datetime) -> bool:
        found = self.conn.scalar(
            sa.select(sessions.c.session_id).where(
                sessions.c.session_id == session_id, sessions.c.expires_at > now
            )
        )
        return found is not None

    def _write_roles(self, user_id: str, roles: tuple[Role, ...]) -> None:
        if roles:
            self.conn.execute(
                user_roles.insert(), [{"user_id": user_id, "role": role.value} for role in roles]
            )

    def get_user(self, user_id: str, *, for_update: bool = False) -> UserRecord | None:
        return self._one(users.c.user_id == user_id, for_update=for_update)

    def get_user_by_username(self, username: str) -> UserRecord | None:
        return self._one(users.c.username == username)

    def _one(
        self, condition: sa.ColumnElement[bool], *, for_update: bool = False
    ) -> UserRecord | None:
        query = sa.select(users).where(condition)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return None
        roles = self._roles_of([row.user_id])
        return _user(row, roles.get(row.user_id, ()))

    def list_users(self) -> list[UserRecord]:
        rows = self.conn.execute(sa.select(users).order_by(users.c.username)).all()
        roles = self._roles_of([row.user_id for row in rows])
        return [_user(row, roles.get(row.user_id, ())) for row in rows]

    def _roles_of(self, user_ids: list[str]) -> dict[str, tuple[Role, ...]]:
        if not user_ids:
            return {}
        found: dict[str, set[Role]] = {}
        query = sa.select(user_roles).where(user_roles.c.user_id.in_(user_ids))
        for row in self.conn.execute(query).all():
            found.setdefault(row.user_id, set()).add(Role(row.role))
        return {user_id: _ordered(roles) for user_id, roles in found.items()}

    def count_active_admins(self) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(users.join(user_roles, users.c.user_id == user_roles.c.user_id))
            .where(user_roles.c.role == Role.ADMIN.value, users.c.disabled.is_(False))
        )
        return int(self.conn.scalar(query) or 0)

    # --- sessions ------------------------------------------------------------

    def add_session(self, record: SessionRecord) -> None:
        self.conn.execute(
            sessions.insert().values(
                session_id=record.session_id,
                token_hash=record.token_hash,
                user_id=record.user_id,
                created_at=record.created_at,
                expires_at=record.expires_at,
                method=record.method,
                mfa_pending=record.mfa_pending,
                mfa_at=record.mfa_at,
                address=record.address,
                user_agent=record.user_agent,
            )
        )

    def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """End one session (only if it is `user_id`'s, when given); False when none was."""
        condition = sessions.c.session_id == session_id
        if user_id is not None:
            condition = sa.and_(condition, sessions.c.user_id == user_id)
        ended = self.conn.execute(
            sessions.delete().where(condition).returning(sessions.c.session_id)
        ).first()
        return ended is not None

    def sessions_of(self, user_id: str, now: datetime) -> list[SessionRecord]:
        query = (
            sa.select(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.expires_at > now)
            .order_by(sessions.c.created_at.desc())
        )
        return [_session(row) for row in self.conn.execute(query)]

    def confirm_second_factor(self, session_id: str, now: datetime) -> bool:
        """The session's second factor was checked now: it is fully signed in, and
        step-up counts from now. False when the session has ended."""
        done = self.conn.execute(
            sessions.update()
            .where(sessions.c.session_id == session_id, sessions.c.expires_at > now)
            .values(mfa_pending=False, mfa_at=now)
            .returning(sessions.c.session_id)
        ).first()
        return done is not None

    def set_mfa_enrolled(self, user_id: str, enrolled: bool, now: datetime) -> None:
        self.conn.execute(
            users.update()
            .where(users.c.user_id == user_id)
            .values(mfa_enrolled=enrolled, updated_at=now)
        )

    def delete_sessions_of(self, user_id: str, *, keep: str | None = None) -> None:
        """End the user's sessions, but for the one named `keep`."""
        condition = sessions.c.user_id == user_id
        if keep is not None:
            condition = sa.and_(condition, sessions.c.session_id != keep)
        self.conn.execute(sessions.delete().where(condition))

    def delete_expired_sessions(self, now: datetime) -> None:
        self.conn.execute(sessions.delete().where(sessions.c.expires_at <= now))


def user_names(conn: Connection, user_ids: list[str]) -> dict[str, tuple[str, str]]:
    query = sa.select(users.c.user_id, users.c.username, users.c.display_name).where(
        users.c.user_id.in_(sa.bindparam("ids", expanding=True))
    )
    return {r.user_id: (r.username, r.display_name) for r in conn.execute(query, {"ids": user_ids})}


def _user(row: sa.Row[tuple[object, ...]], roles: tuple[Role, ...]) -> UserRecord:
    m = row._mapping
    return UserRecord(
        user_id=m["user_id"],
        username=m["username"],
        display_name=m["display_name"],
        password_hash=m["password_hash"],
        roles=roles,
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        password_change_required=bool(m["password_change_required"]),
        email=m["email"],
        email_verified=bool(m["email_verified"]),
        preferred_language=m["preferred_language"],
        mfa_enrolled=bool(m["mfa_enrolled"]),
    )


def _session(row: sa.Row[tuple[object, ...]]) -> SessionRecord:
    m = row._mapping
    return SessionRecord(
        session_id=m["session_id"],
        token_hash=m["token_hash"],
        user_id=m["user_id"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        method=m["method"],
        mfa_pending=bool(m["mfa_pending"]),
        mfa_at=m["mfa_at"],
        address=m["address"],
        user_agent=m["user_agent"],
    )
