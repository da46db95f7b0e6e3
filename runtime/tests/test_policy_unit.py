"""Loading the policy: every refusal names the key and the file's line (or the
environment variable); a reload keeps the policy in force when the file is bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from jhaas_runtime.policy import PolicyError, load_policy
from jhaas_runtime.policy_holder import PolicyHolder
from jhaas_schemas.policy import Policy, PublishedPolicy, published

pytestmark = pytest.mark.unit

GOOD = """\
# the operator's policy
limits:
  cpu:
    min: 100m
    max: 4
  memory:
    max: 8Gi
course:
  max_participants: 200
images:
  allowed: ["quay.io/jupyter/*"]
presets:
  - name: python
    title: Minimal Python
    image: quay.io/jupyter/minimal-notebook:2024-12-02
    resources: {cpu: 1, memory: 2Gi, storage: 1Gi}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def refusal(path: Path | None, env: dict[str, str] | None = None) -> str:
    with pytest.raises(PolicyError) as err:
        load_policy(path, env or {})
    return str(err.value)


def test_no_file_is_the_built_in_policy() -> None:
    assert load_policy(None, {}) == published(Policy())


def test_a_valid_file_is_read_with_bare_numbers_as_quantities(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD), {}).policy
    assert policy.limits.cpu.max == "4" and policy.course.max_participants == 200
    assert policy.presets[0].resources.cpu == "1"
    assert policy.images.allowed == ("quay.io/jupyter/*",)


def test_the_gpu_limit_is_a_count_not_a_quantity(tmp_path: Path) -> None:
    text = GOOD.replace("    max: 8Gi\n", "    max: 8Gi\n  gpus:\n    max: 2\n", 1)
    policy = load_policy(write(tmp_path, text), {"JHAAS_POLICY__CAPACITY__GPUS": "4"}).policy
    assert policy.limits.gpus.max == 2 and policy.capacity.gpus == 4


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  max_participants: 200", "  max_participants: 200\n  max_participant: 3",
         "policy.yaml line 10: course.max_participant: unknown key"),
        ("    max: 4\n", "    max: eight\n",
         'policy.yaml line 5: limits.cpu.max: "eight" is not a CPU quantity'),
        ("  max_participants: 200", "  max_participants: 0",
         "policy.yaml line 9: course.max_participants: 0 is not allowed: Expected `int` >= 1"),
        ("    min: 100m", "    min: 5",
         "policy.yaml line 4: limits.cpu.min: 5 is more than limits.cpu.max (4)"),
        ("    max: 8Gi", "    max: 8Gi\n    min: 16Gi",
         "policy.yaml line 8: limits.memory.min: 16Gi is more than limits.memory.max (8Gi)"),
    ],
)  # fmt: skip
def test_a_bad_file_names_the_key_and_its_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    assert expected in refusal(write(tmp_path, GOOD.replace(old, new, 1)))


def test_a_duplicate_preset_and_a_preset_outside_the_limits_name_their_lines(
    tmp_path: Path,
) -> None:
    second = """\
  - name: python
    title: Big Python
    image: quay.io/jupyter/minimal-notebook:2024-12-02
    resources: {cpu: 6, memory: 2Gi, storage: 1Gi}
"""
    message = refusal(write(tmp_path, GOOD + second))
    assert 'policy.yaml line 17: presets[1].name: "python" names two presets' in message
    assert "policy.yaml line 20: presets[1].resources.cpu: 6 is above limits.cpu.max (4)" in (
        message
    )


def test_impossible_capacity_and_envelope_are_refused(tmp_path: Path) -> None:
    extra = """\
capacity:
  cpu: 0
  memory: 1Ti
  storage: 10Ti
  enforced: true
auto_approval:
  enabled: true
  max_participants: 500
"""
    message = refusal(write(tmp_path, GOOD + extra))
    assert "policy.yaml line 18: capacity.cpu: must be more than 0" in message
    assert "line 24: auto_approval.max_participants: 500 is above course.max_participants" in (
        message
    )


def test_a_disabled_envelope_may_be_wider_than_the_course_limits(tmp_path: Path) -> None:
    tight = GOOD.replace("max_participants: 200", "max_participants: 20")
    assert load_policy(write(tmp_path, tight), {}).policy.auto_approval.max_participants == 50
    message = refusal(write(tmp_path, tight), {"JHAAS_POLICY__AUTO_APPROVAL__ENABLED": "true"})
    assert "auto_approval.max_participants: 50 is above course.max_participants (20)" in message


