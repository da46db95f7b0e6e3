"""Value types shared by events and RPC messages."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

import msgspec


class Role(enum.StrEnum):
    LEADER = "leader"
    GOVERNANCE = "governance"
    PARTICIPANT = "participant"
    ADMIN = "admin"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller, as the gateway vouches for it."""

    user_id: str
    username: str
    roles: tuple[Role, ...] = ()

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)


class RequestStatus(enum.StrEnum):
    """The lifecycle status a course leader sees (ARCHITECTURE.md, Lifecycle)."""

    SUBMITTED = "submitted"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    DEPLOYING = "deploying"
    RUNNING = "running"
    ENDING = "ending"
    DELETED = "deleted"
    CANCELLED = "cancelled"
    FAILED = "failed"


Interface = Literal["lab", "notebook"]

# Text that people type is stored, shown and logged: control characters have no
# place in it (PostgreSQL cannot even store NUL), and neither have the Unicode
# line separators that break JavaScript and log lines. Lone surrogates never
# get this far: msgspec refuses them when it decodes JSON.
# Python's `$` also matches before a final newline; `(?!\n)` takes that back,
# and means nothing to the JSON Schema (ECMA) reader of the same pattern.
SINGLE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$(?!\n)"
# Several lines: tab, LF and CRLF are the only control characters allowed.
MULTI_LINE = r"^(?:[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]|\r\n)*$"
SLUG = r"^[a-z][a-z0-9-]*$(?!\n)"
# What a person is told when a field breaks one of these patterns (msgspec
# itself would quote the regular expression).
PATTERN_RULES = {
    SINGLE_LINE: "must be one line of text without control characters (NUL, tab, line breaks)",
    MULTI_LINE: "must be text without control characters other than tab and line breaks",
    SLUG: "must be lower-case letters, digits and '-', starting with a letter",
}


def single_line(*, min_length: int | None = None, max_length: int | None = None) -> msgspec.Meta:
    return msgspec.Meta(pattern=SINGLE_LINE, min_length=min_length, max_length=max_length)


def multi_line(*, min_length: int | None = None, max_length: int | None = None) -> msgspec.Meta:
    return msgspec.Meta(pattern=MULTI_LINE, min_length=min_length, max_length=max_length)


Slug = Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=SLUG)]
Title = Annotated[str, single_line(min_length=3, max_length=200)]
Description = Annotated[str, multi_line(max_length=5000)]
Quantity = Annotated[str, single_line(min_length=1, max_length=20)]
Participants = Annotated[int, msgspec.Meta(ge=1, le=5000)]
Gpus = Annotated[int, msgspec.Meta(ge=0, le=8)]
ImageRef = Annotated[str, single_line(min_length=1, max_length=512)]


class Resources(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-user resources, as Kubernetes quantities (``500m``/``2`` CPU, ``4Gi``)."""

    cpu: Quantity
    memory: Quantity
    storage: Quantity
    gpus: Gpus = 0


# A preset's name, as the policy's presets name them.
PresetRef = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=SLUG)]


class HubSpecDraft(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a course leader submits: a HubSpec whose image and resources may be
    left to the preset it names (request-svc fills them in from the policy)."""

    title: Title
    slug: Slug
    description: Description = ""
    starts_at: datetime
    ends_at: datetime
    image: ImageRef | None = None
    default_interface: Interface = "lab"
    resources: Resources | None = None
    expected_participants: Participants
    # The software stack picked from the policy's presets; absent (not even
    # encoded, so consumers that predate it read the spec unchanged): none.
    preset: PresetRef | msgspec.UnsetType = msgspec.UNSET


class HubSpec(HubSpecDraft, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a course leader asks for, complete; once approved, what the deployer builds."""

    image: ImageRef
    resources: Resources


class DeletionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Proof of what was deleted, when, by which backend."""

    backend: str
    deleted_at: datetime
    objects: tuple[str, ...] = ()
