"""Request-reply contracts: gateway -> service over ``jhaas.rpc.<service>.<op>``.

Every call carries the authenticated principal; every reply is either ``ok``
with the operation's result or ``error`` with a code the gateway maps to an
HTTP status. Services still check domain rules themselves.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from jhaas_schemas.model import (
    Description,
    Gpus,
    HubSpec,
    HubSpecDraft,
    ImageRef,
    Interface,
    Participants,
    PresetRef,
    Principal,
    Quantity,
    RequestStatus,
    Resources,
    Slug,
    Title,
    multi_line,
    single_line,
)
from jhaas_schemas.policy import (
    AutoApproval,
    Capacity,
    CourseLimits,
    ImageRules,
    PerUserLimits,
    Preset,
    RuleCheck,
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


UserId = Annotated[str, single_line(min_length=1, max_length=64)]


class UserRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A user the caller acts on: themselves, or anyone for an admin."""

    user_id: UserId


# --- request-svc -------------------------------------------------------------


class RequestOps:
    SUBMIT = rpc_subject("request", "submit")
    GET = rpc_subject("request", "get")
    LIST = rpc_subject("request", "list")
    UPDATE = rpc_subject("request", "update")
    WITHDRAW = rpc_subject("request", "withdraw")
    CANCEL = rpc_subject("request", "cancel")
    # The requests a user leads that are not over yet (submitted up to running, or
    # failed): the gateway asks before it deletes the account.
    LEADING = rpc_subject("request", "leading")  # UserRef -> HubRequestList
    # The leader asks to change an approved course (ProposeChange -> HubRequest).
    PROPOSE_CHANGE = rpc_subject("request", "propose_change")


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
    # Picking a preset takes its image and resources, except those set beside it.
    preset: PresetRef | msgspec.UnsetType = msgspec.UNSET


Revision = Annotated[int, msgspec.Meta(ge=1)]
RequestId = Annotated[str, single_line(min_length=1, max_length=64)]
Reason = Annotated[str, multi_line(min_length=1, max_length=2000)]
Comment = Annotated[str, multi_line(max_length=2000)]


class SubmitRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    spec: HubSpecDraft  # a complete HubSpec, or one naming a preset


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


class ProposeChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A change of an approved course. Only `ends_at`, `expected_participants`,
    `resources` and `image` may change after approval; any other field is refused
    by name (422). `expected_revision` refuses a change based on a stale view (409)."""

    request_id: RequestId
    changes: HubSpecUpdate
    comment: Comment = ""
    expected_revision: Revision | None = None


class ChangeStatus(enum.StrEnum):
    PENDING = "pending"  # governance has not answered; the course runs as approved
    APPROVED = "approved"  # the course runs with `configuration` now
    REJECTED = "rejected"  # the course keeps its approved configuration


class RequestChange(msgspec.Struct, frozen=True, kw_only=True):
    """The latest change proposed for an approved course, and governance's answer."""

    change_id: str
    revision: int  # the request's revision the change made
    configuration: HubSpec  # the whole configuration as the change would make it
    comment: str
    proposed_at: datetime
    status: ChangeStatus = ChangeStatus.PENDING
    decided_by: str | None = None  # "system" when it applied without review
    decided_at: datetime | None = None
    answer: str = ""  # the reviewer's comment, or the reason of a refusal


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
    # What the hub cannot do on its host (the last HubReady.warnings), for the leader.
    hub_warnings: list[str] = []
    # The latest change after approval (open while its status is pending), or None.
    change: RequestChange | None = None


class HubRequestList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[HubRequest]


# --- governance-svc ----------------------------------------------------------


class GovernanceOps:
    LIST_REVIEWS = rpc_subject("governance", "list_reviews")
    GET_REVIEW = rpc_subject("governance", "get_review")
    APPROVE = rpc_subject("governance", "approve")
    REJECT = rpc_subject("governance", "reject")
    REQUEST_CHANGES = rpc_subject("governance", "request_changes")
    GET_POLICY = rpc_subject("governance", "get_policy")  # GetPolicy -> PolicyView
    LIST_AUDIT = rpc_subject("governance", "list_audit")  # ListAudit -> GovernanceAuditPage
    CALENDAR = rpc_subject("governance", "calendar")  # GetCalendar -> CalendarView
    APPROVE_CHANGE = rpc_subject("governance", "approve_change")  # DecideChange -> ChangeReview
    REJECT_CHANGE = rpc_subject("governance", "reject_change")  # DecideChange -> ChangeReview


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


