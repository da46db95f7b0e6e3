"""The course schedule: what is due for a deployment, and what doing it changes.

Pure and synchronous. A deployment moves

    scheduled --deploy_at--> deploying --hub ready--> running --starts_at--> (CourseStarted)
    running --ends_at--> ending --teardown_at--> deleted
    deploying --retries exhausted--> failed --admin redeploy--> scheduled
    any active --cancel--> ending (hub up or being built) | deleted (nothing built yet)

Long actions (deploy, teardown) are first *claimed* with a lease in one
transaction, done outside it while the lease is renewed, and their outcome
recorded in another, only by the lease's owner; a replica that dies
mid-action leaves a lease that expires, and the action is claimed again.
Instant actions (course started/ended) change the row and emit their event
in the claiming transaction, so they happen exactly once.

A cancellation always wins: it moves the deployment to `ending` whatever is
in flight, and a deploy that finishes (or fails) afterwards records nothing
but the release of its lease, so the hub is torn down next, its course is
never announced as started, and no `HubReady` goes out.
"""

from __future__ import annotations

import enum
from dataclasses import replace
from datetime import datetime, timedelta

from deployer_svc.domain import DeploymentRecord
from jhaas_schemas.envelope import Envelope
from jhaas_schemas.errors import Conflict, Forbidden
from jhaas_schemas.events import (
    CourseEnded,
    CourseStarted,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
)
from jhaas_schemas.model import DeletionRecord, HubSpec, Principal, Role
from jhaas_schemas.rpc import DeploymentState

S = DeploymentState
ACTIVE = frozenset({S.SCHEDULED, S.DEPLOYING, S.RUNNING, S.FAILED, S.ENDING})


class Action(enum.StrEnum):
    DEPLOY = "deploy"
    START_COURSE = "start_course"
    END_COURSE = "end_course"
    TEARDOWN = "teardown"


LONG_ACTIONS = frozenset({Action.DEPLOY, Action.TEARDOWN})


def _leased(record: DeploymentRecord, now: datetime) -> bool:
    return record.lease_until is not None and record.lease_until > now


def due_action(record: DeploymentRecord, now: datetime) -> Action | None:
    """The one action due now, or None (also while another worker holds the lease)."""
    if _leased(record, now) or record.state not in ACTIVE:
        return None
    if record.state in (S.SCHEDULED, S.DEPLOYING, S.FAILED) and now >= record.ends_at:
        return Action.END_COURSE  # the course is over before its hub ever ran
    if record.state == S.FAILED:
        return None  # waits for an admin's redeploy
    if record.state in (S.SCHEDULED, S.DEPLOYING):
        waiting = record.next_attempt_at is not None and record.next_attempt_at > now
        return None if waiting or now < record.deploy_at else Action.DEPLOY
    if record.state == S.RUNNING:
        if now >= record.ends_at:
            return Action.END_COURSE
        if not record.course_started and now >= record.starts_at:
            return Action.START_COURSE
        return None
    return Action.TEARDOWN if now >= record.teardown_at else None  # ENDING


def next_due(record: DeploymentRecord) -> datetime | None:
    """When something will next be due for this deployment (for the scheduler's sleep)."""
    if record.state not in ACTIVE:
        return None
    times: list[datetime] = [record.ends_at]
    if record.lease_until is not None:
        times.append(record.lease_until)
    if record.state in (S.SCHEDULED, S.DEPLOYING):
        times.append(max(record.deploy_at, record.next_attempt_at or record.deploy_at))
    elif record.state == S.RUNNING and not record.course_started:
        times.append(record.starts_at)
    elif record.state == S.ENDING:
        times.append(record.teardown_at)
    return min(times)


def claim(
    record: DeploymentRecord, now: datetime, owner: str, lease: timedelta
) -> DeploymentRecord:
    return replace(record, lease_owner=owner, lease_until=now + lease, updated_at=now)


