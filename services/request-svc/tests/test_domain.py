"""Rules of hub requests, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from jhaas_launcher.testing import sample_spec
from jhaas_schemas.envelope import envelope
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput, NotFound
from jhaas_schemas.events import (
    ChangesRequested,
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
)
from jhaas_schemas.model import DeletionRecord, Principal, RequestStatus, Resources, Role
from jhaas_schemas.rpc import HubSpecUpdate, ResourcesUpdate
from request_svc import domain

pytestmark = pytest.mark.unit

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
LEADER = Principal(user_id="lea", username="lea", roles=(Role.LEADER,))
OTHER = Principal(user_id="otto", username="otto", roles=(Role.LEADER,))
GOV = Principal(user_id="gov", username="gov", roles=(Role.GOVERNANCE,))
ADMIN = Principal(user_id="adm", username="adm", roles=(Role.ADMIN,))


def env() -> dict[str, object]:
    return envelope(source="test", correlation_id="c", now=NOW)


def spec(**kw: object):  # type: ignore[no-untyped-def]
    start = NOW + timedelta(days=7)
    kw.setdefault("starts_at", start)
    kw.setdefault("ends_at", start + timedelta(days=30))
    return sample_spec(**kw)


def submitted() -> domain.HubRequestState:
    state, _ = domain.submit_request(
        principal=LEADER, spec=spec(), request_id="r1", now=NOW, env=env()
    )
    return state


def test_submit_emits_event_with_spec() -> None:
    state, event = domain.submit_request(
        principal=LEADER, spec=spec(), request_id="r1", now=NOW, env=env()
    )
    assert state.status == RequestStatus.SUBMITTED and state.revision == 1
    assert event.request_id == "r1" and event.spec == state.spec and event.leader_id == "lea"


def test_only_leaders_submit() -> None:
    with pytest.raises(Forbidden):
        domain.submit_request(principal=GOV, spec=spec(), request_id="r", now=NOW, env=env())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"starts_at": NOW - timedelta(hours=1)}, "spec.starts_at"),
        ({"ends_at": NOW + timedelta(days=7)}, "spec.ends_at"),
        ({"starts_at": datetime(2027, 2, 1, 9, 0)}, "spec.starts_at"),
        ({"ends_at": NOW + timedelta(days=800)}, "spec.ends_at"),
        ({"image": "Ubuntu:latest:x"}, "spec.image"),
        ({"slug": "admin"}, "spec.slug"),
        ({"slug": "ab-"}, "spec.slug"),
        ({"resources": Resources(cpu="lots", memory="2Gi", storage="1Gi")}, "spec.resources.cpu"),
        ({"resources": Resources(cpu="1", memory="2TB", storage="1Gi")}, "spec.resources.memory"),
        ({"resources": Resources(cpu="1", memory="1Mi", storage="1Gi")}, "spec.resources.memory"),
    ],
)
def test_invalid_specs_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        domain.submit_request(
            principal=LEADER, spec=spec(**overrides), request_id="r", now=NOW, env=env()
        )
    assert field in err.value.fields


def test_timezone_offsets_are_kept() -> None:
    cet = timezone(timedelta(hours=1))
    start = datetime(2027, 2, 1, 9, 0, tzinfo=cet)
    state, _ = domain.submit_request(
        principal=LEADER,
        spec=spec(starts_at=start, ends_at=start + timedelta(days=1)),
        request_id="r",
        now=NOW,
        env=env(),
    )
    assert state.spec.starts_at == datetime(2027, 2, 1, 8, 0, tzinfo=UTC)


def test_update_bumps_revision_and_partial_resources() -> None:
    new, event = domain.update_request(
        submitted(),
        principal=LEADER,
        expected_revision=1,
        now=NOW,
        env=env(),
        changes=HubSpecUpdate(title="New title", resources=ResourcesUpdate(memory="4Gi")),
    )
    assert event is not None and event.revision == 2 == new.revision
    assert new.spec.title == "New title" and new.spec.resources.memory == "4Gi"
    assert new.spec.resources.cpu == "1"


def test_update_without_change_emits_nothing() -> None:
    state = submitted()
    new, event = domain.update_request(
        state,
        principal=LEADER,
        expected_revision=None,
        now=NOW,
        env=env(),
        changes=HubSpecUpdate(title=state.spec.title),
    )
    assert event is None and new == state


def test_update_rules() -> None:
    state = submitted()
    with pytest.raises(Forbidden):
        domain.update_request(
            state,
            principal=OTHER,
            changes=HubSpecUpdate(title="xyz"),
            expected_revision=None,
            now=NOW,
            env=env(),
        )
    with pytest.raises(Conflict, match="revision 1, not 3"):
        domain.update_request(
            state,
            principal=LEADER,
            changes=HubSpecUpdate(title="xyz"),
            expected_revision=3,
            now=NOW,
            env=env(),
        )
    with pytest.raises(InvalidInput):
        domain.update_request(
            state,
            principal=LEADER,
            changes=HubSpecUpdate(image="BAD IMAGE"),
            expected_revision=None,
            now=NOW,
            env=env(),
        )


def approve(state: domain.HubRequestState) -> domain.HubRequestState:
    event = RequestApproved(
        **env(),
        request_id="r1",
        review_id="v",
        leader_id="lea",  # type: ignore[arg-type]
        decided_by="gov",
        revision=1,
        configuration=state.spec,
    )
    new = domain.on_review_decision(state, event, NOW)
    assert new is not None
    return new


def test_approval_then_no_more_edits_or_withdrawal_but_cancel() -> None:
    approved = approve(submitted())
    assert approved.status == RequestStatus.APPROVED and approved.approved_revision == 1
    with pytest.raises(Conflict):
        domain.update_request(
            approved,
            principal=LEADER,
            changes=HubSpecUpdate(title="xyz"),
            expected_revision=None,
            now=NOW,
            env=env(),
        )
    with pytest.raises(Conflict, match="cancel it instead"):
        domain.withdraw_request(approved, principal=LEADER, now=NOW, env=env())
    with pytest.raises(Forbidden):
        domain.cancel_request(approved, principal=OTHER, reason="", now=NOW, env=env())
    cancelled, event = domain.cancel_request(
        approved, principal=ADMIN, reason="x", now=NOW, env=env()
    )
    assert cancelled.status == RequestStatus.CANCELLED and event.cancelled_by == "adm"


def test_changes_requested_then_edit_resubmits() -> None:
    event = ChangesRequested(
        **env(),
        request_id="r1",
        review_id="v",
        decided_by="gov",  # type: ignore[arg-type]
        revision=1,
        comment="smaller please",
    )
    asked = domain.on_review_decision(submitted(), event, NOW)
    assert asked is not None and asked.status == RequestStatus.CHANGES_REQUESTED
    assert asked.review_comment == "smaller please"
    new, _ = domain.update_request(
        asked,
        principal=LEADER,
        now=NOW,
        env=env(),
        changes=HubSpecUpdate(expected_participants=10),
        expected_revision=None,
    )
    assert new.status == RequestStatus.SUBMITTED and new.revision == 2


def test_decision_on_withdrawn_request_is_ignored() -> None:
    withdrawn, _ = domain.withdraw_request(submitted(), principal=LEADER, now=NOW, env=env())
    assert withdrawn.active_slug is None
    assert (
        domain.on_review_decision(
            withdrawn,
            RequestApproved(
                **env(),
                request_id="r1",
                review_id="v",
                leader_id="lea",
                decided_by="gov",  # type: ignore[arg-type]
                revision=1,
                configuration=withdrawn.spec,
            ),
            NOW,
        )
        is None
    )


def test_visibility() -> None:
    state = submitted()
    assert domain.ensure_visible(state, LEADER, "r1") is state
    assert domain.ensure_visible(state, GOV, "r1") is state
    with pytest.raises(NotFound):
        domain.ensure_visible(state, OTHER, "r1")
    with pytest.raises(NotFound):
        domain.ensure_visible(None, LEADER, "r1")


def deployer_event(kind: type, **extra: object):  # type: ignore[no-untyped-def]
    base = {**env(), "deployment_id": "d1", "request_id": "r1"}
    return kind(**base, **extra)


def test_the_leader_sees_the_hub_come_and_go() -> None:
    state = approve(submitted())
    state = domain.on_deployment_event(state, deployer_event(HubDeploying, attempt=1), NOW)
    assert state is not None and state.status == RequestStatus.DEPLOYING
    failed = domain.on_deployment_event(
        state, deployer_event(HubFailed, reason="pull", attempts=3), NOW
    )
    assert failed is not None and failed.status == RequestStatus.FAILED
    again = domain.on_deployment_event(failed, deployer_event(HubDeploying, attempt=1), NOW)
    assert again is not None and again.status == RequestStatus.DEPLOYING
    running = domain.on_deployment_event(again, deployer_event(HubReady, url="http://h/"), NOW)
    assert running is not None and (running.status, running.hub_url) == (
        RequestStatus.RUNNING,
        "http://h/",
    )
    ending = domain.on_deployment_event(running, deployer_event(CourseEnded), NOW)
    assert ending is not None and ending.status == RequestStatus.ENDING
    assert domain.on_deployment_event(ending, deployer_event(HubReady, url="x"), NOW) is None
    record = DeletionRecord(backend="local", deleted_at=NOW)
    deleted = domain.on_deployment_event(ending, deployer_event(HubDeleted, record=record), NOW)
    assert deleted is not None and deleted.status == RequestStatus.DELETED
    assert deleted.hub_url is None and deleted.active_slug is None


def test_a_cancelled_course_only_waits_for_deletion() -> None:
    cancelled, _ = domain.cancel_request(
        approve(submitted()), principal=LEADER, reason="", now=NOW, env=env()
    )
    assert domain.on_deployment_event(cancelled, deployer_event(CourseEnded), NOW) is None
    record = DeletionRecord(backend="none", deleted_at=NOW)
    deleted = domain.on_deployment_event(cancelled, deployer_event(HubDeleted, record=record), NOW)
    assert deleted is not None and deleted.status == RequestStatus.DELETED


def test_a_rebuilt_or_failed_hub_shows_its_current_url_and_health() -> None:
    def at(kind: type, seconds: int, **extra: object):  # type: ignore[no-untyped-def]
        when = NOW + timedelta(seconds=seconds)
        base = {**envelope(source="deployer-svc", correlation_id="c", now=when)}
        return kind(**base, deployment_id="d1", request_id="r1", **extra)

    state = approve(submitted())
    for event, expected in [
        (at(HubDeploying, 1, attempt=1), (RequestStatus.DEPLOYING, None)),
        (at(HubReady, 2, url="http://h:1/"), (RequestStatus.RUNNING, "http://h:1/")),
        (at(HubDeploying, 3, attempt=1), (RequestStatus.DEPLOYING, None)),  # rebuilt
        (at(HubReady, 4, url="http://h:2/"), (RequestStatus.RUNNING, "http://h:2/")),
        (at(HubFailed, 5, reason="gone", attempts=3), (RequestStatus.FAILED, None)),
        (at(HubReady, 6, url="http://h:3/"), (RequestStatus.RUNNING, "http://h:3/")),
    ]:
        new = domain.on_deployment_event(state, event, NOW)
        assert new is not None and (new.status, new.hub_url) == expected, event
        state = new
    # An event older than what the leader sees changes nothing.
    assert domain.on_deployment_event(state, at(HubFailed, 5, reason="x", attempts=1), NOW) is None
    assert domain.on_deployment_event(state, at(HubDeploying, 3, attempt=1), NOW) is None
