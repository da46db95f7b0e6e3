"""The course schedule's rules, without I/O: what is due when, and what it changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from deployer_svc import schedule
from deployer_svc.domain import DeploymentRecord
from deployer_svc.schedule import Action
from jhaas_launcher.testing import sample_spec
from jhaas_schemas.envelope import envelope
from jhaas_schemas.errors import Conflict, Forbidden
from jhaas_schemas.model import DeletionRecord, Principal, Role
from jhaas_schemas.rpc import DeploymentState as S

pytestmark = pytest.mark.unit

START = datetime(2027, 4, 12, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
LEASE = timedelta(minutes=10)
ADMIN = Principal(user_id="adm", username="adm", roles=(Role.ADMIN,))


def env(now: datetime = START):  # type: ignore[no-untyped-def]
    return envelope(source="deployer-svc", correlation_id="c", now=now)


def record(**overrides: object) -> DeploymentRecord:
    values: dict[str, object] = {
        "deployment_id": "d1",
        "request_id": "r1",
        "leader_id": "lea",
        "state": S.SCHEDULED,
        "configuration": sample_spec(starts_at=START, ends_at=END),
        "deploy_at": START - timedelta(minutes=30),
        "starts_at": START,
        "ends_at": END,
        "teardown_at": END + timedelta(minutes=15),
        "created_at": START - timedelta(days=1),
        "updated_at": START - timedelta(days=1),
    }
    values.update(overrides)
    return DeploymentRecord(**values)  # type: ignore[arg-type]


def test_a_course_walks_through_its_whole_life() -> None:
    r = record()
    assert schedule.due_action(r, START - timedelta(minutes=31)) is None
    assert schedule.next_due(r) == START - timedelta(minutes=30)

    at = START - timedelta(minutes=30)
    assert schedule.due_action(r, at) == Action.DEPLOY
    r, deploying = schedule.begin_deploy(r, at, "w1", LEASE, env(at))
    assert (r.state, r.attempts, deploying.attempt) == (S.DEPLOYING, 1, 1)
    assert schedule.due_action(r, at + timedelta(minutes=1)) is None  # leased

    r, ready = schedule.deploy_succeeded(r, at + timedelta(minutes=1), "http://hub/", env())
    assert (r.state, r.hub_url, r.lease_owner, ready.url) == (
        S.RUNNING,
        "http://hub/",
        None,
        "http://hub/",
    )
    assert schedule.next_due(r) == START
    assert schedule.due_action(r, START) == Action.START_COURSE
    r, started = schedule.start_course(r, START, env())
    assert r.course_started
    assert started.request_id == "r1"
    assert schedule.due_action(r, START + timedelta(minutes=5)) is None
    assert schedule.next_due(r) == END

    assert schedule.due_action(r, END) == Action.END_COURSE
    r, _ended = schedule.end_course(r, END, env(END))
    assert r.state == S.ENDING
    assert schedule.due_action(r, END + timedelta(minutes=14)) is None  # grace
    assert schedule.due_action(r, END + timedelta(minutes=15)) == Action.TEARDOWN
    r = schedule.claim(r, END + timedelta(minutes=15), "w2", LEASE)
    deletion = DeletionRecord(backend="local", deleted_at=END, objects=("directory/x",))
    r, deleted = schedule.teardown_done(r, END + timedelta(minutes=16), deletion, env())
    assert r.state == S.DELETED
    assert deleted.record == deletion
    assert schedule.due_action(r, END + timedelta(days=1)) is None
    assert schedule.next_due(r) is None


def test_a_trigger_that_fell_due_while_down_is_due_at_once() -> None:
    r = record()
    assert schedule.due_action(r, START + timedelta(minutes=5)) == Action.DEPLOY


def test_a_crashed_deploy_is_claimed_again_after_its_lease() -> None:
    at = START - timedelta(minutes=30)
    r, _ = schedule.begin_deploy(record(), at, "w1", LEASE, env(at))
    assert schedule.due_action(r, at + LEASE - timedelta(seconds=1)) is None
    assert schedule.due_action(r, at + LEASE) == Action.DEPLOY
    r, again = schedule.begin_deploy(r, at + LEASE, "w2", LEASE, env(at))
    assert (r.attempts, r.lease_owner, again.attempt) == (2, "w2", 2)


def test_failed_deploys_back_off_then_fail_for_good() -> None:
    at = START - timedelta(minutes=30)
    r, _ = schedule.begin_deploy(record(), at, "w1", LEASE, env(at))
    r, failed = schedule.deploy_failed(
        r,
        at,
        "image pull",
        temporary=True,
        max_attempts=2,
        backoff=timedelta(seconds=30),
        env=env(),
    )
    assert failed is None
    assert r.next_attempt_at == at + timedelta(seconds=30)
    assert schedule.due_action(r, at + timedelta(seconds=29)) is None
    assert schedule.due_action(r, at + timedelta(seconds=30)) == Action.DEPLOY
    r, _ = schedule.begin_deploy(r, at + timedelta(seconds=30), "w1", LEASE, env(at))
    r, failed = schedule.deploy_failed(
        r,
        at,
        "image pull",
        temporary=True,
        max_attempts=2,
        backoff=timedelta(seconds=30),
        env=env(),
    )
    assert failed is not None
    assert (r.state, failed.attempts, failed.reason) == (S.FAILED, 2, "image pull")
    assert schedule.due_action(r, START) is None  # waits for an admin
    with pytest.raises(Forbidden):
        schedule.redeploy(r, Principal(user_id="l", username="l", roles=(Role.LEADER,)), START)
    again = schedule.redeploy(r, ADMIN, START)
    assert (again.state, again.attempts) == (S.SCHEDULED, 0)
    assert schedule.due_action(again, START) == Action.DEPLOY
    with pytest.raises(Conflict):
        schedule.redeploy(again, ADMIN, START)


def test_a_permanent_error_fails_at_once() -> None:
    r, _ = schedule.begin_deploy(record(), START, "w1", LEASE, env())
    r, failed = schedule.deploy_failed(
        r,
        START,
        "bad image",
        temporary=False,
        max_attempts=5,
        backoff=timedelta(seconds=30),
        env=env(),
    )
    assert failed is not None
    assert r.state == S.FAILED


def test_a_failed_course_is_still_cleaned_up_when_it_ends() -> None:
    r = record(state=S.FAILED, attempts=3)
    assert schedule.due_action(r, END) == Action.END_COURSE


def test_cancel_before_anything_was_built_deletes_at_once() -> None:
    r, deleted = schedule.cancel(record(), START - timedelta(days=1), env())
    assert r.state == S.DELETED
    assert deleted is not None
    assert deleted.record.objects == ()


@pytest.mark.parametrize("state", [S.DEPLOYING, S.RUNNING, S.FAILED])
def test_cancel_of_a_built_hub_tears_it_down_now(state: S) -> None:
    now = START + timedelta(minutes=10)
    r, deleted = schedule.cancel(record(state=state, attempts=1), now, env())
    assert deleted is None
    assert (r.state, r.teardown_at) == (S.ENDING, now)
    assert schedule.due_action(r, now) == Action.TEARDOWN


def test_cancel_is_idempotent() -> None:
    done = record(state=S.DELETED)
    assert schedule.cancel(done, START, env()) == (done, None)


def test_a_failed_teardown_is_retried_not_given_up() -> None:
    r = schedule.claim(record(state=S.ENDING), END + timedelta(minutes=15), "w", LEASE)
    later = END + timedelta(minutes=16)
    r = schedule.teardown_failed(r, later, timedelta(seconds=30))
    assert r.lease_owner is None
    assert schedule.due_action(r, later + timedelta(seconds=30)) == Action.TEARDOWN
    assert replace(r, state=S.ENDING) == r


def test_a_cancellation_after_a_rebuild_or_redeploy_tears_the_hub_down() -> None:
    # Rebuilding (reconciliation) and redeploying (an admin) reset the attempts; a
    # hub, or what is left of one, may still exist: cancelling must tear it down
    # instead of announcing at once that nothing was ever built.
    at = START - timedelta(minutes=30)
    running, _ = schedule.begin_deploy(record(), at, "w1", LEASE, env(at))
    running, _ = schedule.deploy_succeeded(running, at, "http://hub/", env(at))
    rebuilt = schedule.hub_missing(running, at + timedelta(minutes=1))
    assert rebuilt is not None and (rebuilt.state, rebuilt.attempts) == (S.SCHEDULED, 0)
    failed = replace(running, state=S.FAILED)
    redeployed = schedule.redeploy(failed, ADMIN, at + timedelta(minutes=2))
    for again in (rebuilt, redeployed):
        new, deleted = schedule.cancel(again, at + timedelta(minutes=3), env())
        assert deleted is None
        assert (new.state, new.teardown_at) == (S.ENDING, at + timedelta(minutes=3))
    # Never deployed at all: nothing to tear down, deleted at once.
    new, deleted = schedule.cancel(record(), at, env())
    assert new.state == S.DELETED and deleted is not None and deleted.record.objects == ()


def test_what_the_hub_cannot_do_reaches_the_ready_event() -> None:
    deploying, _ = schedule.begin_deploy(record(), START, "w1", LEASE, env())
    warning = "participants cannot sign in: the deployer does not run as root"
    _, ready = schedule.deploy_succeeded(deploying, START, "http://hub/", env(), (warning,))
    assert ready is not None and ready.warnings == (warning,)


GRACE = timedelta(minutes=15)


def test_an_approved_change_moves_the_end_and_rebuilds_a_running_hub() -> None:
    now = START + timedelta(minutes=10)
    later = sample_spec(starts_at=START, ends_at=END + timedelta(days=1), expected_participants=45)
    # Not built yet: the hub is built with the change when it is due; nothing else moves.
    waiting = schedule.change_configuration(record(), later, revision=2, grace=GRACE, now=now)
    assert waiting is not None
    assert (waiting.state, waiting.deploy_at, waiting.configuration) == (
        S.SCHEDULED,
        START - timedelta(minutes=30),
        later,
    )
    assert (waiting.ends_at, waiting.teardown_at) == (later.ends_at, later.ends_at + GRACE)

    # Running: deployed again now (the backend converges the hub); the start stays told.
    running = record(state=S.RUNNING, course_started=True, hub_url="http://hub/")
    moved = schedule.change_configuration(running, later, revision=2, grace=GRACE, now=now)
    assert moved is not None
    assert schedule.due_action(moved, now) == Action.DEPLOY
    moved, _ = schedule.begin_deploy(moved, now, "w1", LEASE, env(now))
    moved, ready = schedule.deploy_succeeded(moved, now, "http://hub/", env(), (), later)
    assert (moved.state, moved.course_started, ready is not None) == (S.RUNNING, True, True)
    assert schedule.due_action(moved, now) is None

    # An earlier end: the course ends then, and the teardown follows.
    earlier = sample_spec(starts_at=START, ends_at=START + timedelta(minutes=20))
    shortened = schedule.change_configuration(moved, earlier, revision=3, grace=GRACE, now=now)
    assert shortened is not None
    assert shortened.teardown_at == earlier.ends_at + GRACE


def test_a_deploy_in_flight_when_a_change_lands_is_converged_after_it() -> None:
    now = START - timedelta(minutes=30)
    r, _ = schedule.begin_deploy(record(), now, "w1", LEASE, env(now))
    built_from = r.configuration
    more = sample_spec(starts_at=START, ends_at=END, expected_participants=45)
    changed = schedule.change_configuration(r, more, revision=2, grace=GRACE, now=now)
    assert changed is not None and changed.state == S.DEPLOYING  # the lease stays its owner's
    done, ready = schedule.deploy_succeeded(changed, now, "http://hub/", env(), (), built_from)
    assert ready is not None  # the hub answers, with the old configuration
    assert (done.state, schedule.due_action(done, now)) == (S.SCHEDULED, Action.DEPLOY)


@pytest.mark.parametrize("state", [S.ENDING, S.DELETED])
def test_a_change_of_a_course_that_is_over_changes_nothing(state: S) -> None:
    later = sample_spec(starts_at=START, ends_at=END + timedelta(days=1))
    over = record(state=state, revision=1)
    assert schedule.change_configuration(over, later, revision=2, grace=GRACE, now=START) is None


def test_a_change_not_newer_than_the_configuration_changes_nothing() -> None:
    later = sample_spec(starts_at=START, ends_at=END + timedelta(days=1))
    changed = schedule.change_configuration(
        record(revision=1), later, revision=3, grace=GRACE, now=START
    )
    assert changed is not None and changed.revision == 3
    # A copy, and an older change redelivered after it: the newer one stays.
    older = sample_spec(starts_at=START, ends_at=END + timedelta(days=9))
    for stale in (later, older):
        for revision in (2, 3):
            assert (
                schedule.change_configuration(
                    changed, stale, revision=revision, grace=GRACE, now=START
                )
                is None
            )
