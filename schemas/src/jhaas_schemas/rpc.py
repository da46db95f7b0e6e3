"""Request-reply contracts: gateway -> service over ``jhaas.rpc.<service>.<op>``.

Every call carries the authenticated principal; every reply is either ``ok``
with the operation's result or ``error`` with a code the gateway maps to an
HTTP status. Services still check domain rules themselves.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

import msgspec

from jhaas_schemas.model import (
    Description,
    Gpus,
    HubSpec,
    ImageRef,
    Interface,
    Participants,
    Principal,
    Quantity,
    RequestStatus,
    Resources,
    Slug,
    Title,
    multi_line,
    single_line,
)
from jhaas_schemas.streams import rpc_subject

T = TypeVar("T")


class ErrorCode(enum.StrEnum):
    INVALID = "invalid"  # 422: the input breaks a rule; `fields` names the culprits
    NOT_FOUND = "not_found"  # 404
    FORBIDDEN = "forbidden"  # 403
    CONFLICT = "conflict"  # 409: taken slug, wrong state, stale revision
    UNAVAILABLE = "unavailable"  # 503: the service could not do it now
    INTERNAL = "internal"  # 500: a defect on our side, logged with its correlation id


class RpcError(msgspec.Struct, frozen=True, kw_only=True):
    code: ErrorCode
    message: str
    fields: dict[str, str] = {}


class RpcCall(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    payload: T


class RpcReply(msgspec.Struct, Generic[T], frozen=True, kw_only=True, omit_defaults=True):
    ok: T | None = None
    error: RpcError | None = None


class Empty(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


# --- request-svc -------------------------------------------------------------


class RequestOps:
    SUBMIT = rpc_subject("request", "submit")
    GET = rpc_subject("request", "get")
    LIST = rpc_subject("request", "list")
    UPDATE = rpc_subject("request", "update")
    WITHDRAW = rpc_subject("request", "withdraw")
    CANCEL = rpc_subject("request", "cancel")


class ResourcesUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cpu: Quantity | msgspec.UnsetType = msgspec.UNSET
    memory: Quantity | msgspec.UnsetType = msgspec.UNSET
    storage: Quantity | msgspec.UnsetType = msgspec.UNSET
    gpus: Gpus | msgspec.UnsetType = msgspec.UNSET


class HubSpecUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A partial edit: only the fields that are set change."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    slug: Slug | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    starts_at: datetime | msgspec.UnsetType = msgspec.UNSET
    ends_at: datetime | msgspec.UnsetType = msgspec.UNSET
    image: ImageRef | msgspec.UnsetType = msgspec.UNSET
    default_interface: Interface | msgspec.UnsetType = msgspec.UNSET
    resources: ResourcesUpdate | msgspec.UnsetType = msgspec.UNSET
    expected_participants: Participants | msgspec.UnsetType = msgspec.UNSET


Revision = Annotated[int, msgspec.Meta(ge=1)]
RequestId = Annotated[str, single_line(min_length=1, max_length=64)]
Reason = Annotated[str, multi_line(min_length=1, max_length=2000)]
Comment = Annotated[str, multi_line(max_length=2000)]


class SubmitRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    spec: HubSpec


class GetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId


class ListRequests(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scope: Literal["mine", "all"] = "mine"
    status: RequestStatus | None = None


class UpdateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    changes: HubSpecUpdate
    expected_revision: Revision | None = None


class WithdrawRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    reason: Comment = ""


class HubRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A hub request as its leader (and governance) see it."""

    request_id: str
    leader_id: str
    status: RequestStatus
    revision: int
    spec: HubSpec
    created_at: datetime
    updated_at: datetime
    review_comment: str = ""
    approved_revision: int | None = None
    hub_url: str | None = None


class HubRequestList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[HubRequest]


# --- governance-svc ----------------------------------------------------------


class GovernanceOps:
    LIST_REVIEWS = rpc_subject("governance", "list_reviews")
    GET_REVIEW = rpc_subject("governance", "get_review")
    APPROVE = rpc_subject("governance", "approve")
    REJECT = rpc_subject("governance", "reject")
    REQUEST_CHANGES = rpc_subject("governance", "request_changes")


class ReviewState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"


class ListReviews(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    state: ReviewState | None = ReviewState.PENDING


class GetReview(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId


class ApproveRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    comment: Comment = ""
    # The revision the reviewer looked at; a newer edit makes the decision stale.
    revision: Revision | None = None


class RejectRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    reason: Reason
    revision: Revision | None = None


class RequestChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    comment: Reason
    revision: Revision | None = None


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    state: ReviewState
    decided_by: str
    decided_at: datetime
    revision: int
    comment: str = ""


class Review(msgspec.Struct, frozen=True, kw_only=True):
    review_id: str
    request_id: str
    leader_id: str
    state: ReviewState
    revision: int
    spec: HubSpec
    submitted_at: datetime
    decisions: list[Decision] = []


class ReviewList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Review]


# --- deployer-svc ------------------------------------------------------------


class DeployerOps:
    LIST_DEPLOYMENTS = rpc_subject("deployer", "list_deployments")
    REDEPLOY = rpc_subject("deployer", "redeploy")


class DeploymentState(enum.StrEnum):
    SCHEDULED = "scheduled"
    DEPLOYING = "deploying"
    RUNNING = "running"
    FAILED = "failed"
    ENDING = "ending"
    DELETED = "deleted"
    CANCELLED = "cancelled"


class ListDeployments(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId | None = None


class RedeployHub(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An admin asks for a failed hub to be built again."""

    request_id: RequestId


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    deployment_id: str
    request_id: str
    leader_id: str
    state: DeploymentState
    deploy_at: datetime
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    configuration: HubSpec
    hub_url: str | None = None
    teardown_at: datetime | None = None
    attempts: int = 0
    failure_reason: str = ""


class DeploymentList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Deployment]


__all__ = [
    "ApproveRequest",
    "CancelRequest",
    "Decision",
    "DeployerOps",
    "Deployment",
    "DeploymentList",
    "DeploymentState",
    "Empty",
    "ErrorCode",
    "GetRequest",
    "GetReview",
    "GovernanceOps",
    "HubRequest",
    "HubRequestList",
    "HubSpec",
    "HubSpecUpdate",
    "ListDeployments",
    "ListRequests",
    "ListReviews",
    "RedeployHub",
    "RejectRequest",
    "RequestChanges",
    "RequestOps",
    "Resources",
    "ResourcesUpdate",
    "Review",
    "ReviewList",
    "ReviewState",
    "RpcCall",
    "RpcError",
    "RpcReply",
    "SubmitRequest",
    "UpdateRequest",
    "WithdrawRequest",
]
