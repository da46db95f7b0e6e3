"""Personal API tokens: made, listed and revoked by their owner, signed in in person."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_422_UNPROCESSABLE_ENTITY,
)

from gateway.accounts import Caller
from gateway.context import gateway_of
from gateway.controllers.auth import client_info
from gateway.errors import error_responses
from gateway.guards import requires_authenticated, requires_recent_sign_in, requires_session
from gateway.personal_tokens import token_info
from gateway.self_schemas import TokenCreate, TokenCreated, TokenInfo, TokenList
from gateway.settings import GatewaySettings


class TokenController(Controller):
    path = "/tokens"
    tags = ["tokens"]
    # A token cannot make, see or revoke tokens: only the person, fully signed in.
    guards = [requires_authenticated, requires_session]

    @post(
        "",
        guards=[requires_recent_sign_in],
        responses=error_responses(HTTP_403_FORBIDDEN, HTTP_422_UNPROCESSABLE_ENTITY),
    )
    async def create_token(
        self,
        data: JSONBody[TokenCreate],
        caller: NamedDependency[Caller],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Response[TokenCreated]:
        """Anyone signed in (not with a token): a token for scripts (201), with roles
        you hold, living `expires_in_days` (at most JHAAS_API_TOKEN_MAX_DAYS, the
        default). `token` is shown only in this answer."""
        record, secret = await gateway_of(request).personal_tokens.issue(
            caller,
            name=data.name,
            roles=data.roles,
            days=data.expires_in_days,
            address=client_info(request, settings).address,
        )
        created = TokenCreated(**_fields(token_info(record)), token=secret)
        return Response(created, status_code=201, headers={"Cache-Control": "no-store"})

    @get("", responses=error_responses(HTTP_403_FORBIDDEN))
    async def list_tokens(
        self, caller: NamedDependency[Caller], request: Request[Any, Any, Any]
    ) -> TokenList:
        """Anyone signed in (not with a token): your tokens, without their secrets."""
        records = await gateway_of(request).personal_tokens.list(caller.user_id)
        return TokenList(items=[token_info(record) for record in records])

    @delete(
        "/{token_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND),
    )
    async def revoke_token(
        self,
        token_id: FromPath[str],
        caller: NamedDependency[Caller],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> None:
        """Anyone signed in (not with a token): revoke one of your tokens; it stops
        working at once. Someone else's token id is 404."""
        address = client_info(request, settings).address
        await gateway_of(request).personal_tokens.revoke(caller, token_id, address)


def _fields(info: TokenInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in info.__struct_fields__}
