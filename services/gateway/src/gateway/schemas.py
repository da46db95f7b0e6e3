"""The HTTP API's own message types (the service payloads come from jhaas_schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from gateway.password_rules import MIN_PASSWORD_LENGTH
from gateway.store import UserRecord
from jhaas_schemas.model import PATTERN_RULES as CONTRACT_PATTERN_RULES
from jhaas_schemas.model import Role, single_line
from jhaas_schemas.rpc import (
    ApplicationMessage,
    Comment,
    Course,
    HubSpecUpdate,
    ParticipationId,
    Reason,
    Revision,
)

USERNAME = r"^[a-z0-9][a-z0-9._-]*$(?!\n)"
USERNAME_RULE = "lower-case letters, digits, '.', '_' and '-'; starts with a letter or digit"
# No space, no control character: nothing that could break a mail header.
_NO_CONTROL = r"\s\x00-\x1f\x7f-\x9f\u2028\u2029"
EMAIL = rf"^[^@{_NO_CONTROL}]{{1,64}}@[^@{_NO_CONTROL}]{{1,255}}\.[^@.{_NO_CONTROL}]{{2,63}}$(?!\n)"
EMAIL_RULE = "an e-mail address: name@domain.example"
LINK_TOKEN = r"^[A-Za-z0-9_-]+$(?!\n)"  # noqa: S105 - a pattern, not a secret
# The gateway's own patterns beside the contracts', for messages a person reads.
PATTERN_RULES = {
    **CONTRACT_PATTERN_RULES,
    USERNAME: f"must be {USERNAME_RULE}",
    EMAIL: f"must be {EMAIL_RULE}",
    LINK_TOKEN: "is not valid: copy the whole link from the mail",
}

Username = Annotated[
    str,
    msgspec.Meta(min_length=3, max_length=64, pattern=USERNAME, description=USERNAME_RULE),
]
# A password may hold any character (it is only hashed); lone surrogates, which
# could not be hashed, never decode from JSON.
Password = Annotated[str, msgspec.Meta(min_length=MIN_PASSWORD_LENGTH, max_length=1024)]
DisplayName = Annotated[str, single_line(max_length=200)]
# Sign-in takes whatever was typed: a wrong name is a wrong name, not a schema
# error; but it is looked up in the database, which cannot hold a NUL.
TypedUsername = Annotated[str, single_line(min_length=1, max_length=256)]
TypedPassword = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class LoginCredentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    username: TypedUsername
    password: TypedPassword


class User(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    username: str
    display_name: str
    roles: list[Role]
    disabled: bool
    created_at: datetime
    # Until the password is changed (POST /auth/password) every other call is 403.
    password_change_required: bool = False

    @classmethod
    def of(cls, record: UserRecord) -> User:
        return cls(
            user_id=record.user_id,
            username=record.username,
            display_name=record.display_name,
            roles=list(record.roles),
            disabled=record.disabled,
            created_at=record.created_at,
            password_change_required=record.password_change_required,
        )


class UserList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[User]


class UserCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    username: Username
    password: Password
    roles: list[Role] = []
    display_name: DisplayName = ""
    # The user must choose their own password before doing anything else.
    password_change_required: bool = False


class UserUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    roles: list[Role] | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET


class LoginResult(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token kind, not a secret
    expires_in: int
    user: User
    # True: change the password at POST /api/v1/auth/password before anything else.
    password_change_required: bool = False
    # True: the token and cookie reach only the second-factor check
    # (POST /api/v1/auth/mfa/verify) until it succeeds.
    mfa_required: bool = False


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One of your sign-ins (no secret of it)."""

    session_id: str
    created_at: datetime
    expires_at: datetime
    method: str  # "password", "oidc:<provider>"
    address: str | None
    user_agent: str | None
    current: bool  # the session of this request
    second_factor_confirmed: bool


class SessionList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Session]


class AuditEntryView(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    at: datetime
    kind: str
    outcome: str
    actor_id: str | None
    subject_id: str | None
    address: str | None
    details: dict[str, object]


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AuditEntryView]
    # Pass as `before` for the next (older) page; None when this was the last.
    next_before: int | None


class PasswordChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    current_password: TypedPassword
    new_password: Password


class RequestEdit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    changes: HubSpecUpdate
    # The revision the edit is based on; a newer one on the server gives 409.
    expected_revision: Revision | None = None


class ChangeBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A change of an approved course: the end, participants, resources or image."""

    changes: HubSpecUpdate
    comment: Comment = ""
    # The revision the change is based on; a newer one on the server gives 409.
    expected_revision: Revision | None = None


class CancelBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Comment = ""


class ApproveBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    comment: Comment = ""
    revision: Revision | None = None


class RejectBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason
    revision: Revision | None = None


class ChangeDecisionBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    comment: Comment = ""


class ChangesBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    comment: Reason
    revision: Revision | None = None


ErrorKind = Literal[
    "invalid",
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "unsupported_media_type",
    "too_many_requests",
    "unavailable",
    "internal",
]


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Every error the API returns, whatever its cause."""

    status: int
    error: ErrorKind
    message: str
    fields: dict[str, str] = {}
    correlation_id: str


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class JoinOpenBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    open: bool


class ApplyBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    message: ApplicationMessage = ""


ParticipationIds = Annotated[list[ParticipationId], msgspec.Meta(min_length=1, max_length=5000)]


class AcceptBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    participation_ids: ParticipationIds


class RejectApplicationsBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    participation_ids: ParticipationIds
    reason: Comment = ""


class RemoveBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Comment = ""


class TutorBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    username: TypedUsername


class CourseView(Course, frozen=True, kw_only=True):
    """A course as its leader and tutors see it, with the link to hand out."""

    join_url: str  # <JHAAS_PUBLIC_URL>/join/<join_code>
