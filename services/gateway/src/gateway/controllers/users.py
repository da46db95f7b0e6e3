"""Accounts, for admins."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)

from gateway.account_deletion import delete_account
from gateway.accounts import Accounts, Caller
from gateway.controllers.auth import client_info
from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, error_responses
from gateway.guards import requires_admin, requires_authenticated, requires_recent_mfa
from gateway.schemas import User, UserCreate, UserList, UserUpdate
from gateway.settings import GatewaySettings


class UserController(Controller):
    path = "/users"
    tags = ["users"]
    guards = [requires_authenticated, requires_admin]

    @post(
        "",
        guards=[requires_recent_mfa],
        responses=error_responses(
            HTTP_403_FORBIDDEN, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY
        ),
    )
    async def create_user(
        self,
        data: JSONBody[UserCreate],
        accounts: NamedDependency[Accounts],
        caller: NamedDependency[Caller],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> User:
        """Admins, with a recent second-factor check: create a local account (201);
        409 when the username is taken.

        With `password_change_required` the user must choose a new password
        (POST /auth/password) before anything else.
        """
        record = await accounts.create_user(
            username=data.username,
            password=data.password,
            roles=tuple(data.roles),
            display_name=data.display_name,
            password_change_required=data.password_change_required,
            actor_id=caller.user_id,
            client=client_info(request, settings),
        )
        return User.of(record)

    @get("", responses=error_responses(HTTP_403_FORBIDDEN))
    async def list_users(self, accounts: NamedDependency[Accounts]) -> UserList:
        """Admins: every account."""
        return UserList(items=[User.of(record) for record in await accounts.list_users()])

    @patch(
        "/{user_id:str}",
        guards=[requires_recent_mfa],
        responses=error_responses(*SERVICE_ERRORS),
    )
    async def update_user(
        self,
        user_id: FromPath[str],
        data: JSONBody[UserUpdate],
        accounts: NamedDependency[Accounts],
        caller: NamedDependency[Caller],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> User:
        """Admins, with a recent second-factor check: grant or revoke roles, disable
        or enable; disabling ends the user's sessions. Every change is audited."""
        record = await accounts.update_user(
            user_id,
            roles=None if data.roles is msgspec.UNSET else tuple(data.roles),
            disabled=None if data.disabled is msgspec.UNSET else data.disabled,
            actor_id=caller.user_id,
            client=client_info(request, settings),
        )
        return User.of(record)

    @delete(
        "/{user_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_recent_mfa],
        responses=error_responses(*SERVICE_ERRORS),
    )
    async def delete_user(
        self,
        user_id: FromPath[str],
        accounts: NamedDependency[Accounts],
        caller: NamedDependency[Caller],
        services: NamedDependency[ServiceCalls],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> None:
        """Admins, with a recent second-factor check: delete an account, on the rules
        of deleting one's own (409 while the user leads a course that is not over;
        their participations end as if they left). The last active admin stays."""
        await accounts.get_user(user_id)  # 404 for an unknown or malformed id
        await delete_account(
            accounts.db,
            services,
            user_id=user_id,
            actor_id=caller.user_id,
            address=client_info(request, settings).address,
            now=accounts.clock,
        )