class ResourceTotal(msgspec.Struct, frozen=True, kw_only=True):
    """What a course would reserve of one resource: per-user x participants."""

    resource: Literal["cpu", "memory", "storage", "gpus"]
    per_user: str  # as requested: "500m", "2Gi"
    total: str  # as a person reads it: "15 cores", "60 GiB"
    amount: int  # the raw total in `unit`
    unit: Literal["millicores", "bytes", "gpus"]


Dimension = Literal["cpu", "memory", "storage", "gpus"]


class Amounts(msgspec.Struct, frozen=True, kw_only=True):
    """Amounts of the four resources: CPU in millicores, memory and storage in
    bytes, GPUs."""

    cpu: int = 0
    memory: int = 0
    storage: int = 0
    gpus: int = 0


class ReservationView(msgspec.Struct, frozen=True, kw_only=True):
    """What one approved course holds of the target over its window: from its
    deployment (start - the deployer's lead) to its deletion (end + the
    teardown grace), per-user resources x its participant limit."""

    request_id: str
    title: str
    leader_id: str
    window_start: datetime
    window_end: datetime
    amounts: Amounts


class Shortfall(msgspec.Struct, frozen=True, kw_only=True):
    """A resource the target runs short of at one moment of a course's window."""

    resource: Dimension
    at: datetime  # the first moment it is short
    needed: int  # everything reserved then, the new course included
    capacity: int
    message: str


class CalendarCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the course fits the capacity calendar over its window (filled by
    the capacity calendar; None where it is not checked). `enforced` false:
    shown, but it never refuses an approval."""

    fits: bool
    message: str = ""
    enforced: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None
    # The courses already approved whose windows overlap this one's.
    overlapping: list[ReservationView] = []
    short: list[Shortfall] = []


class ReviewChecks(msgspec.Struct, frozen=True, kw_only=True):
    """The automatic checks a reviewer sees, against the policy in force now."""

    policy_version: str
    passed: bool  # every rule passed (and the calendar, where checked)
    rules: list[RuleCheck]
    totals: list[ResourceTotal]
    # CPU cores x participants x the course's hours.
    core_hours: float
    calendar: CalendarCheck | None = None


class Review(msgspec.Struct, frozen=True, kw_only=True):
    review_id: str
    request_id: str
    leader_id: str
    state: ReviewState
    revision: int
    spec: HubSpec
    submitted_at: datetime
    decisions: list[Decision] = []
    checks: ReviewChecks | None = None
    # Changes of the approved course waiting for a reviewer, or decided.
    changes: list[ChangeReview] = []


class GetPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class PolicyView(msgspec.Struct, frozen=True, kw_only=True):
    """The policy as published: what every signed-in user may know to fill in a
    request. The capacity and the auto-approval envelope (what the system would
    approve unseen) only for governance and admins."""

    version: str
    limits: PerUserLimits
    course: CourseLimits
    images: ImageRules
    presets: list[Preset]
    capacity: Capacity | None = None
    auto_approval: AutoApproval | None = None


class ReviewList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Review]
    # Changes of approved courses in the same state (kind "change").
    changes: list[ChangeReview] = []


# --- the capacity calendar -----------------------------------------------------

CALENDAR_MAX_DAYS = 732  # the longest period one calendar call covers


class GetCalendar(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The reservations overlapping [start, end) and the free capacity over it."""

    start: datetime
    end: datetime


class CapacityStep(msgspec.Struct, frozen=True, kw_only=True):
    """From `at` to the next step (or the period's end): what is reserved and
    what is free (capacity - reserved; negative: overbooked)."""

    at: datetime
    reserved: Amounts
    free: Amounts


class CalendarView(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime
    end: datetime
    capacity: Amounts
    enforced: bool
    reservations: list[ReservationView]
    steps: list[CapacityStep]


# --- changes of approved courses -------------------------------------------------


class ChangeState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class DecideChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    change_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    comment: Comment = ""  # approving: optional; rejecting: the reason, required


class ChangeReview(msgspec.Struct, frozen=True, kw_only=True):
    """A change of an approved course waiting for a reviewer (or decided)."""

    kind: Literal["change"] = "change"
    change_id: str
    request_id: str
    leader_id: str
    state: ChangeState
    revision: int  # the request's revision the change makes
    approved: HubSpec  # the configuration the course runs with
    proposed: HubSpec  # the configuration the change asks for
    comment: str = ""  # the leader's
    proposed_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""  # the reviewer's comment or reason
    checks: ReviewChecks | None = None


class ChangeReviewList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ChangeReview]


# --- governance audit trail ----------------------------------------------------