def begin_deploy(
    record: DeploymentRecord, now: datetime, owner: str, lease: timedelta, env: Envelope
) -> tuple[DeploymentRecord, HubDeploying]:
    attempt = record.attempts + 1
    new = replace(
        claim(record, now, owner, lease), state=S.DEPLOYING, attempts=attempt, deploy_started=True
    )
    event = HubDeploying(
        **env, deployment_id=record.deployment_id, request_id=record.request_id, attempt=attempt
    )
    return new, event


def release(record: DeploymentRecord, now: datetime) -> DeploymentRecord:
    return replace(record, lease_owner=None, lease_until=None, updated_at=now)


def still_wanted(state: DeploymentState, action: Action) -> bool:
    """Whether a deployment in `state` still wants the long action a lease was taken
    for (a cancellation moves a deploying course to `ending`)."""
    return state == (S.DEPLOYING if action == Action.DEPLOY else S.ENDING)


def deploy_succeeded(
    record: DeploymentRecord,
    now: datetime,
    url: str,
    env: Envelope,
    warnings: tuple[str, ...] = (),
    deployed: HubSpec | None = None,
) -> tuple[DeploymentRecord, HubReady | None]:
    """The hub answers. If the course was cancelled meanwhile, nothing is announced:
    the lease is released and the teardown that the cancellation made due follows.
    A hub built from a configuration a change replaced meanwhile (`deployed`) is
    announced, and converged to the new one next."""
    if not still_wanted(record.state, Action.DEPLOY):
        return release(record, now), None
    stale = deployed is not None and deployed != record.configuration
    new = replace(
        record,
        state=S.RUNNING,
        hub_url=url,
        lease_owner=None,
        lease_until=None,
        next_attempt_at=None,
        failure_reason="",
        warnings=warnings,  # a deploy without any clears the last one's
        updated_at=now,
    )
    if stale:
        new = _converge(new, now)
    return new, HubReady(
        **env,
        deployment_id=record.deployment_id,
        request_id=record.request_id,
        url=url,
        warnings=warnings,
    )


def deploy_failed(
    record: DeploymentRecord,
    now: datetime,
    reason: str,
    *,
    temporary: bool,
    max_attempts: int,
    backoff: timedelta,
    env: Envelope,
) -> tuple[DeploymentRecord, HubFailed | None]:
    """Retry later with growing backoff, or fail for good (then the leader is told).
    A course cancelled meanwhile is not retried: its teardown follows."""
    if not still_wanted(record.state, Action.DEPLOY):
        return release(record, now), None
    released = replace(
        record, lease_owner=None, lease_until=None, failure_reason=reason, updated_at=now
    )
    if temporary and record.attempts < max_attempts:
        delay = backoff * (2 ** (record.attempts - 1))
        return replace(released, next_attempt_at=now + delay), None
    failed = replace(released, state=S.FAILED, next_attempt_at=None)
    return failed, HubFailed(
        **env,
        deployment_id=record.deployment_id,
        request_id=record.request_id,
        reason=reason,
        attempts=record.attempts,
    )


def start_course(
    record: DeploymentRecord, now: datetime, env: Envelope
) -> tuple[DeploymentRecord, CourseStarted]:
    new = replace(record, course_started=True, updated_at=now)
    return new, CourseStarted(
        **env, deployment_id=record.deployment_id, request_id=record.request_id
    )


def end_course(
    record: DeploymentRecord, now: datetime, env: Envelope
) -> tuple[DeploymentRecord, CourseEnded]:
    new = replace(record, state=S.ENDING, lease_owner=None, lease_until=None, updated_at=now)
    return new, CourseEnded(**env, deployment_id=record.deployment_id, request_id=record.request_id)


def teardown_done(
    record: DeploymentRecord, now: datetime, deletion: DeletionRecord, env: Envelope
) -> tuple[DeploymentRecord, HubDeleted | None]:
    """Nothing of the hub is left. Recorded once: a deployment that is not `ending`
    any more (another worker recorded it) changes nothing and announces nothing."""
    if not still_wanted(record.state, Action.TEARDOWN):
        return record, None
    new = replace(record, state=S.DELETED, lease_owner=None, lease_until=None, updated_at=now)
    return new, HubDeleted(
        **env, deployment_id=record.deployment_id, request_id=record.request_id, record=deletion
    )


