"""Local accounts and sign-in sessions: the gateway's own small domain.

Password hashing is slow on purpose, so it runs in a worker thread and the
event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from gateway.auth import Passwords, TokenClaims, new_session_token, session_token_digest
from gateway.password_rules import password_problem
from gateway.settings import INITIAL_ADMIN_PASSWORD_FILE
from gateway.store import AccountStore, SessionRecord, UsernameTaken, UserRecord, sessions
from jhaas_runtime.db import Database
from jhaas_runtime.files import write_private_file
from jhaas_runtime.logs import get_logger
from jhaas_schemas.errors import Conflict, InvalidInput, NotFound
from jhaas_schemas.model import Principal, Role

log = get_logger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, kw_only=True)
class Caller:
    """The authenticated user of one HTTP request."""

    user_id: str
    username: str
    roles: tuple[Role, ...]
    session_id: str
    password_change_required: bool = False

    @property
    def principal(self) -> Principal:
        return Principal(user_id=self.user_id, username=self.username, roles=self.roles)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    user: UserRecord
    session_id: str
    session_token: str
    expires_at: datetime


def _require_user_id(user_id: str) -> None:
    """User ids are UUIDs; anything else (a NUL, say, which PostgreSQL cannot
    even compare) names no user and never reaches the database."""
    try:
        valid = str(uuid.UUID(user_id)) == user_id
    except ValueError:
        valid = False
    if not valid:
        raise NotFound(f"no user {user_id[:64]!r}")


class SignInRefused(Exception):
    """Wrong credentials or a disabled account; the message is safe to show."""


WRONG_CREDENTIALS = "wrong username or password"


class WrongPassword(Exception):
    """The current password given for a change is not the user's."""


class SignInEnded(Exception):
    """The session ended or the account was disabled while a change was under way."""


def require_good_password(password: str, username: str, field: str = "password") -> None:
    problem = password_problem(password, username)
    if problem is not None:
        raise InvalidInput(f"the {field.replace('_', ' ')} {problem}", {field: problem})


def require_new_password(current: str, new: str, username: str) -> None:
    require_good_password(new, username, "new_password")
    if new == current:
        problem = "must differ from the current password"
        raise InvalidInput(f"the new password {problem}", {"new_password": problem})


