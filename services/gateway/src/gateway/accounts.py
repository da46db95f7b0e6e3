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
from enum import StrEnum
from pathlib import Path

from sqlalchemy.engine import Connection

from gateway import audit
from gateway.auth import Passwords, TokenClaims, new_session_token, session_token_digest
from gateway.password_rules import password_problem
from gateway.settings import INITIAL_ADMIN_PASSWORD_FILE
from gateway.store import (
    LIVE_CALLER_BY_SESSION,
    LIVE_CALLER_BY_TOKEN_HASH,
    AccountStore,
    LiveCaller,
    SessionRecord,
    UsernameTaken,
    UserRecord,
    find_live_caller,
    user_names,
)
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


# Roles that may not act without a second factor (ARCHITECTURE.md, "Auth").
MFA_ROLES = frozenset({Role.GOVERNANCE, Role.ADMIN})


class Pending(StrEnum):
    """What a signed-in caller must do before anything else."""

    SECOND_FACTOR = "second_factor"  # signed in with the first factor only
    PASSWORD_CHANGE = "password_change"  # noqa: S105 - a generated password is in use
    MFA_ENROLLMENT = "mfa_enrollment"  # MFA is mandatory for them and not set up


@dataclass(frozen=True, kw_only=True)
class Caller:
    """The authenticated user of one HTTP request."""

    user_id: str
    username: str
    roles: tuple[Role, ...]
    session_id: str
    password_change_required: bool = False
    mfa_enrolled: bool = False
    mfa_pending: bool = False
    mfa_at: datetime | None = None
    # When this session was signed in (with whatever factors it has).
    signed_in_at: datetime | None = None
    # Set when the caller uses a personal API token instead of a session.
    api_token_id: str | None = None
    # The pages speak it (gateway/i18n.py); the profile sets it; "": the browser's.
    preferred_language: str = ""

    @property
    def principal(self) -> Principal:
        return Principal(user_id=self.user_id, username=self.username, roles=self.roles)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def pending(self, *, mfa_for_all: bool) -> Pending | None:
        """The first thing this caller must do before anything else, or None."""
        if self.mfa_pending:
            return Pending.SECOND_FACTOR
        if self.password_change_required:
            return Pending.PASSWORD_CHANGE
        if not self.mfa_enrolled and (mfa_for_all or MFA_ROLES.intersection(self.roles)):
            return Pending.MFA_ENROLLMENT
        return None

    def mfa_checked_within(self, seconds: int, now: datetime) -> bool:
        """Whether this session confirmed its second factor in the last `seconds` (step-up)."""
        return (
            self.api_token_id is None
            and self.mfa_at is not None
            and timedelta(0) <= now - self.mfa_at <= timedelta(seconds=seconds)
        )

    def authenticated_within(self, seconds: int, now: datetime) -> bool:
        """Whether this session proved who it is in the last `seconds`: its second factor
        when the account has one, else its sign-in. What a stolen session must not do
        without that (take over the account: a new address, a token, a linked identity)."""
        if self.api_token_id is not None:
            return False
        if self.mfa_enrolled:
            return self.mfa_checked_within(seconds, now)
        return self.signed_in_at is not None and (
            timedelta(0) <= now - self.signed_in_at <= timedelta(seconds=seconds)
        )