def test_not_yaml_and_not_a_mapping_are_refused_with_a_line(tmp_path: Path) -> None:
    assert "policy.yaml line 3: not valid YAML" in refusal(write(tmp_path, "a:\n  b: 1\n c: [\n"))
    assert "policy.yaml line 1: the policy must be a mapping" in refusal(write(tmp_path, "- 1\n"))
    assert "cannot read the policy file" in refusal(tmp_path / "missing.yaml")


def test_environment_overrides_replace_the_files_values(tmp_path: Path) -> None:
    env = {
        "JHAAS_POLICY__COURSE__MAX_PARTICIPANTS": "500",
        "JHAAS_POLICY__IMAGES__ALLOW_CUSTOM": "false",
        "jhaas_policy__limits__cpu__max": "8",
        "OTHER": "x",
    }
    policy = load_policy(write(tmp_path, GOOD), env).policy
    assert policy.course.max_participants == 500
    assert policy.images.allow_custom is False
    assert policy.limits.cpu.max == "8"
    assert policy.presets[0].name == "python"  # the rest of the file stays


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("JHAAS_POLICY__COURSE__MAX_PARTICIPANTS", "lots",
         "JHAAS_POLICY__COURSE__MAX_PARTICIPANTS: course.max_participants: 'lots' is not allowed"),
        ("JHAAS_POLICY__COURSE__MAX_PARTICIPANT", "3",
         "JHAAS_POLICY__COURSE__MAX_PARTICIPANT: course.max_participant: unknown key"),
        ("JHAAS_POLICY__LIMITS__CPU__MAX", "eight",
         'JHAAS_POLICY__LIMITS__CPU__MAX: limits.cpu.max: "eight" is not a CPU quantity'),
        ("JHAAS_POLICY__PRESETS", "[]", "JHAAS_POLICY__PRESETS: not a policy key"),
        ("JHAAS_POLICY__COURSE__MAX_PARTICIPANTS__X", "1",
         "JHAAS_POLICY__COURSE__MAX_PARTICIPANTS__X: max_participants is not a section"),
    ],
)  # fmt: skip
def test_a_bad_override_names_its_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    assert expected in refusal(write(tmp_path, GOOD), {variable: value})


def test_the_holder_reloads_a_changed_file_and_keeps_the_old_on_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    holder = PolicyHolder(path, {})
    seen: list[PublishedPolicy] = []
    holder.subscribe(seen.append)
    first = holder.current()
    assert holder.check() is False  # unchanged: nothing read again

    path.write_text(GOOD.replace("max_participants: 200", "max_participants: 60"))
    assert holder.check() is False  # seen once: it may still be being written
    assert holder.check() is True
    assert holder().policy.course.max_participants == 60 and holder.problem is None
    assert holder().version != first.version and seen == [holder()]

    path.write_text(GOOD.replace("max_participants: 200", "max_participants: many"))
    assert (holder.check(), holder.check()) == (False, False)
    assert holder().policy.course.max_participants == 60 and len(seen) == 1
    assert "policy.yaml line 9: course.max_participants: 'many'" in capsys.readouterr().out
    assert holder.problem is not None and "course.max_participants" in holder.problem

    path.unlink()
    assert (holder.check(), holder.check()) == (False, False)
    assert holder().policy.course.max_participants == 60


def test_a_file_still_being_written_is_not_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    holder = PolicyHolder(path, {})
    path.write_text("")  # truncated, the new text not there yet: the built-in defaults
    assert holder.check() is False
    path.write_text(GOOD.replace("max_participants: 200", "max_participants: 60"))
    assert holder.check() is False  # changed again since the last look
    assert holder().policy.course.max_participants == 200
    assert holder.check() is True
    assert holder().policy.course.max_participants == 60

    path.write_text(GOOD)
    holder.reload()  # SIGHUP: the operator says the file is complete
    assert holder().policy.course.max_participants == 200


def test_the_holder_refuses_a_bad_file_at_start(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("limits:", "limit:"))
    with pytest.raises(PolicyError, match=r"policy\.yaml line 2: limit: unknown key"):
        PolicyHolder.from_env({"JHAAS_POLICY_FILE": str(path)})
