"""The self-service API's message types: reset, profile, e-mail, tokens, export, deletion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from gateway.schemas import (
    EMAIL,
    EMAIL_RULE,
    LINK_TOKEN,
    DisplayName,
    Password,
    TypedPassword,
    TypedUsername,
)
from jhaas_schemas.model import Role, single_line
from jhaas_schemas.rpc import HubRequest, MyCourse, Participation

# The languages the product speaks to people in (mail, pages); more as they are translated.
SUPPORTED_LANGUAGES = ("de", "en")
Language = Literal["de", "en"]
# What a person may choose: a language, or "" for whatever their browser asks for.
LanguageChoice = Literal["", "de", "en"]

Email = Annotated[
    str, msgspec.Meta(min_length=6, max_length=254, pattern=EMAIL, description=EMAIL_RULE)
]
# What a link carries: generous, but bounded before it is hashed and looked up.
LinkToken = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, pattern=LINK_TOKEN, description="from the link"),
]
TokenName = Annotated[str, single_line(min_length=1, max_length=100)]


class PasswordResetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One of the two: the account's username, or its verified e-mail address."""

    username: TypedUsername | None = None
    email: Email | None = None


class PasswordResetAccepted(msgspec.Struct, frozen=True, kw_only=True):
    message: str


class PasswordResetConfirm(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: LinkToken
    new_password: Password


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    username: str
    display_name: str
    roles: list[Role]
    email: str | None  # verified (by its link, or by the identity provider), or None
    email_verified: bool
    # An address given but not yet confirmed by the link mailed to it.
    pending_email: str | None = None
    preferred_language: str  # "": none chosen (the browser's; mails in English)
    has_password: bool  # False: signs in through an identity provider only
    mfa_enrolled: bool
    created_at: datetime


class ProfileUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    # "": the browser's language (pages); mails are then in English.
    preferred_language: LanguageChoice | msgspec.UnsetType = msgspec.UNSET
    # Mailed a link; the address counts once the link is used (POST /me/email/verify).
    email: Email | msgspec.UnsetType = msgspec.UNSET


class EmailVerification(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: LinkToken


class TokenCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: TokenName
    roles: list[Role] = []  # a subset of the caller's; none: acts as a user without roles
    expires_in_days: Annotated[int, msgspec.Meta(ge=1)] | None = None  # None: the maximum


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    token_id: str
    name: str
    roles: list[Role]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenCreated(TokenInfo, frozen=True, kw_only=True):
    token: str  # shown this once: only its SHA-256 is kept


class TokenList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[TokenInfo]


class AccountDeletion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Required for an account with a password: a stolen session alone deletes nothing.
    password: TypedPassword | None = None


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    method: str
    created_at: datetime
    expires_at: datetime
    address: str | None = None
    user_agent: str | None = None


class IdentityInfo(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    subject: str
    email: str | None
    created_at: datetime
    last_sign_in_at: datetime | None = None


class AuditInfo(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    kind: str
    outcome: str
    actor_id: str | None
    subject_id: str | None
    address: str | None
    details: dict[str, object]


class ServiceData(msgspec.Struct, frozen=True, kw_only=True):
    requests: list[HubRequest]  # request-svc: the hub requests I made
    courses: list[MyCourse]  # participant-svc: what I lead, tutor or applied to
    participations: list[Participation]  # participant-svc: my applications, any status


class AccountExport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything JHaaS keeps about one person, for them to take away."""

    exported_at: datetime
    profile: Profile
    identities: list[IdentityInfo]
    sessions: list[SessionInfo]
    tokens: list[TokenInfo]
    audit: list[AuditInfo]  # entries where I acted or was acted on
    services: ServiceData
