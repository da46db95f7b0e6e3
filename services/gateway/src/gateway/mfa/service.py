"""Second factors of one gateway: enroll, check, remove, reset.

Every change and its audit entry are one unit of work. A check that passes
confirms the caller's session (`mfa_pending` cleared, `mfa_at` now: step-up
counts from there) in the same unit that takes the code, so a code is never
spent without the session getting what it paid for, nor the other way round.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.engine import Connection

from gateway import audit
from gateway.accounts import MFA_ROLES, Caller, ClientInfo
from gateway.errors import Forbidden
from gateway.guards import STEP_UP_FIRST
from gateway.mfa import recovery, store, totp
from gateway.mfa.security_keys import RelyingParty
from gateway.sealing import SealBroken
from gateway.settings import GatewaySettings
from gateway.store import AccountStore
from jhaas_runtime.db import Database
from jhaas_schemas.errors import Conflict, NotFound

TOTP_METHOD = "totp"
KEY_METHOD = "webauthn"
RECOVERY_METHOD = "recovery_code"
T = TypeVar("T")


class WrongCode(Exception):
    """A code or a security key's answer that does not pass; the reason is for the user."""


@dataclass(frozen=True, kw_only=True)
class TotpEnrollment:
    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True, kw_only=True)
class Status:
    required: bool
    totp: bool
    keys: list[store.CredentialRecord]
    recovery_codes_left: int
    webauthn_available: bool


