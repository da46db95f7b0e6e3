"""Security keys and passkeys (WebAuthn) as a second factor: the ceremonies.

Each ceremony's options carry a fresh challenge kept server side for this
session and purpose; the browser's answer is checked against the challenge it
signed, which is taken (deleted) by the same statement that finds it, so an
answer counts once, and only for the session that asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection

from gateway.accounts import Caller, ClientInfo
from gateway.mfa import security_keys, store
from gateway.mfa.recovery import new_codes
from gateway.mfa.security_keys import CeremonyFailed, KnownCredential
from gateway.mfa.service import KEY_METHOD, SecondFactors, WrongCode
from jhaas_schemas.errors import Conflict, InvalidInput

T = TypeVar("T")


class SecurityKeys:
    def __init__(self, factors: SecondFactors) -> None:
        self.factors = factors
        self.db = factors.db
        self.rp = factors.rp
        self.clock = factors.clock

    def _require_rp(self) -> None:
        if not self.rp.usable:
            raise Conflict(
                "security keys need JHAAS_PUBLIC_URL with a host name, not an IP address "
                f"(browsers refuse {self.rp.id!r} as a WebAuthn relying party)"
            )

    async def registration_options(self, caller: Caller, display_name: str) -> dict[str, object]:
        self._require_rp()
        self.factors.require_recent_if_enrolled(caller)
        existing = await self.db.read(store.credentials_of, caller.user_id)
        options, challenge = security_keys.registration_options(
            self.rp,
            user_id=caller.user_id,
            username=caller.username,
            display_name=display_name,
            existing=[_known(c) for c in existing],
        )
        await self._keep_challenge(caller, challenge, security_keys.REGISTER)
        return options

    async def register(
        self, caller: Caller, credential: object, name: str, client: ClientInfo
    ) -> list[str]:
        """The browser's new credential, checked against a challenge of this session;
        the new recovery codes when it is the account's first factor (else [])."""
        self._require_rp()
        self.factors.require_recent_if_enrolled(caller)
        answer = _parsed(credential)
        now = self.clock()
        fresh_codes = new_codes()

        await self._spend_challenge(caller, answer, security_keys.REGISTER, client)

        def register(conn: Connection) -> list[str]:
            new = _ceremony(
                lambda: security_keys.verify_registration(
                    self.rp, answer, security_keys.challenge_of(answer)
                )
            )
            record = store.CredentialRecord(
                credential_id=new.credential_id,
                user_id=caller.user_id,
                name=name,
                public_key=new.public_key,
                sign_count=new.sign_count,
                transports=new.transports,
                created_at=now,
                last_used_at=None,
            )
            if not store.add_credential(conn, record):
                raise Conflict("this security key is registered already")
            return self.factors.enrolled(conn, caller, KEY_METHOD, fresh_codes, client, now)

        return await self.factors.checked(caller, client, KEY_METHOD, register)

    async def authentication_options(self, caller: Caller) -> dict[str, object]:
        self._require_rp()
        known = await self.db.read(store.credentials_of, caller.user_id)
        if not known:
            raise Conflict("you have no security key registered")
        options, challenge = security_keys.authentication_options(
            self.rp, [_known(c) for c in known]
        )
        await self._keep_challenge(caller, challenge, security_keys.AUTHENTICATE)
        return options

    async def authenticate(self, caller: Caller, credential: object, client: ClientInfo) -> None:
        """A signature by one of the caller's keys over a challenge of this session,
        with a counter that grew: the session is confirmed."""
        self._require_rp()
        answer = _parsed(credential)
        now = self.clock()

        await self._spend_challenge(caller, answer, security_keys.AUTHENTICATE, client)

        def authenticate(conn: Connection) -> None:
            key = store.credential_of(conn, caller.user_id, str(answer["id"]))
            if key is None:
                raise WrongCode("is not one of your registered security keys")
            count = _ceremony(
                lambda: security_keys.verify_authentication(
                    self.rp,
                    answer,
                    security_keys.challenge_of(answer),
                    public_key=key.public_key,
                    sign_count=key.sign_count,
                )
            )
            if not store.advance_sign_count(conn, key.credential_id, key.sign_count, count, now):
                raise WrongCode("was used at the same moment elsewhere; try again")
            self.factors.confirmed(conn, caller, KEY_METHOD, client, now)

        await self.factors.checked(caller, client, KEY_METHOD, authenticate)

    async def _keep_challenge(self, caller: Caller, challenge: bytes, purpose: str) -> None:
        now = self.clock()
        await self.db.write(
            lambda conn: store.add_challenge(
                conn,
                challenge_hash=security_keys.challenge_hash(challenge),
                user_id=caller.user_id,
                session_id=caller.session_id,
                purpose=purpose,
                now=now,
                expires_at=now + security_keys.CHALLENGE_TTL,
            )
        )

    async def _spend_challenge(
        self, caller: Caller, answer: dict[str, object], purpose: str, client: ClientInfo
    ) -> None:
        """Take the challenge the answer signed, in a unit of its own: an answer that
        fails afterwards has spent it too (one try per challenge)."""
        now = self.clock()

        def take(conn: Connection) -> None:
            challenge = _ceremony(lambda: security_keys.challenge_of(answer))
            if not store.take_challenge(
                conn,
                challenge_hash=security_keys.challenge_hash(challenge),
                user_id=caller.user_id,
                session_id=caller.session_id,
                purpose=purpose,
                now=now,
            ):
                raise WrongCode(
                    "answers no challenge of this session (expired, used already, or not "
                    "asked for): ask for new options and try again"
                )

        await self.factors.checked(caller, client, KEY_METHOD, take)


def _known(record: store.CredentialRecord) -> KnownCredential:
    return KnownCredential(credential_id=record.credential_id, transports=record.transports)


def _parsed(credential: object) -> dict[str, object]:
    try:
        return security_keys.parse_credential(credential)
    except CeremonyFailed as exc:
        raise InvalidInput(str(exc), {"credential": str(exc)}) from None


def _ceremony(check: Callable[[], T]) -> T:
    try:
        return check()
    except CeremonyFailed as exc:
        raise WrongCode(str(exc)) from None
