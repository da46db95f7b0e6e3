"""The OAuth2 / OpenID Connect endpoints the course hubs use (gateway/oauth/)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.rfc6749 import AccessDeniedError, OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oidc.core.errors import InteractionRequiredError
from litestar import Controller, MediaType, Request, Response, get, post, route

from gateway.context import correlation_id_for, gateway_of
from gateway.controllers.signin import SIGN_IN_PATH, pending_page
from gateway.guards import session_caller
from gateway.oauth.adapter import HubAuthorizationServer, LitestarOAuth2Request, OAuthAnswer
from gateway.oauth.exchange import Exchange
from gateway.oauth.grants import HubClient
from gateway.oauth.pages import not_in_course_page, problem_page
from gateway.oauth.provider import Provider
from gateway.web.i18n import N_
from jhaas_runtime.rpc import RpcFailure

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
UNAVAILABLE = N_("Sign-in to the hubs is unavailable for a moment; please try again shortly.")
CANNOT = N_("Cannot sign in to this hub")


def _provider(request: Request[Any, Any, Any]) -> Provider:
    return gateway_of(request).oauth


def _query(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    return parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), True)


def _oauth_request(
    request: Request[Any, Any, Any], query: list[tuple[str, str]], form: list[tuple[str, str]]
) -> LitestarOAuth2Request:
    uri = _provider(request).issuer + request.url.path
    if query:
        uri += "?" + urlencode(query)
    return LitestarOAuth2Request(request.method, uri, request.headers, query, form)


def _json(answer: OAuthAnswer) -> Response[Any]:
    return Response(
        answer.body,
        status_code=answer.status,
        headers={**answer.headers, **NO_STORE},
        media_type=MediaType.JSON,
    )


def _oauth_error(status: int, error: str, description: str, **headers: str) -> Response[Any]:
    body = {"error": error, "error_description": description}
    return Response(body, status_code=status, headers={**headers, **NO_STORE})


def _client_id(headers: Any, form: list[tuple[str, str]]) -> str | Response[Any] | None:
    """Who the token request says it is, or the refusal: one way of authenticating
    (RFC 6749, 2.3), and Basic credentials that decode (Authlib's own decoding
    raises on bytes that are not UTF-8)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return dict(form).get("client_id")
    if any(name == "client_secret" for name, _ in form):
        return _oauth_error(
            400, "invalid_request", "authenticate one way: HTTP Basic or client_secret, not both"
        )
    try:
        base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return _oauth_error(
            401,
            "invalid_client",
            "the HTTP Basic credentials are not base64 of UTF-8 'client_id:client_secret'",
            **{"WWW-Authenticate": 'Basic realm="jhaas"'},
        )
    client_id: str | None = extract_basic_authorization(headers)[0]
    return client_id


def _redirect(location: str) -> Response[str]:
    return Response("", status_code=302, headers={"Location": location, **NO_STORE})


async def _registered_client(
    request: Request[Any, Any, Any], query: list[tuple[str, str]]
) -> HubClient | Response[Any]:
    """The hub the request names, with its redirect URI checked exactly; else the page
    that says why. Never a redirect: the redirect URI cannot be trusted yet."""
    title = CANNOT
    client_ids = [value for name, value in query if name == "client_id"]
    if len(client_ids) != 1:
        return problem_page(400, title, N_("The request must name exactly one client_id."))
    try:
        client = await _provider(request).client(client_ids[0], correlation_id_for(request.scope))
    except RpcFailure:
        return problem_page(503, title, UNAVAILABLE)
    if client is None:
        return problem_page(400, title, N_("This hub (client_id) is not registered here."))
    redirect_uris = [value for name, value in query if name == "redirect_uri"]
    if len(redirect_uris) != 1 or not client.check_redirect_uri(redirect_uris[0]):
        return problem_page(
            400,
            title,
            N_("The redirect_uri is not the one registered for this hub, character for character."),
        )
    return client


def _prompt_none(query: list[tuple[str, str]]) -> bool:
    return any(name == "prompt" and value == "none" for name, value in query)


def _error_redirect(
    server: HubAuthorizationServer, oauth_request: LitestarOAuth2Request, error: OAuth2Error
) -> Response[str]:
    """prompt=none shows no page: what would need one goes back to the hub as an error
    (the redirect URI and client were checked exactly before)."""
    error.redirect_uri = oauth_request.payload.redirect_uri
    error.state = oauth_request.payload.state
    answer = server.handle_error_response(oauth_request, error)
    return _redirect(answer.location or "")