class SecondFactors:
    def __init__(
        self, db: Database, settings: GatewaySettings, clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.rp = RelyingParty.of(settings.public_url)
        self._seal = totp.TotpSeal(settings.jwt_secret)
        self._codes = recovery.RecoveryCodeHasher(settings.jwt_secret)

    def required_for(self, caller: Caller) -> bool:
        return self.settings.mfa_required_for_all or bool(MFA_ROLES.intersection(caller.roles))

    def require_recent_if_enrolled(self, caller: Caller) -> None:
        """Adding or removing a factor of an account that has one needs a fresh check:
        a session left open is not enough to change how its owner signs in."""
        fresh = caller.mfa_checked_within(self.settings.step_up_seconds, self.clock())
        if caller.mfa_enrolled and not fresh:
            raise Forbidden(STEP_UP_FIRST)

    async def status(self, caller: Caller) -> Status:
        def read(conn: Connection) -> Status:
            found = store.totp_of(conn, caller.user_id)
            return Status(
                required=self.required_for(caller),
                totp=found is not None and found.confirmed_at is not None,
                keys=store.credentials_of(conn, caller.user_id),
                recovery_codes_left=store.unused_recovery_codes(conn, caller.user_id),
                webauthn_available=self.rp.usable,
            )

        return await self.db.read(read)

    # --- TOTP -----------------------------------------------------------------

    async def begin_totp(self, caller: Caller) -> TotpEnrollment:
        """A new secret, unconfirmed until its first code (a second call starts over)."""
        self.require_recent_if_enrolled(caller)
        secret = totp.new_secret()
        sealed = self._seal.seal(caller.user_id, secret)
        if not await self.db.write(
            store.put_unconfirmed_totp, caller.user_id, sealed, self.clock()
        ):
            raise Conflict(
                "an authenticator app is set up already; remove it first to set up another"
            )
        uri = totp.provisioning_uri(
            secret, account=caller.username, issuer=f"JHaaS {self.rp.id}".strip()
        )
        return TotpEnrollment(secret=secret, uri=uri, qr_svg=totp.qr_svg_data_uri(uri))

    async def confirm_totp(self, caller: Caller, code: str, client: ClientInfo) -> list[str]:
        """The app's first code confirms it; the new recovery codes when it is the
        account's first factor (else [])."""
        self.require_recent_if_enrolled(caller)
        now = self.clock()
        fresh_codes = recovery.new_codes()

        def confirm(conn: Connection) -> list[str]:
            found = store.totp_of(conn, caller.user_id)
            if found is None or found.confirmed_at is not None:
                raise Conflict("no authenticator app is being set up: POST /api/v1/auth/mfa/totp")
            step = totp.matching_step(self._open(found), code, now)
            if step is None or not store.confirm_totp(
                conn, caller.user_id, found.sealed_secret, step, now
            ):
                raise WrongCode("is not the code your authenticator app shows now")
            return self.enrolled(conn, caller, TOTP_METHOD, fresh_codes, client, now)

        return await self.checked(caller, client, TOTP_METHOD, confirm)

    def _open(self, found: store.TotpRecord) -> str:
        try:
            return self._seal.open(found.user_id, found.sealed_secret)
        except SealBroken:
            # The gateway's secret changed since: the app's codes cannot be checked.
            raise WrongCode(
                "cannot be checked: the authenticator app must be set up again "
                "(ask an administrator to reset your second factor)"
            ) from None

    def enrolled(
        self,
        conn: Connection,
        caller: Caller,
        method: str,
        fresh_codes: list[str],
        client: ClientInfo,
        now: datetime,
    ) -> list[str]:
        """After a factor was added: the flag, the session confirmed, the audit entry,
        and recovery codes for an account that had none."""
        first = store.unused_recovery_codes(conn, caller.user_id) == 0
        store.sync_enrolled(conn, caller.user_id, now)
        AccountStore(conn).confirm_second_factor(caller.session_id, now)
        if first:
            hashes = [self._codes.hash(caller.user_id, c) for c in fresh_codes]
            store.replace_recovery_codes(conn, caller.user_id, [h for h in hashes if h], now)
        audit.record(
            conn,
            "mfa.enrolled",
            now=now,
            actor_id=caller.user_id,
            subject_id=caller.user_id,
            address=client.address,
            details={"method": method, "recovery_codes_issued": first},
        )
        return fresh_codes if first else []

    # --- checking a code --------------------------------------------------------

    async def verify_code(self, caller: Caller, code: str, client: ClientInfo) -> str:
        """A TOTP code or an unused recovery code: the session is confirmed; the method used."""
        now = self.clock()
        code = code.strip()

        def verify(conn: Connection) -> str:
            if totp.looks_like_code(code.replace(" ", "")):
                return self._take_totp(conn, caller, code, client, now)
            code_hash = self._codes.hash(caller.user_id, code)
            if code_hash is None:
                raise WrongCode("is neither a 6-digit code nor a recovery code")
            if not store.use_recovery_code(conn, caller.user_id, code_hash, now):
                raise WrongCode("is not one of your unused recovery codes")
            self.confirmed(conn, caller, RECOVERY_METHOD, client, now)
            return RECOVERY_METHOD

        return await self.checked(caller, client, "code", verify)

    def _take_totp(
        self, conn: Connection, caller: Caller, code: str, client: ClientInfo, now: datetime
    ) -> str:
        found = store.totp_of(conn, caller.user_id)
        if found is None or found.confirmed_at is None:
            raise WrongCode("cannot be checked: you have no authenticator app set up")
        step = totp.matching_step(self._open(found), code, now)
        if step is None:
            raise WrongCode("is not the code your authenticator app shows now")
        if not store.take_totp_step(conn, caller.user_id, step):
            raise WrongCode("was used already; wait for the next code")
        self.confirmed(conn, caller, TOTP_METHOD, client, now)
        return TOTP_METHOD

    def confirmed(
        self, conn: Connection, caller: Caller, method: str, client: ClientInfo, now: datetime
    ) -> None:
        if not AccountStore(conn).confirm_second_factor(caller.session_id, now):
            raise NotFound("the session ended meanwhile; sign in again")
        kind = "mfa.recovery_code_used" if method == RECOVERY_METHOD else "mfa.verified"
        details: audit.Details = {"method": method, "session_id": caller.session_id}
        if method == RECOVERY_METHOD:
            details = {**details, "left": store.unused_recovery_codes(conn, caller.user_id)}
        audit.record(
            conn,
            kind,
            now=now,
            actor_id=caller.user_id,
            subject_id=caller.user_id,
            address=client.address,
            details=details,
        )

    async def checked(
        self, caller: Caller, client: ClientInfo, method: str, unit: Callable[[Connection], T]
    ) -> T:
        """Run a checking unit; a failed check is audited on its own (the unit rolled back)."""
        try:
            return await self.db.write(unit)
        except WrongCode as exc:
            await self.db.write(self._failed, caller, client, method, str(exc), self.clock())
            raise

    def _failed(
        self,
        conn: Connection,
        caller: Caller,
        client: ClientInfo,
        method: str,
        reason: str,
        now: datetime,
    ) -> None:
        details: audit.Details = {"method": method, "reason": reason}
        audit.record(
            conn,
            "mfa.failed",
            now=now,
            outcome="refused",
            actor_id=caller.user_id,
            subject_id=caller.user_id,
            address=client.address,
            details=details,
        )

    # --- recovery codes, removal, reset ---------------------------------------------

    async def new_recovery_codes(self, caller: Caller, client: ClientInfo) -> list[str]:
        """Ten new codes; the old ones stop working. Needs a recent check (the route's guard)."""
        now = self.clock()
        codes = recovery.new_codes()
        hashes = [h for h in (self._codes.hash(caller.user_id, c) for c in codes) if h]

        def replace(conn: Connection) -> None:
            if store.methods_left(conn, caller.user_id) == 0:
                raise Conflict("set up a second factor first; recovery codes stand in for one")
            store.replace_recovery_codes(conn, caller.user_id, hashes, now)
            self.record(conn, "mfa.recovery_codes_replaced", caller, caller.user_id, client, now)

        await self.db.write(replace)
        return codes

    async def remove_totp(self, caller: Caller, client: ClientInfo) -> None:
        def remove(conn: Connection) -> None:
            found = store.totp_of(conn, caller.user_id)
            if found is None:
                raise NotFound("you have no authenticator app set up")
            if found.confirmed_at is not None:  # an unconfirmed one is no factor yet
                self._refuse_removing_last(conn, caller)
            store.delete_totp(conn, caller.user_id)
            self._removed(conn, caller, {"method": TOTP_METHOD}, client)

        await self.db.write(remove)

    async def remove_key(self, caller: Caller, credential_id: str, client: ClientInfo) -> None:
        def remove(conn: Connection) -> None:
            if store.credential_of(conn, caller.user_id, credential_id) is None:
                raise NotFound(f"you have no security key {credential_id[:64]!r}")
            self._refuse_removing_last(conn, caller)
            store.delete_credential(conn, caller.user_id, credential_id)
            details: audit.Details = {"method": KEY_METHOD, "credential_id": credential_id}
            self._removed(conn, caller, details, client)

        await self.db.write(remove)

    def _refuse_removing_last(self, conn: Connection, caller: Caller) -> None:
        if self.required_for(caller) and store.methods_left(conn, caller.user_id) <= 1:
            raise Conflict(
                "this is your last second factor and your account must have one: "
                "add another before removing it"
            )

    def _removed(
        self, conn: Connection, caller: Caller, details: audit.Details, client: ClientInfo
    ) -> None:
        now = self.clock()
        # An unconfirmed app is no factor: it goes along with the last one.
        left = store.sync_enrolled(conn, caller.user_id, now)
        details = {**details, "factors_left": left}
        self.record(conn, "mfa.removed", caller, caller.user_id, client, now, details)

    async def reset(self, admin: Caller, user_id: str, client: ClientInfo) -> None:
        """An admin removes every second factor of a user, whose sessions end; the user
        sets one up again at the next sign-in (when it is mandatory for them)."""
        now = self.clock()

        def reset(conn: Connection) -> None:
            accounts = AccountStore(conn)
            if accounts.get_user(user_id, for_update=True) is None:
                raise NotFound(f"no user {user_id!r}")
            store.forget_all(conn, user_id, now)
            accounts.delete_sessions_of(user_id)
            self.record(conn, "mfa.reset", admin, user_id, client, now)

        _require_uuid(user_id)
        await self.db.write(reset)

    def record(
        self,
        conn: Connection,
        kind: str,
        caller: Caller,
        subject_id: str,
        client: ClientInfo,
        now: datetime,
        details: audit.Details | None = None,
    ) -> None:
        audit.record(
            conn,
            kind,
            now=now,
            actor_id=caller.user_id,
            subject_id=subject_id,
            address=client.address,
            details=details,
        )


def _require_uuid(user_id: str) -> None:
    try:
        valid = str(uuid.UUID(user_id)) == user_id
    except ValueError:
        valid = False
    if not valid:
        raise NotFound(f"no user {user_id[:64]!r}")