class Accounts:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        *,
        session_ttl: timedelta,
        clock: Clock = utcnow,
        initial_password_file: Path | None = None,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.session_ttl = session_ttl
        self.clock = clock
        self.initial_password_file = initial_password_file

    # --- sign-in -------------------------------------------------------------

    async def sign_in(self, username: str, password: str) -> SignedIn:
        async with self.db.reading() as session:
            user = await AccountStore(session).get_user_by_username(username)
        stored = user.password_hash if user else None
        if not await asyncio.to_thread(self.passwords.verify, stored, password) or user is None:
            raise SignInRefused(WRONG_CREDENTIALS)
        if user.disabled:
            raise SignInRefused("this account is disabled; ask an administrator")
        rehashed = None
        if self.passwords.needs_rehash(user.password_hash):
            rehashed = await asyncio.to_thread(self.passwords.hash, password)
        now = self.clock()
        token = new_session_token()
        record = SessionRecord(
            session_id=str(uuid.uuid4()),
            token_hash=session_token_digest(token),
            user_id=user.user_id,
            created_at=now,
            expires_at=now + self.session_ttl,
        )
        async with self.db.transaction() as session:
            store = AccountStore(session)
            await store.delete_expired_sessions(now)
            await store.add_session(record)
            if rehashed is not None and await store.replace_password_hash(
                user.user_id,
                old_hash=user.password_hash,
                new_hash=rehashed,
                password_change_required=user.password_change_required,
                now=now,
            ):
                user = replace(user, password_hash=rehashed, updated_at=now)
        return SignedIn(
            user=user,
            session_id=record.session_id,
            session_token=token,
            expires_at=record.expires_at,
        )

    async def caller_for_session_token(self, token: str) -> Caller | None:
        return await self._live_caller(sessions.c.token_hash == session_token_digest(token))

    async def caller_for_token(self, claims: TokenClaims) -> Caller | None:
        """The caller of a verified bearer token while its session lives and its user is enabled."""
        caller = await self._live_caller(sessions.c.session_id == claims.session_id)
        return caller if caller is not None and caller.user_id == claims.user_id else None

    async def _live_caller(self, condition: sa.ColumnElement[bool]) -> Caller | None:
        async with self.db.reading() as session:
            found = await AccountStore(session).live_caller(condition, self.clock())
        if found is None:
            return None
        record, user = found
        # Roles come from the account as it is now: a revoked role ends at once.
        return Caller(
            user_id=user.user_id,
            username=user.username,
            roles=user.roles,
            session_id=record.session_id,
            password_change_required=user.password_change_required,
        )

    async def change_password(self, caller: Caller, current: str, new: str) -> UserRecord:
        """Replace the caller's password; every other session of theirs ends.

        The caller checks the new password's rules first (`require_new_password`),
        and counts the attempt with the sign-in throttle.
        The generated first-admin password, once replaced, is deleted from disk.
        """
        user = await self.get_user(caller.user_id)
        if not await asyncio.to_thread(self.passwords.verify, user.password_hash, current):
            raise WrongPassword
        new_hash = await asyncio.to_thread(self.passwords.hash, new)
        now = self.clock()
        # The hashing took a while: decide on the row as it is now, under its lock,
        # and write only the password (an admin may have disabled the account or
        # changed its roles meanwhile; that must stand).
        async with self.db.transaction() as session:
            store = AccountStore(session)
            current_user = await store.get_user(user.user_id, for_update=True)
            if (
                current_user is None
                or current_user.disabled
                or not await store.session_alive(caller.session_id, now)
            ):
                raise SignInEnded
            if not await store.replace_password_hash(
                user.user_id,
                old_hash=user.password_hash,
                new_hash=new_hash,
                password_change_required=False,
                now=now,
            ):
                raise Conflict(
                    "the password was changed meanwhile; sign in again with the new one",
                    {"current_password": "is no longer the password"},
                )
            await store.delete_sessions_of(user.user_id, keep=caller.session_id)
        changed = replace(
            current_user, password_hash=new_hash, password_change_required=False, updated_at=now
        )
        self._forget_initial_password(current)
        log.info("password changed", username=user.username)
        return changed

    def _forget_initial_password(self, old_password: str) -> None:
        path = self.initial_password_file
        if path is None or not path.exists():
            return
        if path.read_text().strip() == old_password:
            path.unlink(missing_ok=True)
            log.info("initial admin password file deleted", path=str(path))

    async def end_session(self, session_id: str) -> None:
        async with self.db.transaction() as session:
            await AccountStore(session).delete_session(session_id)

    # --- users ---------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRecord:
        _require_user_id(user_id)
        async with self.db.reading() as session:
            user = await AccountStore(session).get_user(user_id)
        if user is None:
            raise NotFound(f"no user {user_id!r}")
        return user

    async def list_users(self) -> list[UserRecord]:
        async with self.db.reading() as session:
            return await AccountStore(session).list_users()

    async def create_user(
        self,
        *,
        username: str,
        password: str,
        roles: tuple[Role, ...],
        display_name: str = "",
        password_change_required: bool = False,
    ) -> UserRecord:
        require_good_password(password, username)
        password_hash = await asyncio.to_thread(self.passwords.hash, password)
        now = self.clock()
        user = UserRecord(
            user_id=str(uuid.uuid4()),
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            roles=tuple(sorted(set(roles))),
            disabled=False,
            created_at=now,
            updated_at=now,
            password_change_required=password_change_required,
        )
        try:
            async with self.db.transaction() as session:
                await AccountStore(session).add_user(user)
        except UsernameTaken:
            raise Conflict(
                f"the username {username!r} is taken", {"username": "is taken"}
            ) from None
        return user

    async def update_user(
        self, user_id: str, *, roles: tuple[Role, ...] | None, disabled: bool | None
    ) -> UserRecord:
        _require_user_id(user_id)
        async with self.db.transaction() as session:
            store = AccountStore(session)
            user = await store.get_user(user_id, for_update=True)
            if user is None:
                raise NotFound(f"no user {user_id!r}")
            changed = replace(
                user,
                roles=user.roles if roles is None else tuple(sorted(set(roles))),
                disabled=user.disabled if disabled is None else disabled,
                updated_at=self.clock(),
            )
            await store.save_user(changed)
            if await store.count_active_admins() == 0:
                field = "disabled" if changed.disabled and not user.disabled else "roles"
                raise Conflict(
                    "this change would leave no active admin",
                    {field: "would remove the last admin"},
                )
            if changed.disabled:
                await store.delete_sessions_of(user_id)
        return changed

    async def ensure_first_admin(self, username: str, password: str | None, data_dir: Path) -> None:
        """Create the first admin when there is none; a generated password goes to a 0600 file."""
        async with self.db.reading() as session:
            store = AccountStore(session)
            if await store.count_active_admins() > 0:
                return
            existing = await store.get_user_by_username(username)
        if existing is not None:
            log.warning(
                "no active admin, and the account named for the first admin exists; "
                "left as it is: run `python -m gateway create-admin --username NAME`",
                username=username,
            )
            return
        secret = password or generate_password()
        password_file = data_dir / INITIAL_ADMIN_PASSWORD_FILE
        password_hash = await asyncio.to_thread(self.passwords.hash, secret)
        now = self.clock()
        user = UserRecord(
            user_id=str(uuid.uuid4()),
            username=username,
            display_name="Administrator",
            password_hash=password_hash,
            roles=(Role.ADMIN,),
            disabled=False,
            created_at=now,
            updated_at=now,
            # Whoever read the generated password from the file or the console
            # must replace it before doing anything else.
            password_change_required=password is None,
        )
        try:
            async with self.db.transaction() as session:
                await AccountStore(session).add_user(user)
                if password is None:
                    # Written before the commit: no admin exists whose password is lost.
                    write_private_file(password_file, secret + "\n", overwrite=True)
        except UsernameTaken:
            return  # another replica created it at the same moment
        if password is None:
            log.info("first admin created", username=username, password_file=str(password_file))
        else:
            log.info("first admin created", username=username)