class OAuthController(Controller):
    path = "/oauth"
    tags = ["oauth"]
    security = [{}]

    @get("/jwks", media_type="application/jwk-set+json")
    async def jwks(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """The keys that verify the gateway's ID tokens; old ones until their tokens expired."""
        return await _provider(request).keyring.jwks()

    @get("/authorize", media_type=MediaType.HTML)
    async def authorize(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Authorization code with PKCE S256: the course's people get a code for its hub."""
        provider, query = _provider(request), _query(request)
        client = await _registered_client(request, query)
        if isinstance(client, Response):
            return client
        oauth_request = _oauth_request(request, query, [])
        exchange = Exchange(
            provider,
            loop=asyncio.get_running_loop(),
            request_id=client.registration.request_id,
            correlation_id=correlation_id_for(request.scope),
        )
        server = HubAuthorizationServer(exchange, client)
        signed_in = await session_caller(request)
        caller = signed_in[0] if signed_in else None
        try:
            # With the caller, so that prompt=none answers login_required only to a
            # stranger (OIDC Core 3.1.2.6); a member gets the code without a page.
            grant = await provider.in_thread(
                lambda: server.get_consent_grant(oauth_request, end_user=caller)
            )
        except OAuth2Error as error:
            answer = server.handle_error_response(oauth_request, error)
            if answer.location:
                return _redirect(answer.location)
            return problem_page(400, CANNOT, error.get_error_description())
        silent = _prompt_none(query)
        if caller is None:
            return _redirect(
                f"{SIGN_IN_PATH}?{urlencode({'next': request.url.path + '?' + urlencode(query)})}"
            )
        here = request.url.path + "?" + urlencode(query)
        first = pending_page(caller, gateway_of(request).settings, here)
        if first is not None:
            # A second factor still to confirm, a password to replace, MFA to set up.
            if silent:
                return _error_redirect(server, oauth_request, InteractionRequiredError())
            return first
        try:
            membership = await provider.membership(
                caller.principal, client.registration.request_id, exchange.correlation_id
            )
        except RpcFailure:
            return problem_page(503, CANNOT, UNAVAILABLE, viewer=caller)
        if membership.user is None:
            if silent:
                denied = AccessDeniedError("you are not in the course of this hub")
                return _error_redirect(server, oauth_request, denied)
            return not_in_course_page(
                membership.title,
                f"{provider.issuer}/join",
                viewer=caller,
            )
        answer = await provider.in_thread(
            lambda: server.create_authorization_response(
                oauth_request, grant_user=membership.user, grant=grant
            )
        )
        if answer.location:
            return _redirect(answer.location)
        return _json(answer)

    @post("/token", status_code=200, media_type=MediaType.JSON)
    async def token(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Exchange a code (client_secret_basic or client_secret_post, code_verifier) for tokens."""
        provider = _provider(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM:
            return _oauth_error(400, "invalid_request", f"send the form as {FORM}")
        try:
            form = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _oauth_error(400, "invalid_request", "the form is not valid UTF-8")
        client_id = _client_id(request.headers, form)
        if isinstance(client_id, Response):
            return client_id
        correlation_id = correlation_id_for(request.scope)
        try:
            client = await provider.client(client_id, correlation_id) if client_id else None
            key = await provider.keyring.signing_key()
            exchange = Exchange(
                provider,
                loop=asyncio.get_running_loop(),
                request_id=client.registration.request_id if client else "",
                correlation_id=correlation_id,
                key=key,
            )
            server = HubAuthorizationServer(exchange, client)
            oauth_request = _oauth_request(request, [], form)
            answer = await provider.in_thread(lambda: server.create_token_response(oauth_request))
        except RpcFailure:
            return _oauth_error(503, "temporarily_unavailable", UNAVAILABLE)
        return _json(answer)

    @route("/userinfo", http_method=["GET", "POST"], status_code=200, media_type=MediaType.JSON)
    async def userinfo(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Who the access token's person is, and their role in the course (live)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _oauth_error(
                401,
                "invalid_request",
                "send 'Authorization: Bearer <access token>'",
                **{"WWW-Authenticate": 'Bearer realm="jhaas"'},
            )
        try:
            claims = await _provider(request).userinfo(
                token.strip(), correlation_id_for(request.scope)
            )
        except RpcFailure:
            return _oauth_error(503, "temporarily_unavailable", UNAVAILABLE)
        if claims is None:
            description = "the access token is expired or revoked, or its person left the course"
            return _oauth_error(
                401,
                "invalid_token",
                description,
                **{
                    "WWW-Authenticate": f'Bearer error="invalid_token", '
                    f'error_description="{description}"'
                },
            )
        return Response(claims, headers=NO_STORE)


@get("/.well-known/openid-configuration", tags=["oauth"], security=[{}])
async def openid_configuration(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """OpenID Connect discovery for the hubs' sign-in."""
    return _provider(request).discovery()
