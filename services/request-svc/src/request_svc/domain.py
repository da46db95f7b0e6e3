"""Hub requests: what a course leader asks for and the status they see.

Pure and synchronous: state + command or event -> new state + events. The
clock, the new ids and the envelope of emitted events are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import msgspec

from jhaas_schemas.envelope import Envelope
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput, NotFound
from jhaas_schemas.events import (
    ChangesRequested,
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    RequestCancelled,
    RequestRejected,
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
)
from jhaas_schemas.model import HubSpec, HubSpecDraft, Principal, RequestStatus, Resources, Role
from jhaas_schemas.policy import Policy, Preset
from jhaas_schemas.policy_rules import failures, rule_checks
from jhaas_schemas.quantities import byte_size, cpu_millicores, image_reference_problem
from jhaas_schemas.rpc import HubRequest, HubSpecUpdate, RequestChange

S = RequestStatus
EDITABLE = frozenset({S.SUBMITTED, S.CHANGES_REQUESTED})
CANCELLABLE = frozenset({S.APPROVED, S.DEPLOYING, S.RUNNING, S.FAILED})
# A slug is free again once its request can no longer become a hub.
RELEASES_SLUG = frozenset({S.REJECTED, S.WITHDRAWN, S.DELETED})
# A course its leader still answers for: it may yet be (or is) a hub with people
# on it. Ending and cancelled courses are being deleted; they need no leader.
NOT_OVER = frozenset(EDITABLE | CANCELLABLE)

DEFAULT_POLICY = Policy()
RESERVED_SLUGS = frozenset({"admin", "api", "auth", "hub", "jhaas", "www", "static", "login"})


@dataclass(frozen=True, kw_only=True)
class HubRequestState:
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
    # When the deployer event the hub's status follows happened: an older event that
    # arrives later (a redelivery, another replica's batch) changes nothing.
    hub_status_at: datetime | None = None
    # What the hub cannot do on its host, from its last HubReady (kept while it is
    # rebuilt or fails: the host stays the same); cleared with the hub.
    hub_warnings: tuple[str, ...] = ()
    # The latest change after approval and governance's answer (`changes.py`).
    change: RequestChange | None = None

    @property
    def active_slug(self) -> str | None:
        return None if self.status in RELEASES_SLUG else self.spec.slug

    def view(self) -> HubRequest:
        return HubRequest(
            request_id=self.request_id,
            leader_id=self.leader_id,
            status=self.status,
            revision=self.revision,
            spec=self.spec,
            created_at=self.created_at,
            updated_at=self.updated_at,
            review_comment=self.review_comment,
            approved_revision=self.approved_revision,
            hub_url=self.hub_url,
            hub_warnings=list(self.hub_warnings),
            change=self.change,
        )


def spec_problems(spec: HubSpec, now: datetime, policy: Policy) -> dict[str, str]:
    """Every rule the request breaks, by field; empty when it is acceptable.

    The request's own shape first (a field is named once, by its first problem),
    then the policy in force, each failure naming its rule."""
    problems: dict[str, str] = {}
    if spec.slug in RESERVED_SLUGS:
        problems["spec.slug"] = f"{spec.slug!r} is reserved"
    elif spec.slug.endswith("-") or "--" in spec.slug:
        problems["spec.slug"] = "must not end with '-' or contain '--' (DNS label)"
    for name in ("starts_at", "ends_at"):
        if getattr(spec, name).tzinfo is None:
            problems[f"spec.{name}"] = (
                "must carry a timezone offset, e.g. 2027-04-12T09:00:00+02:00"
            )
    if not problems.keys() & {"spec.starts_at", "spec.ends_at"}:
        if spec.starts_at <= now:
            problems["spec.starts_at"] = "must be in the future"
        if spec.ends_at <= spec.starts_at:
            problems["spec.ends_at"] = "must be after starts_at"
    image_problem = image_reference_problem(spec.image)
    if image_problem:
        problems["spec.image"] = image_problem
    problems.update(_quantity_problems(spec.resources))
    for field, message in failures(rule_checks(spec, policy, now)).items():
        problems.setdefault(field, message)
    return problems


def _quantity_problems(resources: Resources) -> dict[str, str]:
    problems: dict[str, str] = {}
    parsers = {"cpu": cpu_millicores, "memory": byte_size, "storage": byte_size}
    for name, parse in parsers.items():
        try:
            parse(getattr(resources, name))
        except ValueError as exc:
            problems[f"spec.resources.{name}"] = str(exc)
    return problems


def _check_spec(spec: HubSpec, now: datetime, policy: Policy) -> None:
    problems = spec_problems(spec, now, policy)
    if problems:
        raise InvalidInput("the hub request is not valid", problems)


def _preset(name: str, policy: Policy) -> Preset:
    for preset in policy.presets:
        if preset.name == name:
            return preset
    offered = ", ".join(p.name for p in policy.presets) or "none"
    raise InvalidInput(
        f"no preset named {name!r}",
        {"spec.preset": f"presets: the policy has no preset {name!r} (it offers: {offered})"},
    )


def complete_spec(draft: HubSpecDraft, policy: Policy) -> HubSpec:
    """The submitted spec with the image and resources its preset gives (those
    typed beside the preset win); 422 when a preset is unknown or neither is given."""
    preset = None if draft.preset is msgspec.UNSET else _preset(draft.preset, policy)
    image = draft.image if draft.image is not None else preset.image if preset else None
    resources = draft.resources or (preset.resources if preset else None)
    missing = {
        f"spec.{name}": "required unless a preset is named (spec.preset)"
        for name, value in (("image", image), ("resources", resources))
        if value is None
    }
    if missing or image is None or resources is None:
        raise InvalidInput("the hub request is not valid", missing)
    fields = msgspec.structs.asdict(draft) | {"image": image, "resources": resources}
    return HubSpec(**fields)


def submit_request(
    *,
    principal: Principal,
    spec: HubSpecDraft,
    request_id: str,
    now: datetime,
    env: Envelope,
    policy: Policy = DEFAULT_POLICY,
) -> tuple[HubRequestState, RequestSubmitted]:
    if not principal.has(Role.LEADER, Role.ADMIN):
        raise Forbidden("only course leaders can request a hub")
    spec = complete_spec(spec, policy)
    _check_spec(spec, now, policy)
    state = HubRequestState(
        request_id=request_id,
        leader_id=principal.user_id,
        status=S.SUBMITTED,
        revision=1,
        spec=spec,
        created_at=now,
        updated_at=now,
    )
    event = RequestSubmitted(
        **env, request_id=request_id, leader_id=state.leader_id, revision=1, spec=spec
    )
    return state, event


def ensure_visible(
    state: HubRequestState | None, principal: Principal, request_id: str
) -> HubRequestState:
    """The leader of a request, governance and admins see it; to others it does not exist."""
    if state is None or not (
        state.leader_id == principal.user_id or principal.has(Role.GOVERNANCE, Role.ADMIN)
    ):
        raise NotFound(f"no hub request {request_id}")
    return state


def ensure_self_or_admin(principal: Principal, user_id: str) -> None:
    if principal.user_id != user_id and not principal.has(Role.ADMIN):
        raise Forbidden("only the user themselves or an admin can ask this")


def _ensure_leader(state: HubRequestState, principal: Principal, action: str) -> None:
    if state.leader_id != principal.user_id:
        raise Forbidden(f"only the course leader can {action} this request")


def apply_changes(spec: HubSpec, changes: HubSpecUpdate, policy: Policy | None = None) -> HubSpec:
    """`spec` with `changes`; a preset picked (needs `policy`) brings its image and
    resources, under the fields the change sets itself."""
    set_fields = {
        k: v for k, v in msgspec.structs.asdict(changes).items() if v is not msgspec.UNSET
    }
    base = spec
    if "preset" in set_fields and policy is not None:
        preset = _preset(set_fields["preset"], policy)
        base = msgspec.structs.replace(spec, image=preset.image, resources=preset.resources)
    if "resources" in set_fields:
        resource_changes = {
            k: v
            for k, v in msgspec.structs.asdict(set_fields["resources"]).items()
            if v is not msgspec.UNSET
        }
        set_fields["resources"] = msgspec.structs.replace(base.resources, **resource_changes)
    return msgspec.structs.replace(base, **set_fields)


def update_request(
    state: HubRequestState,
    *,
    principal: Principal,
    changes: HubSpecUpdate,
    expected_revision: int | None,
    now: datetime,
    env: Envelope,
    policy: Policy = DEFAULT_POLICY,
) -> tuple[HubRequestState, RequestUpdated | None]:
    _ensure_leader(state, principal, "edit")
    if state.status not in EDITABLE:
        raise Conflict(f"a request that is {state.status} can no longer be edited")
    if expected_revision is not None and expected_revision != state.revision:
        raise Conflict(
            f"the request is at revision {state.revision}, not {expected_revision}; reload it"
        )
    spec = apply_changes(state.spec, changes, policy)
    if spec == state.spec:
        return state, None
    _check_spec(spec, now, policy)
    new = replace(state, spec=spec, revision=state.revision + 1, status=S.SUBMITTED, updated_at=now)
    event = RequestUpdated(
        **env, request_id=new.request_id, leader_id=new.leader_id, revision=new.revision, spec=spec
    )
    return new, event


def withdraw_request(
    state: HubRequestState, *, principal: Principal, now: datetime, env: Envelope
) -> tuple[HubRequestState, RequestWithdrawn]:
    _ensure_leader(state, principal, "withdraw")
    if state.status not in EDITABLE:
        raise Conflict(
            f"a request that is {state.status} cannot be withdrawn; cancel it instead"
            if state.status in CANCELLABLE
            else f"a request that is {state.status} cannot be withdrawn"
        )
    new = replace(state, status=S.WITHDRAWN, updated_at=now)
    return new, RequestWithdrawn(**env, request_id=new.request_id, leader_id=new.leader_id)


def cancel_request(
    state: HubRequestState,
    *,
    principal: Principal,
    reason: str,
    now: datetime,
    env: Envelope,
) -> tuple[HubRequestState, RequestCancelled]:
    if state.leader_id != principal.user_id and not principal.has(Role.ADMIN):
        raise Forbidden("only the course leader or an admin can cancel this course")
    if state.status not in CANCELLABLE:
        raise Conflict(f"a request that is {state.status} cannot be cancelled")
    new = replace(state, status=S.CANCELLED, updated_at=now)
    return new, RequestCancelled(
        **env, request_id=new.request_id, cancelled_by=principal.user_id, reason=reason
    )


def on_review_decision(
    state: HubRequestState,
    event: RequestApproved | RequestRejected | ChangesRequested,
    now: datetime,
) -> HubRequestState | None:
    """The leader's view follows governance; None when the decision no longer applies."""
    if state.status != S.SUBMITTED:
        return None  # withdrawn meanwhile, or a decision seen before
    if isinstance(event, RequestApproved):
        return replace(
            state,
            status=S.APPROVED,
            approved_revision=event.revision,
            review_comment=event.comment,
            updated_at=now,
        )
    if isinstance(event, RequestRejected):
        return replace(state, status=S.REJECTED, review_comment=event.reason, updated_at=now)
    return replace(state, status=S.CHANGES_REQUESTED, review_comment=event.comment, updated_at=now)