class AuditAction(enum.StrEnum):
    """What an entry of the governance audit trail records."""

    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    AUTO_APPROVED = "auto_approved"
    CHANGE_APPROVED = "change_approved"
    CHANGE_REJECTED = "change_rejected"
    CHANGE_AUTO_APPROVED = "change_auto_approved"
    POLICY_CHANGED = "policy_changed"


AUDIT_PAGE_MAX = 1000


class ListAudit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Filters over the audit trail (all optional, combined with AND); newest
    first, `limit` entries a page; `cursor` is the previous page's next_cursor."""

    request_id: str | None = None
    actor: str | None = None
    action: AuditAction | None = None
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before
    limit: Annotated[int, msgspec.Meta(ge=1, le=AUDIT_PAGE_MAX)] = 100
    cursor: str | None = None


class GovernanceAuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One decision or policy change: who, when, what was checked, the comment."""

    id: int
    at: datetime
    actor: str  # a user id, "system", or "operator" (a policy change)
    action: AuditAction
    request_id: str | None = None
    change_id: str | None = None
    revision: int | None = None
    comment: str = ""
    # The checks the decider saw at that moment (a review's, or the rules alone).
    checks: ReviewChecks | list[RuleCheck] | None = None
    details: dict[str, Any] = {}


class GovernanceAuditPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[GovernanceAuditEntry]
    next_cursor: str | None = None  # None: this was the last page


# --- participant-svc ---------------------------------------------------------


class ParticipantOps:
    COURSE = rpc_subject("participant", "course")  # CourseRef -> Course (leader, tutor)
    ROTATE_JOIN = rpc_subject("participant", "rotate_join")  # CourseRef -> Course (leader)
    SET_JOIN_OPEN = rpc_subject("participant", "set_join_open")  # SetJoinOpen -> Course
    FIND_BY_CODE = rpc_subject("participant", "find_by_code")  # JoinCodeRef -> CoursePreview
    APPLY = rpc_subject("participant", "apply")  # Apply -> Participation
    LIST = rpc_subject("participant", "list")  # ListParticipations -> ParticipationList
    ACCEPT = rpc_subject("participant", "accept")  # Decide -> ParticipationList
    REJECT = rpc_subject("participant", "reject")  # RejectParticipations -> ParticipationList
    REMOVE = rpc_subject("participant", "remove")  # RemoveParticipant -> Participation
    REOPEN = rpc_subject("participant", "reopen")  # ParticipationRef -> Participation
    LEAVE = rpc_subject("participant", "leave")  # CourseRef -> Participation (the caller's)
    ADD_TUTOR = rpc_subject("participant", "add_tutor")  # TutorRef -> Course (leader)
    REMOVE_TUTOR = rpc_subject("participant", "remove_tutor")  # TutorRef -> Course (leader)
    MY_COURSES = rpc_subject("participant", "my_courses")  # Empty -> MyCourseList
    # Every participation of the caller, any status (their data export).
    # Empty -> ParticipationList
    MY_PARTICIPATIONS = rpc_subject("participant", "my_participations")
    # Account deletion: each pending or accepted participation of the user ends as if
    # they had left (ParticipantLeft), and they tutor no course any more (TutorRemoved).
    WITHDRAW_USER = rpc_subject("participant", "withdraw_user")  # UserRef -> UserWithdrawn
    # The caller's role in one course: the gateway asks at its OAuth authorize step.
    ACCESS = rpc_subject("participant", "access")  # CourseRef -> CourseAccess


class ParticipationStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REMOVED = "removed"
    LEFT = "left"


class CourseRole(enum.StrEnum):
    LEADER = "leader"
    TUTOR = "tutor"
    PARTICIPANT = "participant"  # accepted


# A join code as people type it: letters and digits (the service normalises case).
JoinCode = Annotated[str, msgspec.Meta(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
ParticipationId = Annotated[str, single_line(min_length=1, max_length=64)]
ApplicationMessage = Annotated[str, multi_line(max_length=2000)]


class CourseRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId


class SetJoinOpen(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    open: bool


class JoinCodeRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: JoinCode


class Apply(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: JoinCode
    message: ApplicationMessage = ""


class ListParticipations(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    status: ParticipationStatus | None = None


class Decide(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Accept one or many applications (all or none)."""

    request_id: RequestId
    participation_ids: Annotated[list[ParticipationId], msgspec.Meta(min_length=1, max_length=5000)]


class RejectParticipations(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    participation_ids: Annotated[list[ParticipationId], msgspec.Meta(min_length=1, max_length=5000)]
    reason: Comment = ""


class ParticipationRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    participation_id: ParticipationId


class RemoveParticipant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    participation_id: ParticipationId
    reason: Comment = ""


class TutorRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request_id: RequestId
    user_id: UserId


class Participation(msgspec.Struct, frozen=True, kw_only=True):
    participation_id: str
    request_id: str
    user_id: str
    status: ParticipationStatus
    message: str
    applied_at: datetime
    updated_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""


class ParticipationList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Participation]


