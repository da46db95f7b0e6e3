"""The API's messages about identity providers and linked identities."""

from __future__ import annotations

from datetime import datetime

import msgspec


class IdentityProvider(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    display_name: str
    sign_in_url: str  # a path here: GET it in the browser to sign in with this provider


class IdentityProviderList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[IdentityProvider]


class LinkedIdentity(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    display_name: str
    email: str | None
    created_at: datetime
    last_sign_in_at: datetime | None


class LinkedIdentityList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[LinkedIdentity]


class LinkStart(msgspec.Struct, frozen=True, kw_only=True):
    # Open it in the same browser, which must stay signed in to this account.
    url: str