@dataclass(frozen=True, kw_only=True)
class ClientInfo:
    """Where a request came from: kept with its session and in the audit log."""

    address: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, address: str | None, user_agent: str | None) -> ClientInfo:
        agent = "".join(ch for ch in (user_agent or "") if ch.isprintable())[:300]
        return cls(address=(address or None) and address[:64], user_agent=agent or None)


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    user: UserRecord
    session_id: str
    session_token: str
    expires_at: datetime
    mfa_pending: bool = False


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

    async def sign_in(
        self, username: str, password: str, client: ClientInfo | None = None
    ) -> SignedIn:
        """Check a local account's password and open a session; refusals are audited."""
        client = client or ClientInfo()
        user = await self.db.read(lambda conn: AccountStore(conn).get_user_by_username(username))
        stored = user.password_hash if user else None
        if not await asyncio.to_thread(self.passwords.verify, stored, password) or user is None:
            reason = "unknown username" if user is None else "wrong password"
            await self._refused(user, client, reason, method="password")
            raise SignInRefused(WRONG_CREDENTIALS)
        if user.disabled:
            await self._refused(user, client, "account disabled", method="password")
            raise SignInRefused("this account is disabled; ask an administrator")
        rehashed = None
        if self.passwords.needs_rehash(user.password_hash):
            rehashed = await asyncio.to_thread(self.passwords.hash, password)
        return await self.open_session(user, method="password", client=client, rehashed=rehashed)

    async def open_session(
        self,
        user: UserRecord,
        *,
        method: str,
        client: ClientInfo,
        rehashed: str | None = None,
    ) -> SignedIn:
        """Open a session for a user whose first factor was just checked (password,
        identity provider). With a second factor enrolled the session is pending
        until it is confirmed; `sign_in.succeeded` is audited in the same unit."""
        now = self.clock()
        token = new_session_token()
        record = SessionRecord(
            session_id=str(uuid.uuid4()),
            token_hash=session_token_digest(token),
            user_id=user.user_id,
            created_at=now,
            expires_at=now + self.session_ttl,
            method=method,
            mfa_pending=user.mfa_enrolled,
            address=client.address,
            user_agent=client.user_agent,
        )
        user = await self.db.write(_open_session, user, record, rehashed, now)
        return SignedIn(
            user=user,
            session_id=record.session_id,
            session_token=token,
            expires_at=record.expires_at,
            mfa_pending=record.mfa_pending,
        )

    async def _refused(
        self, user: UserRecord | None, client: ClientInfo, reason: str, *, method: str
    ) -> None:
        now = self.clock()
        await self.db.write(
            lambda conn: audit.record(
                conn,
                "sign_in.failed",
                now=now,
                outcome="refused",
                subject_id=user.user_id if user else None,
                address=client.address,
                details={"method": method, "reason": reason},
            )
        )

    async def caller_for_session_token(self, token: str) -> Caller | None:
        params = {"token_hash": session_token_digest(token), "now": self.clock()}
        found = await self.db.lookup(find_live_caller, LIVE_CALLER_BY_TOKEN_HASH, params)
        return None if found is None else _caller(found)

    async def caller_for_token(self, claims: TokenClaims) -> Caller | None:
        """The caller of a verified bearer token while its session lives and its user is enabled."""
        params = {"session_id": claims.session_id, "user_id": claims.user_id, "now": self.clock()}
        found = await self.db.lookup(find_live_caller, LIVE_CALLER_BY_SESSION, params)
        return None if found is None else _caller(found)

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
        changed = await self.db.write(
            _replace_password, user, caller.session_id, new_hash, self.clock()
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

    async def end_session(self, caller: Caller, client: ClientInfo) -> None:
        """Sign out: this session's cookie and bearer tokens stop working."""
        await self.db.write(_end_sessions, caller, client, self.clock(), caller.session_id, False)

    async def end_other_session(self, caller: Caller, session_id: str, client: ClientInfo) -> None:
        """End one of the caller's own sessions; another user's id is unknown (404)."""
        found = await self.db.write(_end_sessions, caller, client, self.clock(), session_id, False)
        if not found:
            raise NotFound(f"you have no session {session_id[:64]!r}")

    async def end_every_session(self, caller: Caller, client: ClientInfo) -> None:
        """Sign out everywhere: every session of the caller, this one included."""
        await self.db.write(_end_sessions, caller, client, self.clock(), None, True)

    async def sessions_of(self, user_id: str) -> list[SessionRecord]:
        now = self.clock()
        return await self.db.read(lambda conn: AccountStore(conn).sessions_of(user_id, now))

    # --- users ---------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRecord:
        _require_user_id(user_id)
        user = await self.db.read(lambda conn: AccountStore(conn).get_user(user_id))
        if user is None:
            raise NotFound(f"no user {user_id!r}")
        return user

    async def find_user(self, username: str) -> UserRecord | None:
        return await self.db.lookup(lambda conn: AccountStore(conn).get_user_by_username(username))

    async def names_of(self, user_ids: list[str]) -> dict[str, tuple[str, str]]:
        """(username, display name) of each known user id; unknown ids are left out."""
        return await self.db.read(user_names, user_ids)

    async def list_users(self) -> list[UserRecord]:
        return await self.db.read(lambda conn: AccountStore(conn).list_users())

    async def create_user(
        self,
        *,
        username: str,
        password: str,
        roles: tuple[Role, ...],
        display_name: str = "",
        password_change_required: bool = False,
        actor_id: str | None = None,
        client: ClientInfo | None = None,
    ) -> UserRecord:
        """A local account; `actor_id` is the admin who made it (None: the CLI)."""
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
        address = client.address if client else None
        try:
            await self.db.write(_add_user, user, actor_id, address, now)
        except UsernameTaken:
            raise Conflict(
                f"the username {username!r} is taken", {"username": "is taken"}
            ) from None
        return user

    async def update_user(
        self,
        user_id: str,
        *,
        roles: tuple[Role, ...] | None,
        disabled: bool | None,
        actor_id: str | None = None,
        client: ClientInfo | None = None,
    ) -> UserRecord:
        _require_user_id(user_id)
        change = _UserChange(
            roles=roles,
            disabled=disabled,
            actor_id=actor_id,
            address=client.address if client else None,
            now=self.clock(),
        )
        return await self.db.write(_update_user, user_id, change)

    async def ensure_first_admin(self, username: str, password: str | None, data_dir: Path) -> None:
        """Create the first admin when there is none; a generated password goes to a 0600 file."""
        admins, existing = await self.db.read(_admins_and_user, username)
        if admins > 0:
            return
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
            generated = (password_file, secret) if password is None else None
            await self.db.write(_add_first_admin, user, generated)
        except UsernameTaken:
            return  # another replica created it at the same moment
        if password is None:
            log.info("first admin created", username=username, password_file=str(password_file))
        else:
            log.info("first admin created", username=username)


# --- units of work: each runs whole in one database thread, in one transaction


def _caller(found: LiveCaller) -> Caller:
    # Roles come from the account as it is now: a revoked role ends at once.
    return Caller(
        user_id=found.user_id,
        username=found.username,
        roles=found.roles,
        session_id=found.session_id,
        password_change_required=found.password_change_required,
        mfa_enrolled=found.mfa_enrolled,
        mfa_pending=found.mfa_pending,
        mfa_at=found.mfa_at,
        signed_in_at=found.signed_in_at,
        preferred_language=found.preferred_language,
    )


def _end_sessions(
    conn: Connection,
    caller: Caller,
    client: ClientInfo,
    now: datetime,
    session_id: str | None,
    everywhere: bool,
) -> bool:
    store = AccountStore(conn)
    details: audit.Details
    if everywhere:
        store.delete_sessions_of(caller.user_id)
        kind, details = "sign_out", {"everywhere": True}
    else:
        assert session_id is not None
        if not store.delete_session(session_id, user_id=caller.user_id):
            return False
        own = session_id == caller.session_id
        kind, details = ("sign_out", {}) if own else ("session.revoked", {"session_id": session_id})
    audit.record(
        conn,
        kind,
        now=now,
        actor_id=caller.user_id,
        subject_id=caller.user_id,
        address=client.address,
        details=details,
    )
    return True


def _open_session(
    conn: Connection, user: UserRecord, record: SessionRecord, rehashed: str | None, now: datetime
) -> UserRecord:
    store = AccountStore(conn)
    store.delete_expired_sessions(now)
    store.add_session(record)
    audit.record(
        conn,
        "sign_in.succeeded",
        now=now,
        actor_id=user.user_id,
        subject_id=user.user_id,
        address=record.address,
        details={"method": record.method, "second_factor_pending": record.mfa_pending},
    )
    if rehashed is not None and store.replace_password_hash(
        user.user_id,
        old_hash=user.password_hash,
        new_hash=rehashed,
        password_change_required=user.password_change_required,
        now=now,
    ):
        return replace(user, password_hash=rehashed, updated_at=now)
    return user


def _replace_password(
    conn: Connection, user: UserRecord, session_id: str, new_hash: str, now: datetime
) -> UserRecord:
    # The hashing took a while: decide on the row as it is now, under its lock,
    # and write only the password (an admin may have disabled the account or
    # changed its roles meanwhile; that must stand).
    store = AccountStore(conn)
    current = store.get_user(user.user_id, for_update=True)
    if current is None or current.disabled or not store.session_alive(session_id, now):
        raise SignInEnded
    if not store.replace_password_hash(
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
    store.delete_sessions_of(user.user_id, keep=session_id)
    audit.record(
        conn,
        "password.changed",
        now=now,
        actor_id=user.user_id,
        subject_id=user.user_id,
        details={"other_sessions_ended": True},
    )
    return replace(current, password_hash=new_hash, password_change_required=False, updated_at=now)


@dataclass(frozen=True, kw_only=True)
class _UserChange:
    roles: tuple[Role, ...] | None
    disabled: bool | None
    actor_id: str | None
    address: str | None
    now: datetime


def _add_user(
    conn: Connection, user: UserRecord, actor_id: str | None, address: str | None, now: datetime
) -> None:
    AccountStore(conn).add_user(user)
    audit.record(
        conn,
        "user.created",
        now=now,
        actor_id=actor_id,
        subject_id=user.user_id,
        address=address,
        details={"roles": [role.value for role in user.roles], "method": "local"},
    )


def _update_user(conn: Connection, user_id: str, change: _UserChange) -> UserRecord:
    store = AccountStore(conn)
    user = store.get_user(user_id, for_update=True)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    roles, disabled, now = change.roles, change.disabled, change.now
    changed = replace(
        user,
        roles=user.roles if roles is None else tuple(sorted(set(roles))),
        disabled=user.disabled if disabled is None else disabled,
        updated_at=now,
    )
    store.save_user(changed)
    kinds: list[tuple[str, audit.Details]] = []
    if changed.roles != user.roles:
        before, after = [r.value for r in user.roles], [r.value for r in changed.roles]
        kinds.append(("user.roles_changed", {"before": before, "after": after}))
    if changed.disabled != user.disabled:
        kinds.append(("user.disabled" if changed.disabled else "user.enabled", {}))
    for kind, details in kinds:
        audit.record(
            conn,
            kind,
            now=now,
            actor_id=change.actor_id,
            subject_id=user_id,
            address=change.address,
            details=details,
        )
    if store.count_active_admins() == 0:  # raising rolls the change back
        field = "disabled" if changed.disabled and not user.disabled else "roles"
        raise Conflict(
            "this change would leave no active admin", {field: "would remove the last admin"}
        )
    if changed.disabled:
        store.delete_sessions_of(user_id)
    return changed


def _admins_and_user(conn: Connection, username: str) -> tuple[int, UserRecord | None]:
    store = AccountStore(conn)
    return store.count_active_admins(), store.get_user_by_username(username)


def _add_first_admin(
    conn: Connection, user: UserRecord, generated: tuple[Path, str] | None
) -> None:
    AccountStore(conn).add_user(user)
    if generated is not None:
        # Written before the commit: no admin exists whose password is lost.
        path, secret = generated
        write_private_file(path, secret + "\n", overwrite=True)