class Course(msgspec.Struct, frozen=True, kw_only=True):
    """An approved course as its leader and tutors see it."""

    request_id: str
    leader_id: str
    title: str
    slug: str
    starts_at: datetime
    ends_at: datetime
    # The approved number; it follows approved changes. Lowered below `accepted`,
    # everyone accepted stays and nobody more is accepted.
    max_participants: int
    accepted: int
    join_code: str
    join_open: bool
    tutors: list[str]  # user ids
    hub_status: DeploymentState
    hub_url: str | None = None
    hub_warnings: list[str] = []  # what the hub cannot do on its host (HubReady.warnings)


class CoursePreview(msgspec.Struct, frozen=True, kw_only=True):
    """What a join code tells someone who may apply."""

    request_id: str
    title: str
    starts_at: datetime
    ends_at: datetime


class CourseAccess(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    title: str
    role: CourseRole | None = None  # None: not in this course (applied, rejected, a stranger)
    participation_status: ParticipationStatus | None = None


class MyCourse(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    title: str
    role: CourseRole | None  # None: applied and waiting, or rejected
    starts_at: datetime
    ends_at: datetime
    hub_status: DeploymentState
    hub_url: str | None = None
    participation_status: ParticipationStatus | None = None
    hub_warnings: list[str] = []  # what the hub cannot do on its host (HubReady.warnings)


class MyCourseList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[MyCourse]


class UserWithdrawn(msgspec.Struct, frozen=True, kw_only=True):
    left: list[Participation]  # the participations this call ended
    tutor_of: list[str]  # the courses (request ids) the user no longer tutors


# --- deployer-svc ------------------------------------------------------------


class DeployerOps:
    LIST_DEPLOYMENTS = rpc_subject("deployer", "list_deployments")
    REDEPLOY = rpc_subject("deployer", "redeploy")
    # The gateway reads a hub's OAuth client registration (made by the deployer when
    # it deploys the hub) at its authorize, token and userinfo steps.
    OAUTH_CLIENT = rpc_subject("deployer", "oauth_client")  # GetOAuthClient -> OAuthClient


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


class GetOAuthClient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    client_id: Annotated[str, single_line(min_length=1, max_length=128)]


class OAuthClient(msgspec.Struct, frozen=True, kw_only=True):
    """A hub as an OAuth client of the gateway. The secret itself never leaves the
    deployer (it is sealed in its database and written only into the hub's own
    secret); the gateway compares the SHA-256 of what a client presents."""

    client_id: str
    deployment_id: str
    request_id: str
    redirect_uri: str  # matched exactly, character for character
    secret_sha256: str  # hex


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
    warnings: list[str] = []  # what the hub cannot do here (HubReady.warnings)


class DeploymentList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Deployment]


__all__ = [
    "Amounts",
    "Apply",
    "ApproveRequest",
    "CalendarCheck",
    "CalendarView",
    "CancelRequest",
    "CapacityStep",
    "ChangeReview",
    "ChangeReviewList",
    "ChangeState",
    "ChangeStatus",
    "Course",
    "CourseAccess",
    "CoursePreview",
    "CourseRef",
    "CourseRole",
    "Decide",
    "DecideChange",
    "Decision",
    "DeployerOps",
    "Deployment",
    "DeploymentList",
    "DeploymentState",
    "Empty",
    "ErrorCode",
    "GetCalendar",
    "GetOAuthClient",
    "GetRequest",
    "GetReview",
    "GovernanceOps",
    "HubRequest",
    "HubRequestList",
    "HubSpec",
    "HubSpecUpdate",
    "JoinCodeRef",
    "ListDeployments",
    "ListParticipations",
    "ListRequests",
    "ListReviews",
    "MyCourse",
    "MyCourseList",
    "OAuthClient",
    "ParticipantOps",
    "Participation",
    "ParticipationList",
    "ParticipationRef",
    "ParticipationStatus",
    "ProposeChange",
    "RedeployHub",
    "RejectParticipations",
    "RejectRequest",
    "RemoveParticipant",
    "RequestChange",
    "RequestChanges",
    "RequestOps",
    "ReservationView",
    "Resources",
    "ResourcesUpdate",
    "Review",
    "ReviewList",
    "ReviewState",
    "RpcCall",
    "RpcError",
    "RpcReply",
    "SetJoinOpen",
    "Shortfall",
    "SubmitRequest",
    "TutorRef",
    "UpdateRequest",
    "WithdrawRequest",
]
