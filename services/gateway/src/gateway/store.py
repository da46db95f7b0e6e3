"""Accounts and sessions: the gateway's tables and their repository.

A session keeps only the SHA-256 of its token: whoever reads the database
cannot sign in with what they find there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

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
)

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


@dataclass(frozen=True, kw_only=True)
class SessionRecord:
    session_id: str
    token_hash: str
    user_id: str
    created_at: datetime
    expires_at: datetime


def _ordered(roles: set[Role] | tuple[Role, ...] | list[Role]) -> tuple[Role, ...]:
    return tuple(sorted(set(roles)))


class AccountStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- users ---------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    users.insert().values(
                        user_id=user.user_id,
                        username=user.username,
                        display_name=user.display_name,
                        password_hash=user.password_hash,
                        disabled=user.disabled,
                        created_at=user.created_at,
                        updated_at=user.updated_at,
                        password_change_required=user.password_change_required,
                    )
                )
        except IntegrityError:
            raise UsernameTaken(user.username) from None
        await self._write_roles(user.user_id, user.roles)

    async def save_user(self, user: UserRecord) -> None:
        await self.session.execute(
            users.update()
            .where(users.c.user_id == user.user_id)
            .values(
                display_name=user.display_name,
                password_hash=user.password_hash,
                disabled=user.disabled,
                updated_at=user.updated_at,
                password_change_required=user.password_change_required,
            )
        )
        await self.session.execute(user_roles.delete().where(user_roles.c.user_id == user.user_id))
        await self._write_roles(user.user_id, user.roles)

    async def replace_password_hash(
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
        result = await self.session.execute(
            users.update()
            .where(users.c.user_id == user_id, users.c.password_hash == old_hash)
            .values(
                password_hash=new_hash,
                password_change_required=password_change_required,
                updated_at=now,
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]  # CursorResult

    async def session_alive(self, session_id: str, now: datetime) -> bool:
        found = await self.session.scalar(
            sa.select(sessions.c.session_id).where(
                sessions.c.session_id == session_id, sessions.c.expires_at > now
            )
        )
        return found is not None

    async def _write_roles(self, user_id: str, roles: tuple[Role, ...]) -> None:
        if roles:
            await self.session.execute(
                user_roles.insert(), [{"user_id": user_id, "role": role.value} for role in roles]
            )

    async def get_user(self, user_id: str, *, for_update: bool = False) -> UserRecord | None:
        return await self._one(users.c.user_id == user_id, for_update=for_update)

    async def get_user_by_username(self, username: str) -> UserRecord | None:
        return await self._one(users.c.username == username)

    async def _one(
        self, condition: sa.ColumnElement[bool], *, for_update: bool = False
    ) -> UserRecord | None:
        query = sa.select(users).where(condition)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        roles = await self._roles_of([row.user_id])
        return _user(row, roles.get(row.user_id, ()))

    async def list_users(self) -> list[UserRecord]:
        rows = (await self.session.execute(sa.select(users).order_by(users.c.username))).all()
        roles = await self._roles_of([row.user_id for row in rows])
        return [_user(row, roles.get(row.user_id, ())) for row in rows]

    async def _roles_of(self, user_ids: list[str]) -> dict[str, tuple[Role, ...]]:
        if not user_ids:
            return {}
        found: dict[str, set[Role]] = {}
        query = sa.select(user_roles).where(user_roles.c.user_id.in_(user_ids))
        for row in (await self.session.execute(query)).all():
            found.setdefault(row.user_id, set()).add(Role(row.role))
        return {user_id: _ordered(roles) for user_id, roles in found.items()}

    async def count_active_admins(self) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(users.join(user_roles, users.c.user_id == user_roles.c.user_id))
            .where(user_roles.c.role == Role.ADMIN.value, users.c.disabled.is_(False))
        )
        return int(await self.session.scalar(query) or 0)

    # --- sessions ------------------------------------------------------------

    async def add_session(self, record: SessionRecord) -> None:
        await self.session.execute(
            sessions.insert().values(
                session_id=record.session_id,
                token_hash=record.token_hash,
                user_id=record.user_id,
                created_at=record.created_at,
                expires_at=record.expires_at,
            )
        )

    async def live_caller(
        self, condition: sa.ColumnElement[bool], now: datetime
    ) -> tuple[SessionRecord, UserRecord] | None:
        """The session matching `condition` and its enabled user, in one query
        (it runs on every authenticated request); None when either is gone."""
        query = (
            sa.select(sessions, users, user_roles.c.role)
            .join(users, users.c.user_id == sessions.c.user_id)
            .outerjoin(user_roles, user_roles.c.user_id == users.c.user_id)
            .where(condition, sessions.c.expires_at > now, users.c.disabled.is_(False))
        )
        rows = (await self.session.execute(query)).all()
        if not rows:
            return None
        first = rows[0]
        record = SessionRecord(
            session_id=first.session_id,
            token_hash=first.token_hash,
            user_id=first.user_id,
            created_at=first.created_at,
            expires_at=first.expires_at,
        )
        roles = _ordered([Role(row.role) for row in rows if row.role is not None])
        return record, _user(first, roles)

    async def delete_session(self, session_id: str) -> None:
        await self.session.execute(sessions.delete().where(sessions.c.session_id == session_id))

    async def delete_sessions_of(self, user_id: str, *, keep: str | None = None) -> None:
        """End the user's sessions, but for the one named `keep`."""
        condition = sessions.c.user_id == user_id
        if keep is not None:
            condition = sa.and_(condition, sessions.c.session_id != keep)
        await self.session.execute(sessions.delete().where(condition))

    async def delete_expired_sessions(self, now: datetime) -> None:
        await self.session.execute(sessions.delete().where(sessions.c.expires_at <= now))


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
    )
