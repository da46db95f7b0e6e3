"""Every rule of the policy, passing and failing, with the numbers it compared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jhaas_launcher.testing import sample_spec
from jhaas_schemas.model import HubSpec, Resources
from jhaas_schemas.policy import (
    CourseLimits,
    GpuSpan,
    ImageRules,
    PerUserLimits,
    Policy,
    Preset,
    RuleCheck,
    Span,
)
from jhaas_schemas.policy_rules import failures, rule_checks

pytestmark = pytest.mark.unit

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
POLICY = Policy(
    limits=PerUserLimits(
        cpu=Span(min="500m", max="2"),
        memory=Span(min="1Gi", max="4Gi"),
        storage=Span(max="10Gi"),
        gpus=GpuSpan(max=1),
    ),
    course=CourseLimits(
        max_participants=40, max_duration_days=30, max_advance_days=60, min_lead_time_hours=48
    ),
    images=ImageRules(allow_custom=True, allowed=("quay.io/jupyter/*",)),
    presets=(
        Preset(
            name="r",
            title="R",
            image="docker.io/rocker/binder:4.4.1",
            resources=Resources(cpu="1", memory="2Gi", storage="1Gi"),
        ),
    ),
)


def spec(**overrides: object) -> HubSpec:
    start = NOW + timedelta(days=7)
    values: dict[str, object] = {
        "starts_at": start,
        "ends_at": start + timedelta(days=10),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": Resources(cpu="1", memory="2Gi", storage="5Gi", gpus=0),
        "expected_participants": 30,
    }
    return sample_spec(**(values | overrides))


def by_rule(checks: list[RuleCheck]) -> dict[str, RuleCheck]:
    return {check.rule: check for check in checks}


def test_a_request_inside_the_policy_passes_every_rule_with_its_numbers() -> None:
    checks = by_rule(rule_checks(spec(), POLICY, NOW))
    assert all(check.passed and not check.message for check in checks.values())
    assert set(checks) == {
        "limits.cpu.min", "limits.cpu.max", "limits.memory.min", "limits.memory.max",
        "limits.storage.max", "limits.gpus.max", "course.max_participants",
        "course.max_duration_days", "course.max_advance_days", "course.min_lead_time_hours",
        "images.allowed",
    }  # fmt: skip
    assert (checks["limits.cpu.max"].value, checks["limits.cpu.max"].limit) == ("1", "at most 2")
    assert checks["course.max_duration_days"].value == "10.0 days"
    assert checks["course.min_lead_time_hours"].value == "168.0 hours"


R = Resources


@pytest.mark.parametrize(
    ("overrides", "rule", "field", "numbers"),
    [
        ({"resources": R(cpu="250m", memory="2Gi", storage="1Gi")}, "limits.cpu.min",
         "spec.resources.cpu", ("250m", "at least 500m")),
        ({"resources": R(cpu="3", memory="2Gi", storage="1Gi")}, "limits.cpu.max",
         "spec.resources.cpu", ("3", "at most 2")),
        ({"resources": R(cpu="1", memory="512Mi", storage="1Gi")}, "limits.memory.min",
         "spec.resources.memory", ("512Mi", "at least 1Gi")),
        ({"resources": R(cpu="1", memory="8Gi", storage="1Gi")}, "limits.memory.max",
         "spec.resources.memory", ("8Gi", "at most 4Gi")),
        ({"resources": R(cpu="1", memory="2Gi", storage="20Gi")}, "limits.storage.max",
         "spec.resources.storage", ("20Gi", "at most 10Gi")),
        ({"resources": R(cpu="1", memory="2Gi", storage="1Gi", gpus=2)}, "limits.gpus.max",
         "spec.resources.gpus", ("2", "at most 1")),
        ({"expected_participants": 41}, "course.max_participants",
         "spec.expected_participants", ("41", "at most 40")),
        ({"ends_at": NOW + timedelta(days=7 + 31)}, "course.max_duration_days",
         "spec.ends_at", ("31.0 days", "at most 30 days")),
        ({"starts_at": NOW + timedelta(days=61), "ends_at": NOW + timedelta(days=62)},
         "course.max_advance_days", "spec.starts_at", ("61.0 days", "at most 60 days ahead")),
        ({"starts_at": NOW + timedelta(hours=47), "ends_at": NOW + timedelta(days=3)},
         "course.min_lead_time_hours", "spec.starts_at", ("47.0 hours", "at least 48 hours")),
        ({"image": "docker.io/library/python:3.12"}, "images.allowed", "spec.image",
         ("docker.io/library/python:3.12", "matching quay.io/jupyter/*")),
    ],
)  # fmt: skip
def test_each_rule_fails_with_its_numbers_and_names_itself(
    overrides: dict[str, object], rule: str, field: str, numbers: tuple[str, str]
) -> None:
    checks = rule_checks(spec(**overrides), POLICY, NOW)
    failed = [check for check in checks if not check.passed]
    assert [check.rule for check in failed] == [rule]
    assert (failed[0].value, failed[0].limit) == numbers
    assert failed[0].message
    assert failures(checks) == {field: f"{rule}: {failed[0].message}"}


def test_the_lead_time_is_not_checked_again_when_a_reviewer_decides() -> None:
    late = spec(starts_at=NOW + timedelta(hours=1), ends_at=NOW + timedelta(days=2))
    rules = {check.rule for check in rule_checks(late, POLICY, NOW, at_submission=False)}
    assert "course.min_lead_time_hours" not in rules
    assert not failures(rule_checks(late, POLICY, NOW, at_submission=False))


def test_a_presets_image_is_allowed_even_outside_the_patterns() -> None:
    checks = rule_checks(spec(image="docker.io/rocker/binder:4.4.1"), POLICY, NOW)
    assert not failures(checks)


def test_presets_only_refuses_a_typed_image() -> None:
    only = Policy(images=ImageRules(allow_custom=False), presets=POLICY.presets)
    typed = rule_checks(spec(), only, NOW)
    assert failures(typed) == {
        "spec.image": "images.allow_custom: quay.io/jupyter/scipy-notebook:2024-12-02 is not "
        "the image of a preset, and the policy allows presets only"
    }
    assert not failures(rule_checks(spec(image="docker.io/rocker/binder:4.4.1"), only, NOW))
