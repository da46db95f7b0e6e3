"""Deployments: one hub per approved course, on a schedule.

Pure and synchronous: state + command or event -> new state + events. The
clock, the new ids and the envelope of emitted events are passed in.

A deployment is scheduled when its request is approved; `schedule.py` says
what is due for it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jhaas_schemas.envelope import Envelope
from jhaas_schemas.errors import Forbidden
from jhaas_schemas.events import DeploymentScheduled, RequestApproved
from jhaas_schemas.model import HubSpec, Principal, Role
from jhaas_schemas.rpc import Deployment, DeploymentState


@dataclass(frozen=True, kw_only=True)
class DeploymentRecord:
    deployment_id: str
    request_id: str
    leader_id: str
    state: DeploymentState
    configuration: HubSpec
    # When the hub should be built; one already past is due at once.
    deploy_at: datetime
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    updated_at: datetime
    # The hub and its data are deleted at this time (ends_at + grace).
    teardown_at: datetime
    hub_url: str | None = None
    attempts: int = 0  # deploy attempts of the current round
    next_attempt_at: datetime | None = None  # a failed attempt waits for this
    lease_owner: str | None = None  # the worker doing a long action now
    lease_until: datetime | None = None
    course_started: bool = False
    failure_reason: str = ""
    # A deploy was begun at least once (never reset): a hub, or half of one, may exist.
    deploy_started: bool = False
    # What the hub could not do on this host at its last successful deploy (HubReady.warnings).
    warnings: tuple[str, ...] = ()
    # The request's revision `configuration` is of: the approval's, then each approved
    # change's. An approved change of an older revision (redelivered late) is stale.
    revision: int = 0

    def view(self) -> Deployment:
        return Deployment(
            deployment_id=self.deployment_id,
            request_id=self.request_id,
            leader_id=self.leader_id,
            state=self.state,
            deploy_at=self.deploy_at,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            created_at=self.created_at,
            configuration=self.configuration,
            hub_url=self.hub_url,
            teardown_at=self.teardown_at,
            attempts=self.attempts,
            failure_reason=self.failure_reason,
            warnings=list(self.warnings),
        )


def schedule_deployment(
    approval: RequestApproved,
    *,
    deployment_id: str,
    lead_time: timedelta,
    grace: timedelta,
    now: datetime,
    env: Envelope,
) -> tuple[DeploymentRecord, DeploymentScheduled]:
    """The deployment an approved request gets. One per request: the store keeps
    the first and refuses another (a redelivered or a second approval)."""
    configuration = approval.configuration
    record = DeploymentRecord(
        deployment_id=deployment_id,
        request_id=approval.request_id,
        leader_id=approval.leader_id,
        state=DeploymentState.SCHEDULED,
        configuration=configuration,
        deploy_at=configuration.starts_at - lead_time,
        starts_at=configuration.starts_at,
        ends_at=configuration.ends_at,
        teardown_at=configuration.ends_at + grace,
        created_at=now,
        updated_at=now,
        revision=approval.revision,
    )
    event = DeploymentScheduled(
        **env,
        deployment_id=record.deployment_id,
        request_id=record.request_id,
        deploy_at=record.deploy_at,
        starts_at=record.starts_at,
        ends_at=record.ends_at,
    )
    return record, event


def visible_leader(principal: Principal) -> str | None:
    """Whose deployments `principal` may list: None for all, else a leader id."""
    if principal.has(Role.ADMIN, Role.GOVERNANCE):
        return None
    if principal.has(Role.LEADER):
        return principal.user_id
    raise Forbidden("only course leaders, governance and admins can see deployments")
