"""Changes after approval: the leader proposes, governance answers.

Pure and synchronous, like `domain`. The approved configuration (`spec`) stays
what the course runs with until governance approves a change; meanwhile the
proposal is the request's open change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import msgspec

from jhaas_schemas.envelope import Envelope
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput
from jhaas_schemas.events import ChangeApproved, ChangeProposed, ChangeRejected
from jhaas_schemas.model import HubSpec, Principal, RequestStatus
from jhaas_schemas.policy import Policy
from jhaas_schemas.policy_rules import failures, rule_checks
from jhaas_schemas.quantities import byte_size, cpu_millicores, image_reference_problem
from jhaas_schemas.rpc import ChangeStatus, HubSpecUpdate, RequestChange
from request_svc.domain import HubRequestState, apply_changes

S = RequestStatus
# A hub that is (or will be) built from the approved configuration.
CHANGEABLE = frozenset({S.APPROVED, S.DEPLOYING, S.RUNNING, S.FAILED})
OVER = frozenset({S.DELETED, S.CANCELLED, S.REJECTED, S.WITHDRAWN, S.ENDING})
# What the course is built around stays: the slug names its hub, URL and data; the
# start is when it was deployed (or is scheduled to be) and the capacity reserved;
# title, description and interface are not what governance re-decides.
CHANGEABLE_FIELDS = frozenset({"ends_at", "expected_participants", "resources", "image"})


def open_change(state: HubRequestState) -> RequestChange | None:
    change = state.change
    return change if change is not None and change.status is ChangeStatus.PENDING else None


def _ensure_changeable(state: HubRequestState, now: datetime) -> None:
    if state.status in OVER or state.spec.ends_at <= now:
        raise Conflict(f"the course is over ({state.status}); it can no longer change")
    if state.status not in CHANGEABLE:
        raise Conflict(
            f"a request that is {state.status} is not approved yet; edit it instead of "
            "proposing a change"
        )
    pending = open_change(state)
    if pending is not None:
        raise Conflict(
            f"change {pending.change_id} is still waiting for governance; one change at a time"
        )


def _fixed_fields(changes: HubSpecUpdate) -> dict[str, str]:
    return {
        f"changes.{name}": "cannot change after approval"
        for name, value in msgspec.structs.asdict(changes).items()
        if value is not msgspec.UNSET and name not in CHANGEABLE_FIELDS
    }


def change_problems(spec: HubSpec, policy: Policy, now: datetime) -> dict[str, str]:
    """What a changed configuration breaks: its own shape, then the policy's rules
    (all but the lead time before the start, which was passed at submission)."""
    problems: dict[str, str] = {}
    if spec.ends_at.tzinfo is None:
        problems["spec.ends_at"] = "must carry a timezone offset, e.g. 2027-04-12T09:00:00+02:00"
    elif spec.ends_at <= max(now, spec.starts_at):
        problems["spec.ends_at"] = "must be in the future and after starts_at"
    image_problem = image_reference_problem(spec.image)
    if image_problem:
        problems["spec.image"] = image_problem
    for name, parse in (("cpu", cpu_millicores), ("memory", byte_size), ("storage", byte_size)):
        try:
            parse(getattr(spec.resources, name))
        except ValueError as exc:
            problems[f"spec.resources.{name}"] = str(exc)
    if problems:
        return problems
    return failures(rule_checks(spec, policy, now, at_submission=False))


def propose_change(
    state: HubRequestState,
    *,
    principal: Principal,
    changes: HubSpecUpdate,
    comment: str,
    expected_revision: int | None,
    policy: Policy,
    change_id: str,
    now: datetime,
    env: Envelope,
) -> tuple[HubRequestState, ChangeProposed]:
    if state.leader_id != principal.user_id:
        raise Forbidden("only the course leader can propose a change of this course")
    _ensure_changeable(state, now)
    if expected_revision is not None and expected_revision != state.revision:
        raise Conflict(
            f"the request is at revision {state.revision}, not {expected_revision}; reload it"
        )
    fixed = _fixed_fields(changes)
    if fixed:
        raise InvalidInput("only the end, participants, resources and image can change", fixed)
    configuration = apply_changes(state.spec, changes)
    if configuration == state.spec:
        raise InvalidInput("the change changes nothing", {"changes": "changes nothing"})
    problems = change_problems(configuration, policy, now)
    if problems:
        raise InvalidInput("the change breaks the policy", problems)
    revision = state.revision + 1
    change = RequestChange(
        change_id=change_id,
        revision=revision,
        configuration=configuration,
        comment=comment,
        proposed_at=now,
    )
    new = replace(state, revision=revision, change=change, updated_at=now)
    event = ChangeProposed(
        **env,
        request_id=state.request_id,
        change_id=change_id,
        leader_id=state.leader_id,
        revision=revision,
        configuration=configuration,
        comment=comment,
    )
    return new, event


def on_change_decision(
    state: HubRequestState, event: ChangeApproved | ChangeRejected, now: datetime
) -> HubRequestState | None:
    """The leader's view follows governance's answer; None when it no longer applies
    (seen before, or an answer to another change than the open one)."""
    pending = open_change(state)
    if pending is None or pending.change_id != event.change_id or event.revision < pending.revision:
        return None
    if isinstance(event, ChangeRejected):
        answered = msgspec.structs.replace(
            pending,
            status=ChangeStatus.REJECTED,
            decided_by=event.decided_by,
            decided_at=event.occurred_at,
            answer=event.reason,
        )
        return replace(state, change=answered, updated_at=now)
    answered = msgspec.structs.replace(
        pending,
        status=ChangeStatus.APPROVED,
        decided_by=event.decided_by,
        decided_at=event.occurred_at,
        answer=event.comment,
        configuration=event.configuration,
    )
    if state.status in OVER:
        return replace(state, change=answered, updated_at=now)  # nothing runs any more
    return replace(
        state,
        spec=event.configuration,
        approved_revision=event.revision,
        change=answered,
        updated_at=now,
    )