def teardown_failed(
    record: DeploymentRecord, now: datetime, backoff: timedelta
) -> DeploymentRecord:
    """Deleting must not be given up: release and try again after `backoff`."""
    return replace(
        record,
        lease_owner=None,
        lease_until=None,
        updated_at=now,
        teardown_at=max(record.teardown_at, now + backoff),
    )


def cancel(
    record: DeploymentRecord, now: datetime, env: Envelope
) -> tuple[DeploymentRecord, HubDeleted | None]:
    """A cancelled course: nothing built yet -> deleted at once; else torn down now."""
    if record.state not in ACTIVE:
        return record, None
    if record.state == S.ENDING:
        return replace(record, teardown_at=min(record.teardown_at, now), updated_at=now), None
    if record.state == S.SCHEDULED and not record.deploy_started:
        nothing = DeletionRecord(backend="none", deleted_at=now)
        new = replace(record, state=S.DELETED, updated_at=now)
        return new, HubDeleted(
            **env,
            deployment_id=record.deployment_id,
            request_id=record.request_id,
            record=nothing,
        )
    # The hub is up or may be half-built: tear down whatever exists, now. A deploy
    # in flight keeps its lease; its owner sees `ending`, stops and releases it.
    return replace(record, state=S.ENDING, teardown_at=now, updated_at=now), None


def redeploy(record: DeploymentRecord, principal: Principal, now: datetime) -> DeploymentRecord:
    if not principal.has(Role.ADMIN):
        raise Forbidden("only an admin can redeploy a hub")
    if record.state != S.FAILED:
        raise Conflict(f"only a failed hub can be redeployed; this one is {record.state}")
    return replace(
        record,
        state=S.SCHEDULED,
        attempts=0,
        next_attempt_at=None,
        deploy_at=min(record.deploy_at, now),
        failure_reason="",
        updated_at=now,
    )


def _converge(record: DeploymentRecord, now: datetime) -> DeploymentRecord:
    """Deploy again now: a backend's deploy converges a hub that runs to the
    record's configuration (the local hub restarts keeping its users' servers; on
    Kubernetes the new image is pulled before the hub is rolled)."""
    return replace(
        record,
        state=S.SCHEDULED,
        attempts=0,
        next_attempt_at=None,
        deploy_at=min(record.deploy_at, now),
        updated_at=now,
    )


def change_configuration(
    record: DeploymentRecord,
    configuration: HubSpec,
    *,
    revision: int,
    grace: timedelta,
    now: datetime,
) -> DeploymentRecord | None:
    """An approved change (of the request's `revision`): the course runs with
    `configuration` from now on. The end (and the teardown after it) moves, later or
    earlier; a hub that runs follows it, a hub not built yet is built with it. None
    when nothing changes: a course that is over, or a change not newer than the
    configuration the course has (a copy, or an older change redelivered late). The
    start does not change after approval."""
    if record.state not in ACTIVE or record.state == S.ENDING:
        return None
    if revision <= record.revision:
        return None
    if configuration == record.configuration:
        return replace(record, revision=revision, updated_at=now)
    new = replace(
        record,
        revision=revision,
        configuration=configuration,
        ends_at=configuration.ends_at,
        teardown_at=configuration.ends_at + grace,
        updated_at=now,
    )
    # A deploy in flight builds the old configuration; deploy_succeeded sees it and
    # converges. A failed hub waits for its redeploy, which builds the new one.
    return _converge(new, now) if record.state == S.RUNNING else new


def hub_missing(record: DeploymentRecord, now: datetime) -> DeploymentRecord | None:
    """Reconciliation found a running course without a working hub: build it again
    (the course's start is not announced twice). None when nothing is to be done."""
    if record.state != S.RUNNING or _leased(record, now) or now >= record.ends_at:
        return None
    return replace(
        record,
        state=S.SCHEDULED,
        attempts=0,
        next_attempt_at=None,
        hub_url=None,
        lease_owner=None,
        lease_until=None,
        updated_at=now,
    )
