"""Accounts, for admins."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_403_FORBIDDEN,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)

from gateway.accounts import Accounts, Caller
from gateway.controllers.auth import client_info
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
