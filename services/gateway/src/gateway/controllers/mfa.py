"""Second factors over the API: /api/v1/auth/mfa/... and an admin's reset.

Every route is for a person signed in with a session (a personal API token
cannot change or confirm second factors). Which routes a caller with
something still to do reaches is said by each route's REACHABLE_BEFORE:
confirming a second factor (SECOND_FACTOR), setting one up when it is
mandatory (MFA_ENROLLMENT); seeing the status, in every state.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from gateway.accounts import Caller, Pending
from gateway.client_address import client_address
from gateway.context import gateway_of
from gateway.controllers.auth import client_info
from gateway.errors import InvalidBody, TooManyRequests, error_responses
from gateway.guards import (
    REACHABLE_BEFORE,
    requires_admin,
    requires_authenticated,
    requires_recent_mfa,
    requires_recent_sign_in,
    requires_session,
)
from gateway.mfa.keys import SecurityKeys
from gateway.mfa.schemas import (
    CodeEntry,
    Enrolled,
    KeyAssertion,
    KeyRegistration,
    MfaStatus,
    RecoveryCodes,
    TotpSetup,
    Verified,
)
from gateway.mfa.service import SecondFactors, WrongCode
from gateway.throttle import Attempt, TooManyAttempts

ANY_STAGE = {REACHABLE_BEFORE: frozenset(Pending)}
TO_CONFIRM = {REACHABLE_BEFORE: frozenset({Pending.SECOND_FACTOR})}
TO_ENROLL = {REACHABLE_BEFORE: frozenset({Pending.MFA_ENROLLMENT})}
CHECK_ERRORS = error_responses(
    HTTP_403_FORBIDDEN, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY, HTTP_429_TOO_MANY_REQUESTS
)
CHANGE_ERRORS = error_responses(HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND, HTTP_409_CONFLICT)


async def begin_check(request: Request[Any, Any, Any], caller: Caller) -> Attempt:
    """Count a second-factor check like a sign-in attempt, keyed by the account:
    guessing codes meets the same growing waits as guessing passwords."""
    gateway = gateway_of(request)
    address = client_address(request.scope, gateway.settings.trusted_proxies)
    try:
        return await gateway.throttle.begin(f"mfa:{caller.user_id}", address)
    except TooManyAttempts as exc:
        raise TooManyRequests(str(exc), exc.retry_after) from None


def refused(field: str, exc: WrongCode) -> InvalidBody:
    return InvalidBody(f"the {field.replace('_', ' ')} {exc}", {field: str(exc)})


class MfaController(Controller):
    path = "/auth/mfa"
    tags = ["mfa"]
    guards = [requires_authenticated, requires_session]

    @get("", opt=ANY_STAGE, responses=error_responses(HTTP_403_FORBIDDEN))
    async def status(
        self, caller: NamedDependency[Caller], mfa: NamedDependency[SecondFactors]
    ) -> MfaStatus:
        """Anyone signed in (in any state): your second factors and whether one is required."""
        return MfaStatus.of(await mfa.status(caller))

    @post(
        "/totp",
        status_code=HTTP_200_OK,
        opt=TO_ENROLL,
        guards=[requires_recent_sign_in],
        responses=CHANGE_ERRORS,
    )
    async def begin_totp(
        self, caller: NamedDependency[Caller], mfa: NamedDependency[SecondFactors]
    ) -> TotpSetup:
        """Anyone signed in (also while MFA must be set up; with a factor already, only
        right after a check): a new authenticator-app secret, unconfirmed until
        POST /totp/confirm. Calling again starts over."""
        setup = await mfa.begin_totp(caller)
        return TotpSetup(secret=setup.secret, otpauth_uri=setup.uri, qr_svg=setup.qr_svg)

    @post("/totp/confirm", status_code=HTTP_200_OK, opt=TO_ENROLL, responses=CHECK_ERRORS)
    async def confirm_totp(
        self,
        data: JSONBody[CodeEntry],
        caller: NamedDependency[Caller],
        mfa: NamedDependency[SecondFactors],
        request: Request[Any, Any, Any],
    ) -> Enrolled:
        """Anyone setting up an app: its first code turns it on (and counts as a check of
        this session). The first factor of an account comes with ten recovery codes,
        shown this once."""
        attempt = await begin_check(request, caller)
        settings = gateway_of(request).settings
        try:
            codes = await mfa.confirm_totp(caller, data.code, client_info(request, settings))
        except WrongCode as exc:
            raise refused("code", exc) from None
        await gateway_of(request).throttle.succeeded(attempt)
        return Enrolled(recovery_codes=codes)

    @delete(
        "/totp",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_recent_mfa],
        responses=CHANGE_ERRORS,
    )
    async def remove_totp(
        self,
        caller: NamedDependency[Caller],
        mfa: NamedDependency[SecondFactors],
        request: Request[Any, Any, Any],
    ) -> None:
        """Anyone, right after a check: remove the authenticator app (409 when it is the
        last factor of an account that must have one)."""
        await mfa.remove_totp(caller, client_info(request, gateway_of(request).settings))

    @post("/verify", status_code=HTTP_200_OK, opt=TO_CONFIRM, responses=CHECK_ERRORS)
    async def verify(
        self,
        data: JSONBody[CodeEntry],
        caller: NamedDependency[Caller],
        mfa: NamedDependency[SecondFactors],
        request: Request[Any, Any, Any],
    ) -> Verified:
        """Anyone with a second factor: a code from the app or an unused recovery code
        finishes a sign-in, and is the recent check that step-up changes ask for.
        Each code counts once; failures are throttled like sign-ins and audited."""
        attempt = await begin_check(request, caller)
        settings = gateway_of(request).settings
        try:
            method = await mfa.verify_code(caller, data.code, client_info(request, settings))
        except WrongCode as exc:
            raise refused("code", exc) from None
        await gateway_of(request).throttle.succeeded(attempt)
        return Verified(method=method)

    @post("/recovery-codes", guards=[requires_recent_mfa], responses=CHANGE_ERRORS)
    async def new_recovery_codes(
        self,
        caller: NamedDependency[Caller],
        mfa: NamedDependency[SecondFactors],
        request: Request[Any, Any, Any],
    ) -> RecoveryCodes:
        """Anyone with a second factor, right after a check: ten new recovery codes
        (201), shown this once; the earlier ones stop working."""
        settings = gateway_of(request).settings
        codes = await mfa.new_recovery_codes(caller, client_info(request, settings))
        return RecoveryCodes(recovery_codes=codes)

    @post(
        "/webauthn/register/options",
        status_code=HTTP_200_OK,
        opt=TO_ENROLL,
        guards=[requires_recent_sign_in],
        responses=CHANGE_ERRORS,
    )
    async def key_registration_options(
        self, caller: NamedDependency[Caller], security_keys: NamedDependency[SecurityKeys]
    ) -> dict[str, Any]:
        """Anyone signed in (also while MFA must be set up; with a factor already, only
        right after a check): options for navigator.credentials.create(), valid
        five minutes, for this session only."""
        return await security_keys.registration_options(caller, caller.username)

    @post("/webauthn/register", opt=TO_ENROLL, responses=CHECK_ERRORS)
    async def register_key(
        self,
        data: JSONBody[KeyRegistration],
        caller: NamedDependency[Caller],
        security_keys: NamedDependency[SecurityKeys],
        request: Request[Any, Any, Any],
    ) -> Enrolled:
        """Anyone who asked for registration options: the new credential (201); the
        first factor of an account comes with ten recovery codes, shown once."""
        settings = gateway_of(request).settings
        try:
            codes = await security_keys.register(
                caller,
                msgspec.to_builtins(data.credential),
                data.name,
                client_info(request, settings),
            )
        except WrongCode as exc:
            raise refused("credential", exc) from None
        return Enrolled(recovery_codes=codes)

    @post(
        "/webauthn/authenticate/options",
        status_code=HTTP_200_OK,
        opt=TO_CONFIRM,
        responses=CHANGE_ERRORS,
    )
    async def key_authentication_options(
        self, caller: NamedDependency[Caller], security_keys: NamedDependency[SecurityKeys]
    ) -> dict[str, Any]:
        """Anyone with a security key: options for navigator.credentials.get() naming
        your keys, valid five minutes, for this session only."""
        return await security_keys.authentication_options(caller)

    @post("/webauthn/authenticate", status_code=HTTP_200_OK, opt=TO_CONFIRM, responses=CHECK_ERRORS)
    async def authenticate_with_key(
        self,
        data: JSONBody[KeyAssertion],
        caller: NamedDependency[Caller],
        security_keys: NamedDependency[SecurityKeys],
        request: Request[Any, Any, Any],
    ) -> Verified:
        """Anyone with a security key: its signature finishes a sign-in and is the
        recent check that step-up changes ask for. Throttled and audited like codes."""
        attempt = await begin_check(request, caller)
        settings = gateway_of(request).settings
        try:
            await security_keys.authenticate(
                caller, msgspec.to_builtins(data.credential), client_info(request, settings)
            )
        except WrongCode as exc:
            raise refused("credential", exc) from None
        await gateway_of(request).throttle.succeeded(attempt)
        return Verified(method="webauthn")

    @delete(
        "/webauthn/{credential_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_recent_mfa],
        responses=CHANGE_ERRORS,
    )
    async def remove_key(
        self,
        credential_id: FromPath[str],
        caller: NamedDependency[Caller],
        mfa: NamedDependency[SecondFactors],
        request: Request[Any, Any, Any],
    ) -> None:
        """Anyone, right after a check: remove one of your security keys (409 when it is
        the last factor of an account that must have one)."""
        settings = gateway_of(request).settings
        await mfa.remove_key(caller, credential_id, client_info(request, settings))


class MfaResetController(Controller):
    path = "/users"
    tags = ["users"]
    guards = [requires_authenticated, requires_admin, requires_recent_mfa]

    @post(
        "/{user_id:str}/mfa/reset",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND),
    )
    async def reset_mfa(
        self,
        user_id: FromPath[str],
        caller: NamedDependency[Caller],
        mfa: NamedDependency[SecondFactors],
        request: Request[Any, Any, Any],
    ) -> None:
        """Admins, right after their own check: remove every second factor of a user
        (who lost them); the user's sessions end, and the reset is audited."""
        await mfa.reset(caller, user_id, client_info(request, gateway_of(request).settings))
