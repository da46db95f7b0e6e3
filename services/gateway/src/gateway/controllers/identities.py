"""Identity providers and the identities linked to one's account (/api/v1/auth/...)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.status_codes import (
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from gateway.accounts import Caller
from gateway.controllers.oidc import OIDC_PATH, bound_to_browser
from gateway.errors import ApiError, error_responses
from gateway.guards import requires_authenticated, requires_recent_sign_in, requires_session
from gateway.identity.errors import ProviderUnavailable
from gateway.identity.schemas import (
    IdentityProvider,
    IdentityProviderList,
    LinkedIdentity,
    LinkedIdentityList,
    LinkStart,
)
from gateway.identity.signin import IdentitySignIn, UnknownProvider
from gateway.redirects import safe_next
from jhaas_schemas.errors import NotFound


class IdentityController(Controller):
    path = "/auth"
    tags = ["auth"]

    @get("/providers", security=[], responses=error_responses())
    async def providers(self, identity: NamedDependency[IdentitySignIn]) -> IdentityProviderList:
        """Anyone: the identity providers one can sign in with, in the order configured."""
        return IdentityProviderList(
            items=[
                IdentityProvider(
                    name=config.name,
                    display_name=config.display_name,
                    sign_in_url=f"{OIDC_PATH}/{quote(config.name)}",
                )
                for config in identity.providers.configs
            ]
        )

    @get("/identities", guards=[requires_authenticated], responses=error_responses())
    async def identities(
        self, caller: NamedDependency[Caller], identity: NamedDependency[IdentitySignIn]
    ) -> LinkedIdentityList:
        """Signed in: the provider identities linked to one's own account."""
        names = {config.name: config.display_name for config in identity.providers.configs}
        linked = await identity.linked_to(caller.user_id)
        return LinkedIdentityList(
            items=[
                LinkedIdentity(
                    provider=record.provider,
                    display_name=names.get(record.provider, record.provider),
                    email=record.email,
                    created_at=record.created_at,
                    last_sign_in_at=record.last_sign_in_at,
                )
                for record in linked
            ]
        )

    @post(
        "/identities/{provider:str}/link",
        guards=[requires_authenticated, requires_session, requires_recent_sign_in],
        responses=error_responses(
            HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND, HTTP_503_SERVICE_UNAVAILABLE
        ),
    )
    async def link(
        self,
        provider: FromPath[str],
        caller: NamedDependency[Caller],
        identity: NamedDependency[IdentitySignIn],
        request: Request[Any, Any, Any],
    ) -> Response[LinkStart]:
        """Signed in (a session, not an API token): start linking `provider` to one's
        account; open the `url` returned in the same browser.

        The identity is linked when the provider sends this same browser back
        while it is still signed in to this account: signed in with both.
        """
        next_url = safe_next(request.query_params.get("next"))
        try:
            started = await identity.start(provider, next_url=next_url, link_user_id=caller.user_id)
        except UnknownProvider:
            raise NotFound(f"no identity provider {provider[:64]!r}") from None
        except ProviderUnavailable as exc:
            raise ApiError(str(exc), status=HTTP_503_SERVICE_UNAVAILABLE) from None
        return Response(
            LinkStart(url=started.url),
            cookies=[bound_to_browser(request, started.state)],
            headers={"Cache-Control": "no-store"},
        )

    @delete(
        "/identities/{provider:str}",
        guards=[requires_authenticated, requires_session],
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND, HTTP_409_CONFLICT),
    )
    async def unlink(
        self,
        provider: FromPath[str],
        caller: NamedDependency[Caller],
        identity: NamedDependency[IdentitySignIn],
    ) -> None:
        """Signed in (a session, not an API token): unlink `provider` from one's account;
        409 when it is the last way to sign in (no password, no other provider)."""
        await identity.unlink(caller.user_id, provider)
