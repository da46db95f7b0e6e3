"""Submissions and edits against the policy in force, and presets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from jhaas_launcher.testing import sample_spec
from jhaas_schemas.envelope import Envelope, envelope
from jhaas_schemas.errors import InvalidInput
from jhaas_schemas.model import HubSpecDraft, Principal, Resources, Role
from jhaas_schemas.policy import CourseLimits, ImageRules, PerUserLimits, Policy, Preset, Span
from jhaas_schemas.rpc import HubSpecUpdate, ResourcesUpdate
from request_svc import domain

pytestmark = pytest.mark.unit

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
LEADER = Principal(user_id="lea", username="lea", roles=(Role.LEADER,))
R_PRESET = Preset(
    name="r",
    title="R",
    image="docker.io/rocker/binder:4.4.1",
    resources=Resources(cpu="1", memory="2Gi", storage="1Gi"),
)
POLICY = Policy(
    limits=PerUserLimits(cpu=Span(min="500m", max="2"), memory=Span(max="4Gi")),
    course=CourseLimits(max_participants=40),
    images=ImageRules(allowed=("quay.io/jupyter/*",)),
    presets=(R_PRESET,),
)


def env() -> Envelope:
    return envelope(source="test", correlation_id="c", now=NOW)


def draft(**overrides: object) -> HubSpecDraft:
    start = NOW + timedelta(days=7)
    values = msgspec.structs.asdict(
        sample_spec(starts_at=start, ends_at=start + timedelta(days=10))
    )
    return HubSpecDraft(**(values | overrides))


def submit(spec: HubSpecDraft, policy: Policy = POLICY) -> domain.HubRequestState:
    state, _ = domain.submit_request(
        principal=LEADER, spec=spec, request_id="r1", now=NOW, env=env(), policy=policy
    )
    return state


def refused(spec: HubSpecDraft) -> dict[str, str]:
    with pytest.raises(InvalidInput) as err:
        submit(spec)
    return err.value.fields


def test_a_submission_breaking_the_policy_names_each_rule() -> None:
    fields = refused(
        draft(
            resources=Resources(cpu="4", memory="2Gi", storage="1Gi"),
            expected_participants=41,
            image="docker.io/library/python:3.12",
        )
    )
    assert fields["spec.resources.cpu"].startswith("limits.cpu.max: 4 cpu per user is above")
    assert fields["spec.expected_participants"].startswith("course.max_participants: 41")
    assert fields["spec.image"].startswith("images.allowed: docker.io/library/python:3.12")


def test_the_same_submission_passes_under_a_looser_policy() -> None:
    spec = draft(resources=Resources(cpu="4", memory="2Gi", storage="1Gi"))
    assert "spec.resources.cpu" in refused(spec)
    assert submit(spec, Policy()).spec.resources.cpu == "4"


def test_a_preset_fills_in_image_and_resources_and_is_kept() -> None:
    state = submit(draft(image=None, resources=None, preset="r"))
    assert state.spec.image == "docker.io/rocker/binder:4.4.1"
    assert state.spec.resources == R_PRESET.resources
    assert state.spec.preset == "r"


def test_fields_typed_beside_a_preset_win_and_are_checked() -> None:
    mine = Resources(cpu="2", memory="4Gi", storage="2Gi")
    state = submit(draft(image=None, resources=mine, preset="r"))
    assert (state.spec.image, state.spec.resources) == (R_PRESET.image, mine)
    too_big = Resources(cpu="3", memory="4Gi", storage="2Gi")
    assert "spec.resources.cpu" in refused(draft(image=None, resources=too_big, preset="r"))


def test_an_unknown_preset_or_neither_preset_nor_image_is_refused() -> None:
    assert refused(draft(preset="julia")) == {
        "spec.preset": "presets: the policy has no preset 'julia' (it offers: r)"
    }
    fields = refused(draft(image=None, resources=None))
    assert set(fields) == {"spec.image", "spec.resources"}


def test_an_edit_is_checked_against_the_policy_and_may_pick_a_preset() -> None:
    state = submit(draft())
    with pytest.raises(InvalidInput) as err:
        domain.update_request(
            state,
            principal=LEADER,
            changes=HubSpecUpdate(resources=ResourcesUpdate(cpu="3")),
            expected_revision=None,
            now=NOW,
            env=env(),
            policy=POLICY,
        )
    assert err.value.fields["spec.resources.cpu"].startswith("limits.cpu.max:")
    new, event = domain.update_request(
        state,
        principal=LEADER,
        changes=HubSpecUpdate(preset="r", resources=ResourcesUpdate(cpu="2")),
        expected_revision=None,
        now=NOW,
        env=env(),
        policy=POLICY,
    )
    assert new.spec.image == R_PRESET.image and new.spec.preset == "r"
    assert new.spec.resources == Resources(cpu="2", memory="2Gi", storage="1Gi")
    assert event is not None and event.spec == new.spec


def test_a_spec_without_a_preset_encodes_as_before() -> None:
    # Consumers that predate presets decode the spec with unknown fields refused.
    assert b"preset" not in msgspec.json.encode(submit(draft()).spec)
