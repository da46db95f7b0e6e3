"""Scheduling rules and settings, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployer_svc import domain
from deployer_svc.settings import DeployerSettings
from jhaas_runtime.settings import SettingsError
from jhaas_schemas.envelope import envelope
from jhaas_schemas.errors import Forbidden
from jhaas_schemas.events import RequestApproved
from jhaas_schemas.model import HubSpec, Principal, Resources, Role
from jhaas_schemas.rpc import DeploymentState

pytestmark = pytest.mark.unit


def env(source: str, correlation_id: str, **more: Any) -> dict[str, Any]:
    """A new event's envelope, typed for `**` into an event's constructor."""
    return envelope(source=source, correlation_id=correlation_id, **more)


NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
START = datetime(2027, 4, 12, 9, 0, tzinfo=UTC)


def approval() -> RequestApproved:
    return RequestApproved(
        **env(source="governance-svc", correlation_id="c-1", now=NOW),
        request_id="r-1",
        review_id="rv-1",
        leader_id="u-leader",
        decided_by="u-gov",
        revision=2,
        configuration=HubSpec(
            title="Data Science 101",
            slug="ds101",
            starts_at=START,
            ends_at=START + timedelta(days=90),
            image="quay.io/jupyter/scipy-notebook:2024-12-02",
            resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
            expected_participants=30,
        ),
    )


def test_approval_schedules_a_deployment_before_the_start() -> None:
    approved = approval()
    caused = env("deployer-svc", "c-1", causation_id=approved.event_id, now=NOW)
    record, event = domain.schedule_deployment(
        approved,
        deployment_id="d-1",
        lead_time=timedelta(minutes=45),
        grace=timedelta(hours=2),
        now=NOW,
        env=caused,
    )
    assert record.state == DeploymentState.SCHEDULED
    assert (record.request_id, record.leader_id) == ("r-1", "u-leader")
    assert record.configuration == approved.configuration
    assert record.deploy_at == datetime(2027, 4, 12, 8, 15, tzinfo=UTC)
    assert record.teardown_at == START + timedelta(days=90, hours=2)
    assert (event.deployment_id, event.deploy_at) == ("d-1", record.deploy_at)
    assert (event.starts_at, event.ends_at) == (START, START + timedelta(days=90))
    assert (event.causation_id, event.correlation_id) == (approved.event_id, "c-1")
    # One per request: the store refuses a second (its unique request id), see
    # test_deployer_integration.test_an_approval_schedules_exactly_one_deployment.


def test_who_sees_which_deployments() -> None:
    assert domain.visible_leader(Principal(user_id="a", username="a", roles=(Role.ADMIN,))) is None
    governance = Principal(user_id="g", username="g", roles=(Role.GOVERNANCE, Role.LEADER))
    assert domain.visible_leader(governance) is None
    leader = Principal(user_id="l", username="l", roles=(Role.LEADER,))
    assert domain.visible_leader(leader) == "l"
    with pytest.raises(Forbidden):
        domain.visible_leader(Principal(user_id="p", username="p", roles=(Role.PARTICIPANT,)))


def test_lead_time_comes_from_the_environment(tmp_path: Path) -> None:
    local = {"JHAAS_DATA_DIR": str(tmp_path)}
    assert DeployerSettings.from_env(local).lead_time == timedelta(minutes=30)
    settings = DeployerSettings.from_env({**local, "JHAAS_DEPLOY_LEAD_MINUTES": "90"})
    assert settings.lead_time == timedelta(minutes=90)
    assert settings.runtime.service == "deployer-svc"
    with pytest.raises(SettingsError, match="JHAAS_DEPLOY_LEAD_MINUTES"):
        DeployerSettings.from_env({**local, "JHAAS_DEPLOY_LEAD_MINUTES": "half an hour"})


def test_the_kubernetes_backend_needs_a_domain_and_the_cluster() -> None:
    from deployer_svc.app import build_backend
    from jhaas_runtime.settings import SettingsError

    with pytest.raises(SettingsError, match="JHAAS_HUB_DOMAIN is required"):
        DeployerSettings.from_env({"JHAAS_HUB_BACKEND": "kubernetes"})
    with pytest.raises(SettingsError, match="must be one of"):
        DeployerSettings.from_env({"JHAAS_HUB_BACKEND": "docker"})
    settings = DeployerSettings.from_env(
        {
            "JHAAS_HUB_BACKEND": "kubernetes",
            "JHAAS_HUB_DOMAIN": "hubs.example.org",
            "JHAAS_DEPLOYER_SECRET_KEYS": "k" * 32,
            "JHAAS_INSTALLATION_ID": "uni-test",
        }
    )
    assert settings.hub_domain == "hubs.example.org"
    # Outside a cluster (as here) it refuses to start, saying why.
    with pytest.raises(SettingsError, match="inside the cluster"):
        build_backend(settings)