def on_deployment_event(
    state: HubRequestState,
    event: HubDeploying | HubReady | HubFailed | CourseEnded | HubDeleted,
    now: datetime,
) -> HubRequestState | None:
    """The leader's view follows the deployer; None when the event changes nothing.

    The hub's URL and health stay current for the whole course: a running hub
    that is rebuilt (reconciliation found it gone) shows `deploying` without its
    old URL, then `running` at its new one; one that fails shows `failed`.
    """
    if isinstance(event, HubDeleted):
        return (
            None
            if state.status == S.DELETED
            else replace(state, status=S.DELETED, hub_url=None, hub_warnings=(), updated_at=now)
        )
    if state.status in (S.CANCELLED, S.DELETED, S.ENDING):
        return None  # the course is over or called off: it only waits for its deletion
    if state.hub_status_at is not None and event.occurred_at < state.hub_status_at:
        return None  # older than what the leader sees already
    hub_url: str | None = None
    hub_warnings = state.hub_warnings
    if isinstance(event, HubDeploying):
        allowed, new_status = {S.APPROVED, S.FAILED, S.DEPLOYING, S.RUNNING}, S.DEPLOYING
    elif isinstance(event, HubReady):
        allowed, new_status = {S.APPROVED, S.DEPLOYING, S.RUNNING, S.FAILED}, S.RUNNING
        hub_url, hub_warnings = event.url, event.warnings  # none now: cleared
    elif isinstance(event, HubFailed):
        allowed, new_status = {S.APPROVED, S.DEPLOYING, S.RUNNING}, S.FAILED
    else:
        allowed, new_status = {S.APPROVED, S.DEPLOYING, S.RUNNING, S.FAILED}, S.ENDING
        hub_url = state.hub_url  # the hub answers until it is deleted
    if state.status not in allowed:
        return None
    return replace(
        state,
        status=new_status,
        hub_url=hub_url,
        hub_warnings=hub_warnings,
        hub_status_at=event.occurred_at,
        updated_at=now,
    )
