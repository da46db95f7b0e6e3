"""The policy's rules applied to one hub request: pure, the same code in
request-svc (at submission and every edit), governance-svc (again when
deciding, and for the reviewer's checks) and the gateway's clients.

Every rule yields a RuleCheck with the numbers it compared, so that a reviewer
sees what passed as well as what failed, and a leader learns which rule a
request breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from jhaas_schemas.model import HubSpec
from jhaas_schemas.policy import Policy, RuleCheck, Span
from jhaas_schemas.quantities import byte_size, cpu_millicores

# The field of the request each rule is about (the `fields` of a refusal).
RULE_FIELDS = {
    "limits.cpu": "spec.resources.cpu",
    "limits.memory": "spec.resources.memory",
    "limits.storage": "spec.resources.storage",
    "limits.gpus": "spec.resources.gpus",
    "course.max_participants": "spec.expected_participants",
    "course.max_duration_days": "spec.ends_at",
    "course.max_advance_days": "spec.starts_at",
    "course.min_lead_time_hours": "spec.starts_at",
    "images.allowed": "spec.image",
    "images.allow_custom": "spec.image",
}


def _check(rule: str, passed: bool, value: str, limit: str, message: str) -> RuleCheck:
    return RuleCheck(
        rule=rule, passed=passed, value=value, limit=limit, message="" if passed else message
    )


def _span_checks(name: str, raw: str, span: Span, parse: Callable[[str], int]) -> list[RuleCheck]:
    try:
        value = parse(raw)
    except ValueError:
        return []  # the request's own validation names a malformed quantity
    checks = []
    if span.min is not None:
        checks.append(
            _check(
                f"limits.{name}.min",
                value >= parse(span.min),
                raw,
                f"at least {span.min}",
                f"{raw} {name} per user is below the policy's minimum of {span.min}",
            )
        )
    checks.append(
        _check(
            f"limits.{name}.max",
            value <= parse(span.max),
            raw,
            f"at most {span.max}",
            f"{raw} {name} per user is above the policy's maximum of {span.max}",
        )
    )
    return checks


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f} days"


def rule_checks(
    spec: HubSpec, policy: Policy, now: datetime, *, at_submission: bool = True
) -> list[RuleCheck]:
    """Every rule of `policy` applied to `spec`. The minimum lead time applies when a
    leader submits or edits (`at_submission`), not when a reviewer decides later."""
    limits, course = policy.limits, policy.course
    checks = [
        *_span_checks("cpu", spec.resources.cpu, limits.cpu, cpu_millicores),
        *_span_checks("memory", spec.resources.memory, limits.memory, byte_size),
        *_span_checks("storage", spec.resources.storage, limits.storage, byte_size),
        _check(
            "limits.gpus.max",
            spec.resources.gpus <= limits.gpus.max,
            str(spec.resources.gpus),
            f"at most {limits.gpus.max}",
            f"{spec.resources.gpus} GPUs per user is above the policy's maximum of "
            f"{limits.gpus.max}",
        ),
        _check(
            "course.max_participants",
            spec.expected_participants <= course.max_participants,
            str(spec.expected_participants),
            f"at most {course.max_participants}",
            f"{spec.expected_participants} participants is above the policy's maximum of "
            f"{course.max_participants}",
        ),
    ]
    if spec.starts_at.tzinfo is not None and spec.ends_at.tzinfo is not None:
        length = spec.ends_at - spec.starts_at
        ahead = spec.starts_at - now
        checks.append(
            _check(
                "course.max_duration_days",
                length <= timedelta(days=course.max_duration_days),
                _days(length),
                f"at most {course.max_duration_days} days",
                f"the course lasts {_days(length)}; the policy allows at most "
                f"{course.max_duration_days} days",
            )
        )
        checks.append(
            _check(
                "course.max_advance_days",
                ahead <= timedelta(days=course.max_advance_days),
                _days(ahead),
                f"at most {course.max_advance_days} days ahead",
                f"the course starts {_days(ahead)} from now; the policy allows at most "
                f"{course.max_advance_days} days ahead",
            )
        )
        if at_submission and course.min_lead_time_hours:
            hours = ahead.total_seconds() / 3600
            checks.append(
                _check(
                    "course.min_lead_time_hours",
                    ahead >= timedelta(hours=course.min_lead_time_hours),
                    f"{hours:.1f} hours",
                    f"at least {course.min_lead_time_hours} hours",
                    f"the course starts {hours:.1f} hours from now; the policy needs at least "
                    f"{course.min_lead_time_hours} hours to review and prepare it",
                )
            )
    checks.extend(_image_checks(spec.image, policy))
    return checks


def _image_checks(image: str, policy: Policy) -> list[RuleCheck]:
    preset_images = {p.image for p in policy.presets}
    checks = []
    if not policy.images.allow_custom:
        checks.append(
            _check(
                "images.allow_custom",
                image in preset_images,
                image,
                "one of the presets' images",
                f"{image} is not the image of a preset, and the policy allows presets only",
            )
        )
    if policy.images.allowed and image not in preset_images:
        patterns = policy.images.allowed
        checks.append(
            _check(
                "images.allowed",
                any(fnmatchcase(image, pattern) for pattern in patterns),
                image,
                "matching " + ", ".join(patterns),
                f"{image} matches none of the allowed images ({', '.join(patterns)})",
            )
        )
    return checks


def failures(checks: list[RuleCheck]) -> dict[str, str]:
    """The failed rules as a refusal's `fields`: the request's field -> the rule's message
    (the rule named first, so a client can show it next to the field)."""
    fields: dict[str, str] = {}
    for check in checks:
        if check.passed:
            continue
        field = RULE_FIELDS[check.rule.removesuffix(".min").removesuffix(".max")]
        fields.setdefault(field, f"{check.rule}: {check.message}")
    return fields
