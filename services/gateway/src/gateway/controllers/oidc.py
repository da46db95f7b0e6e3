"""The browser's way through an identity provider: /signin/oidc/{provider}[/callback].

Plain pages and redirects, no script. The start sends the browser to the
provider and sets the cookie binding this sign-in to this browser; the
callback signs in (or links) and goes on to `next`, or to the second factor
first when the account has one.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.datastructures import Cookie
from litestar.params import FromPath

from gateway.context import gateway_of
from gateway.controllers.auth import _session_cookies, client_info
from gateway.controllers.signin import after_first_factor
from gateway.cookies import OIDC_LOGIN, make_cookie, read_cookie
from gateway.guards import session_caller
from gateway.identity.binding import with_state, without_state
from gateway.identity.errors import CallbackRefused, ProviderUnavailable
from gateway.identity.signin import LOGIN_LIFETIME, UnknownProvider, Visit
from gateway.oauth.pages import problem_page
from gateway.redirects import safe_next
from gateway.settings import GatewaySettings
from gateway.web.i18n import N_

OIDC_PATH = "/signin/oidc"
TITLE = N_("Sign in")


def binding_cookie(settings: GatewaySettings, value: str) -> Cookie:
    # Lax, not Strict: the provider sends the browser back with a cross-site redirect.
    return make_cookie(settings, OIDC_LOGIN, value, LOGIN_LIFETIME, path=OIDC_PATH)


def bound_to_browser(request: Request[Any, Any, Any], state: str) -> Cookie:
    gateway = gateway_of(request)
    settings = gateway.settings
    current = read_cookie(request, settings, OIDC_LOGIN)
    return binding_cookie(settings, with_state(current, settings.jwt_secret, state))


@get(
    f"{OIDC_PATH}/{{provider:str}}", media_type=MediaType.HTML, include_in_schema=False, security=[]
)
async def oidc_sign_in(request: Request[Any, Any, Any], provider: FromPath[str]) -> Response[Any]:
    """Anyone: start signing in with `provider`; back to `next` (a path here) afterwards."""
    gateway = gateway_of(request)
    next_url = safe_next(request.query_params.get("next"))
    try:
        started = await gateway.identity.start(provider, next_url=next_url)
    except UnknownProvider:
        return problem_page(404, TITLE, f"There is no identity provider {provider[:64]!r} here.")
    except ProviderUnavailable as exc:
        return problem_page(503, TITLE, f"{exc}. You can also sign in another way.")
    return Response(
        "",
        status_code=303,
        headers={"Location": started.url, "Cache-Control": "no-store"},
        cookies=[bound_to_browser(request, started.state)],
    )


@get(
    f"{OIDC_PATH}/{{provider:str}}/callback",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def oidc_callback(request: Request[Any, Any, Any], provider: FromPath[str]) -> Response[Any]:
    """Anyone: where the provider sends the browser back; signs in, or links the identity."""
    gateway = gateway_of(request)
    settings = gateway.settings
    browser = await session_caller(request)
    # Linking needs a session with nothing pending: one still owing its second
    # factor has not shown it is the account's owner yet.
    caller = browser[0] if browser is not None else None
    fully = caller is not None and caller.pending(mfa_for_all=settings.mfa_required_for_all) is None
    binding = read_cookie(request, settings, OIDC_LOGIN)
    visit = Visit(
        binding_cookie=binding,
        session_user_id=caller.user_id if caller is not None and fully else None,
        client=client_info(request, settings),
    )
    params = {key: request.query_params.get(key, "") for key in request.query_params}
    state = params.get("state", "")
    cookies = [binding_cookie(settings, without_state(binding, settings.jwt_secret, state))]
    try:
        finished = await gateway.identity.finish(provider, params, visit)
    except CallbackRefused as refused:
        response = problem_page(
            refused.status,
            N_("Sign-in refused"),
            str(refused),
            viewer=caller,
        )
        response.cookies.extend(cookies)
        return response
    location = finished.next_url
    if finished.signed_in is not None:
        cookies.extend(_session_cookies(settings, finished.signed_in, gateway.accounts.clock()))
        location = after_first_factor(finished.signed_in, finished.next_url)
    headers = {"Location": location, "Cache-Control": "no-store"}
    return Response("", status_code=303, headers=headers, cookies=cookies)
