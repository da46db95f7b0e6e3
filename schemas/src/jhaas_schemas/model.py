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

Slug = Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=r"^[a-z][a-z0-9-]*$")]
Title = Annotated[str, msgspec.Meta(min_length=3, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
Quantity = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
Participants = Annotated[int, msgspec.Meta(ge=1, le=5000)]
Gpus = Annotated[int, msgspec.Meta(ge=0, le=8)]
ImageRef = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class Resources(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-user resources, as Kubernetes quantities (``500m``/``2`` CPU, ``4Gi``)."""

    cpu: Quantity
    memory: Quantity
    storage: Quantity
    gpus: Gpus = 0


class HubSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a course leader asks for; once approved, what the deployer builds."""

    title: Title
    slug: Slug
    description: Description = ""
    starts_at: datetime
    ends_at: datetime
    image: ImageRef
    default_interface: Interface = "lab"
    resources: Resources
    expected_participants: Participants


class DeletionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Proof of what was deleted, when, by which backend."""

    backend: str
    deleted_at: datetime
    objects: tuple[str, ...] = ()
