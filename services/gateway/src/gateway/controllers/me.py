"""Your own account: profile, e-mail address, data export, deletion."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import (
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from gateway.account_deletion import delete_account
from gateway.accounts import Accounts, Caller
from gateway.audit import Audit
from gateway.context import gateway_of
from gateway.controllers.auth import _begin_attempt, _expired, client_info
from gateway.dependencies import ServiceCalls
from gateway.errors import Forbidden, InvalidBody, TooManyRequests, error_responses
from gateway.guards import (
    STEP_UP_FIRST,
    proof_first,
    requires_authenticated,
    requires_session,
)
from gateway.profile import Profiles
from gateway.self_schemas import (
    AccountDeletion,
    AccountExport,
    EmailVerification,
    Profile,
    ProfileUpdate,
    ServiceData,
)
from gateway.settings import GatewaySettings
from gateway.throttle import SignInThrottle, TooManyAttempts
from jhaas_schemas.rpc import (
    Empty,
    HubRequestList,
    ListRequests,
    MyCourseList,
    ParticipantOps,
    ParticipationList,
    RequestOps,
)


def profiles(request: Request[Any, Any, Any]) -> Profiles:
    gateway = gateway_of(request)
    return Profiles(
        gateway.db,
        gateway.mailer,
        public_url=gateway.settings.public_url,
        clock=gateway.accounts.clock,
    )


class MeController(Controller):
    path = "/me"
    tags = ["me"]
    guards = [requires_authenticated]

    @get("", responses=error_responses(HTTP_403_FORBIDDEN))
    async def get_profile(
        self, caller: NamedDependency[Caller], request: Request[Any, Any, Any]
    ) -> Profile:
        """Anyone signed in (a personal token too): your profile."""
        return await profiles(request).get(caller.user_id)

    @patch(
        "",
        guards=[requires_session],
        responses=error_responses(
            HTTP_403_FORBIDDEN,
            HTTP_422_UNPROCESSABLE_ENTITY,
            HTTP_429_TOO_MANY_REQUESTS,
            HTTP_503_SERVICE_UNAVAILABLE,
        ),
    )
    async def update_profile(
        self,
        data: JSONBody[ProfileUpdate],
        caller: NamedDependency[Caller],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Profile:
        """Anyone signed in (not with a token): change your display name, language or
        e-mail address (an address only within minutes of signing in or of a
        second-factor check: 403 otherwise). A new address is `pending_email` until the
        link mailed to it is used (POST /api/v1/me/email/verify); 503 without a mail
        server. Asking for links often waits (429): nobody mails a stranger's inbox
        full through us."""
        client = client_info(request, settings)
        if data.email is not msgspec.UNSET:
            # A new address is the way to a password reset: not for a stolen session.
            now = gateway_of(request).accounts.clock()
            if not caller.authenticated_within(settings.step_up_seconds, now):
                raise Forbidden(proof_first(caller))
            try:
                await gateway_of(request).reset_throttle.begin(
                    f"verify-email:{caller.user_id}", client.address or ""
                )
            except TooManyAttempts as exc:
                raise TooManyRequests(
                    f"too many e-mail addresses asked for; try again in {exc.retry_after} seconds",
                    exc.retry_after,
                ) from None
        return await profiles(request).update(caller, data, client)

    @post(
        "/email/verify",
        status_code=200,
        guards=[requires_session],
        responses=error_responses(
            HTTP_403_FORBIDDEN, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY
        ),
    )
    async def verify_email(
        self,
        data: JSONBody[EmailVerification],
        caller: NamedDependency[Caller],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Profile:
        """Anyone signed in (not with a token): confirm the address the link was
        mailed to; it becomes your verified e-mail. Only your own link works."""
        client = client_info(request, settings)
        return await profiles(request).verify_email(caller, data.token, client)

    @get(
        "/export",
        guards=[requires_session],
        responses=error_responses(HTTP_403_FORBIDDEN, HTTP_503_SERVICE_UNAVAILABLE),
    )
    async def export(
        self,
        caller: NamedDependency[Caller],
        services: NamedDependency[ServiceCalls],
        audit: NamedDependency[Audit],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Response[AccountExport]:
        """Anyone signed in (not with a token): everything JHaaS keeps about you, as
        one JSON document (no secrets: no password hash, token or second factor)."""
        profile, identities, sessions, tokens, entries = await profiles(request).gateway_data(
            caller.user_id
        )
        requests, courses, participations = await asyncio.gather(
            services(RequestOps.LIST, ListRequests(scope="mine"), HubRequestList),
            services(ParticipantOps.MY_COURSES, Empty(), MyCourseList),
            services(ParticipantOps.MY_PARTICIPATIONS, Empty(), ParticipationList),
        )
        address = client_info(request, settings).address
        await audit.log(
            "account.exported", actor_id=caller.user_id, subject_id=caller.user_id, address=address
        )
        document = AccountExport(
            exported_at=gateway_of(request).accounts.clock(),
            profile=profile,
            identities=identities,
            sessions=sessions,
            tokens=tokens,
            audit=entries,
            services=ServiceData(
                requests=requests.items,
                courses=courses.items,
                participations=participations.items,
            ),
        )
        filename = f"jhaas-export-{caller.username}.json"
        return Response(
            document, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )

    @delete(
        "",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_session],
        responses=error_responses(
            HTTP_403_FORBIDDEN,
            HTTP_409_CONFLICT,
            HTTP_422_UNPROCESSABLE_ENTITY,
            HTTP_429_TOO_MANY_REQUESTS,
            HTTP_503_SERVICE_UNAVAILABLE,
        ),
    )
    async def delete_me(
        self,
        data: JSONBody[AccountDeletion],
        caller: NamedDependency[Caller],
        accounts: NamedDependency[Accounts],
        services: NamedDependency[ServiceCalls],
        throttle: NamedDependency[SignInThrottle],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Response[None]:
        """Anyone signed in (not with a token): delete your account, with your password
        (accounts that have one) and a recent second-factor check (accounts that have
        one). Refused (409 naming them) while you lead a course that is not over; your
        participations end as if you left. Everything of yours in the gateway goes."""
        user = await accounts.get_user(caller.user_id)
        if user.has_password:
            if not data.password:
                problem = "is needed to delete an account that has one"
                raise InvalidBody(f"your password {problem}", {"password": problem})
            attempt = await _begin_attempt(throttle, settings, request, caller.username)
            verify = accounts.passwords.verify
            if not await asyncio.to_thread(verify, user.password_hash, data.password):
                problem = "is not your password"
                raise InvalidBody(f"the password {problem}", {"password": problem})
            await throttle.succeeded(attempt)
        if user.mfa_enrolled and not caller.mfa_checked_within(
            settings.step_up_seconds, accounts.clock()
        ):
            raise Forbidden(STEP_UP_FIRST)
        await delete_account(
            accounts.db,
            services,
            user_id=caller.user_id,
            actor_id=caller.user_id,
            address=client_info(request, settings).address,
            now=accounts.clock,
        )
        return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=_expired(settings))
