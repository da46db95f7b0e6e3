"""A forgotten password: ask for a link by mail, then set a new one with it.

Also the two small pages the mailed links open (`/reset-password`,
`/verify-email`): each reads its token from the link's fragment with a
script from /static (no inline script), so the token never reaches a server
log, a proxy or a Referer header.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import (
    HTTP_202_ACCEPTED,
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from gateway.account_mail import RESET_PAGE, VERIFY_PAGE
from gateway.context import gateway_of
from gateway.controllers.auth import client_info
from gateway.errors import InvalidBody, TooManyRequests, error_responses
from gateway.password_reset import ACCEPTED, PasswordReset
from gateway.self_schemas import PasswordResetAccepted, PasswordResetConfirm, PasswordResetRequest
from gateway.settings import GatewaySettings
from gateway.throttle import TooManyAttempts
from gateway.web.i18n import N_
from gateway.web.render import Page, viewer_of


def password_reset(request: Request[Any, Any, Any]) -> PasswordReset:
    gateway = gateway_of(request)
    return PasswordReset(
        gateway.db,
        gateway.accounts,
        gateway.mailer,
        public_url=gateway.settings.public_url,
        clock=gateway.accounts.clock,
    )


class PasswordResetController(Controller):
    path = "/auth/password-reset"
    tags = ["auth"]

    @post(
        "",
        status_code=HTTP_202_ACCEPTED,
        security=[],
        responses=error_responses(
            HTTP_422_UNPROCESSABLE_ENTITY, HTTP_429_TOO_MANY_REQUESTS, HTTP_503_SERVICE_UNAVAILABLE
        ),
    )
    async def request_reset(
        self,
        data: JSONBody[PasswordResetRequest],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> PasswordResetAccepted:
        """Anyone: mail a single-use link to set a new password to the verified address
        of the account named by `username` or `email` (one of them).

        The answer is the same whether or not such an account exists. 503 when the
        installation has no mail server; asking often waits (429 with Retry-After).
        """
        if (data.username is None) == (data.email is None):
            problem = "give either username or email"
            raise InvalidBody(problem, {"username": problem, "email": problem})
        reset = password_reset(request)
        reset.require_mail()
        client = client_info(request, settings)
        try:
            await gateway_of(request).reset_throttle.begin(
                data.username or data.email or "", client.address or ""
            )
        except TooManyAttempts as exc:
            raise TooManyRequests(
                f"too many password resets asked for; try again in {exc.retry_after} seconds",
                exc.retry_after,
            ) from None
        await reset.request(username=data.username, email=data.email, client=client)
        return PasswordResetAccepted(message=ACCEPTED)

    @post(
        "/confirm",
        status_code=HTTP_204_NO_CONTENT,
        security=[],
        responses=error_responses(
            HTTP_403_FORBIDDEN, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY
        ),
    )
    async def confirm_reset(
        self,
        data: JSONBody[PasswordResetConfirm],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> None:
        """Anyone holding a reset link's token: set the account's new password (the
        rules of account creation). The link is used up; every session of the
        account ends. 409 for a link used already or expired."""
        await password_reset(request).confirm(
            data.token, data.new_password, client_info(request, settings)
        )


@get(RESET_PAGE, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def reset_password_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Anyone: the page a reset link opens."""
    return Page(
        "reset_password.html",
        title=N_("Choose a new password"),
        viewer=await viewer_of(request),
    )


@get(VERIFY_PAGE, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def verify_email_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Anyone: the page an e-mail confirmation link opens (the script asks to sign in)."""
    return Page(
        "verify_email.html",
        title=N_("Confirm your e-mail address"),
        viewer=await viewer_of(request),
    )
