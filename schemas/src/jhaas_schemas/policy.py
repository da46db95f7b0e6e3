"""Governance policy: what the operator allows, as one validated document.

The operator writes it as a YAML file (JHAAS_POLICY_FILE) with environment
overrides; request-svc validates every submission and edit against it,
governance-svc checks again when deciding and reserves capacity from it, and
the gateway publishes it so clients can show it. Quantities are Kubernetes
quantities like the requests' own (``500m``, ``4Gi``).

These are the shapes only: loading (with the file's line in every error),
the rules' evaluation and the capacity calendar live beside them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated

import msgspec

from jhaas_schemas.model import Description, Gpus, ImageRef, Quantity, Resources, Title

PresetName = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9-]*$")]
Days = Annotated[int, msgspec.Meta(ge=1, le=3660)]
Hours = Annotated[int, msgspec.Meta(ge=0, le=24 * 366)]
Count = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
ImagePattern = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class Span(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An inclusive range of a per-user quantity; ``min`` absent: no lower bound."""

    min: Quantity | None = None
    max: Quantity


class GpuSpan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max: Gpus = 0


class PerUserLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cpu: Span = Span(min="100m", max="8")
    memory: Span = Span(min="256Mi", max="64Gi")
    storage: Span = Span(max="100Gi")
    gpus: GpuSpan = GpuSpan()


class CourseLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_participants: Count = 1000
    max_duration_days: Days = 366
    # How far ahead of now a course may start.
    max_advance_days: Days = 731
    # The least time between submission and start (a reviewer must be able to decide).
    min_lead_time_hours: Hours = 0


class ImageRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # May a leader type an image instead of picking a preset?
    allow_custom: bool = True
    # fnmatch patterns over the whole reference (``quay.io/jupyter/*``); empty: any image.
    allowed: tuple[ImagePattern, ...] = ()


class Preset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named software stack a leader can pick."""

    name: PresetName
    title: Title
    description: Description = ""
    image: ImageRef
    resources: Resources


class Capacity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the target (one machine or a cluster) can give all courses at one moment.

    A course reserves per-user resources times participants from its deployment
    (start - the deployer's lead) to its deletion (end + the teardown grace).
    """

    cpu: Quantity = "0"
    memory: Quantity = "0"
    storage: Quantity = "0"
    gpus: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    # False: no calendar (every approval fits); true needs the amounts above.
    enforced: bool = False


class AutoApproval(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Requests inside this envelope that fit the calendar are approved by the system."""

    enabled: bool = False
    max_participants: Count = 50
    max_per_user: Resources = Resources(cpu="2", memory="4Gi", storage="10Gi", gpus=0)
    max_duration_days: Days = 120
    presets_only: bool = True


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limits: PerUserLimits = PerUserLimits()
    course: CourseLimits = CourseLimits()
    images: ImageRules = ImageRules()
    presets: tuple[Preset, ...] = ()
    capacity: Capacity = Capacity()
    auto_approval: AutoApproval = AutoApproval()


class PublishedPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The policy in force, as the gateway publishes it; ``version`` changes with
    any change of content (a hash), so a client can tell it reloaded."""

    version: str
    policy: Policy


class RuleCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One rule of the policy applied to one request, with the numbers it compared."""

    rule: str  # e.g. "limits.cpu.max", "course.max_participants", "images.allowed"
    passed: bool
    # What was asked and what the rule allows, as a person reads them ("4", "at most 2").
    value: str
    limit: str
    message: str = ""  # why it failed, naming the rule; empty when it passed


# Where a service reads the policy in force: a holder that reloads the file
# (jhaas_runtime.policy), or a fixed policy in tests.
PolicySource = Callable[[], PublishedPolicy]


def published(policy: Policy) -> PublishedPolicy:
    """`policy` with its version: a hash of its content, the same in every service."""
    digest = hashlib.sha256(msgspec.json.encode(policy, order="sorted")).hexdigest()
    return PublishedPolicy(version=digest[:16], policy=policy)


def fixed(policy: Policy | None = None) -> PolicySource:
    """A source that always answers `policy` (default: the built-in defaults)."""
    value = published(policy or Policy())
    return lambda: value
