"""Loading the governance policy: a YAML file plus environment overrides.

Every error names the key and where it came from: the file's line
(``policy.yaml line 12: limits.cpu.max: "eight" is not a CPU quantity``) or
the environment variable that set it. msgspec refuses unknown keys and values
of the wrong shape; the checks it cannot make (min <= max, quantities that
parse, unique presets inside the limits...) follow in `semantic_problems`.

Environment overrides: ``JHAAS_POLICY__<KEY>__<KEY>...=<YAML value>``, keys
joined by double underscores, case-insensitive, e.g.
``JHAAS_POLICY__COURSE__MAX_PARTICIPANTS=500`` or
``JHAAS_POLICY__IMAGES__ALLOWED='["quay.io/jupyter/*"]'``. They replace the
file's value at that key (lists whole); presets are set in the file only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from jhaas_schemas.model import Resources
from jhaas_schemas.policy import Policy, PublishedPolicy, Span, published
from jhaas_schemas.quantities import byte_size, cpu_millicores, image_reference_problem

ENV_PREFIX = "JHAAS_POLICY__"
KeyPath = tuple[str | int, ...]
# Quantities an operator naturally writes as bare numbers (`cpu: 2`, `max: 8`):
# YAML reads them as numbers, the policy keeps every quantity as text. `min` and
# `max` are quantities only inside a quantity's span (`limits.gpus.max` is a count).
_QUANTITY_KEYS = frozenset({"cpu", "memory", "storage"})
_SPAN_KEYS = frozenset({"min", "max"})
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"unknown field `(?P<key>[^`]*)`")


class PolicyError(ValueError):
    """The policy cannot be used; the message names every key and its line or variable."""


def load_policy(path: Path | None, env: Mapping[str, str]) -> PublishedPolicy:
    """The policy in `path` (None: the built-in defaults) with `env`'s overrides."""
    source = _Source(path)
    data = source.read()
    overrides = _apply_env(data, env)
    _quantities_as_text(data, ())
    try:
        policy = msgspec.convert(data, Policy, strict=True)
    except msgspec.ValidationError as exc:
        where, message = _split(str(exc))
        found = _value_at(data, where)
        if found is not None and "unknown key" not in message:
            message = f"{found!r} is not allowed: {message}"
        raise PolicyError(source.locate(where, overrides, message)) from None
    problems = [source.locate(where, overrides, msg) for where, msg in semantic_problems(policy)]
    if problems:
        raise PolicyError("\n".join(problems))
    return published(policy)


class _Source:
    """The file's data and, for error messages, the line of every key."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.root: yaml.Node | None = None

    def read(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        name = self.path.name
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{self.path}: cannot read the policy file: {exc.strerror}") from None
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyError(f"{name}{line}: not valid YAML: {problem}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise PolicyError(f"{name} line 1: the policy must be a mapping of keys")
        return data

    def locate(self, where: KeyPath, overrides: Mapping[KeyPath, str], message: str) -> str:
        key = _dotted(where)
        for length in range(len(where), 0, -1):
            if where[:length] in overrides:
                return f"{overrides[where[:length]]}: {key}: {message}"
        label = self.path.name if self.path is not None else "the built-in policy"
        line = self._line(where)
        at = f" line {line}" if line else ""
        return f"{label}{at}: {key}: {message}" if key else f"{label}{at}: {message}"

    def _line(self, where: KeyPath) -> int | None:
        """The line of the deepest node of `where` the file has (a missing key: its parent)."""
        node, line = self.root, None
        for part in where:
            if isinstance(node, yaml.MappingNode):
                found = [(k, v) for k, v in node.value if k.value == part]
                if not found:
                    break
                line = found[0][0].start_mark.line + 1
                node = found[0][1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


def _split(error: str) -> tuple[KeyPath, str]:
    """msgspec's ``Expected `int` - at `$.course.max_participants[0]``` as path + message."""
    match = _AT.match(error)
    assert match is not None
    where = _parse_path(match["path"] or "")
    what = match["what"]
    unknown = _UNKNOWN.search(what)
    if unknown:
        return (*where, unknown["key"]), "unknown key (not part of the policy; a typo?)"
    return where, what


def _value_at(data: Any, where: KeyPath) -> Any:
    for part in where:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _parse_path(text: str) -> KeyPath:
    parts: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _dotted(where: KeyPath) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[KeyPath, str]:
    """Set each ``JHAAS_POLICY__A__B=value`` into `data`; the variable of each key set."""
    overrides: dict[KeyPath, str] = {}
    for variable in sorted(env):
        if not variable.upper().startswith(ENV_PREFIX):
            continue
        keys = tuple(variable[len(ENV_PREFIX) :].lower().split("__"))
        if not all(keys) or keys[0] == "presets":
            raise PolicyError(
                f"{variable}: not a policy key (JHAAS_POLICY__<KEY>__<KEY>, presets in the file)"
            )
        try:
            value = yaml.safe_load(env[variable])
        except yaml.YAMLError:
            raise PolicyError(f"{variable}: not a valid YAML value") from None
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise PolicyError(f"{variable}: {key} is not a section of the policy")
            node = child
        node[keys[-1]] = value
        overrides[keys] = variable
    return overrides


def _quantities_as_text(node: Any, where: KeyPath) -> None:
    items: Iterator[tuple[str | int, Any]]
    if isinstance(node, dict):
        items = iter(list(node.items()))
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        quantity = key in _QUANTITY_KEYS or (
            key in _SPAN_KEYS and bool(where) and where[-1] in _QUANTITY_KEYS
        )
        if quantity and isinstance(value, int | float) and not isinstance(value, bool):
            node[key] = str(value)
        else:
            _quantities_as_text(value, (*where, key))


# --- what msgspec cannot check --------------------------------------------------

_PARSERS: dict[str, tuple[Callable[[str], int], str]] = {
    "cpu": (cpu_millicores, "a CPU quantity (e.g. 500m, 2)"),
    "memory": (byte_size, "a memory quantity (e.g. 512Mi, 4Gi)"),
    "storage": (byte_size, "a storage quantity (e.g. 10Gi)"),
}
Problem = tuple[KeyPath, str]


def _amount(raw: str, kind: str, where: KeyPath, problems: list[Problem]) -> int | None:
    parse, what = _PARSERS[kind]
    try:
        return parse(raw)
    except ValueError:
        problems.append((where, f'"{raw}" is not {what}'))
        return None


def semantic_problems(policy: Policy) -> list[Problem]:
    problems: list[Problem] = []
    maxima = _limit_problems(policy, problems)
    capacity = policy.capacity
    for kind in ("cpu", "memory", "storage"):
        value = _amount(getattr(capacity, kind), kind, ("capacity", kind), problems)
        if capacity.enforced and value is not None and value <= 0:
            problems.append(
                (("capacity", kind), "must be more than 0 when capacity.enforced is true")
            )
    seen: set[str] = set()
    for index, preset in enumerate(policy.presets):
        where: KeyPath = ("presets", index)
        if preset.name in seen:
            problems.append(((*where, "name"), f'"{preset.name}" names two presets'))
        seen.add(preset.name)
        image_problem = image_reference_problem(preset.image)
        if image_problem:
            problems.append(((*where, "image"), f'"{preset.image}" {image_problem}'))
        _inside(preset.resources, (*where, "resources"), policy, maxima, problems)
    _envelope_problems(policy, maxima, problems)
    return problems


def _limit_problems(policy: Policy, problems: list[Problem]) -> dict[str, int | None]:
    maxima: dict[str, int | None] = {}
    for kind in ("cpu", "memory", "storage"):
        span: Span = getattr(policy.limits, kind)
        high = _amount(span.max, kind, ("limits", kind, "max"), problems)
        maxima[kind] = high
        if span.min is None:
            continue
        low = _amount(span.min, kind, ("limits", kind, "min"), problems)
        if low is not None and high is not None and low > high:
            problems.append(
                (("limits", kind, "min"), f"{span.min} is more than limits.{kind}.max ({span.max})")
            )
    return maxima


def _inside(
    resources: Resources,
    where: KeyPath,
    policy: Policy,
    maxima: Mapping[str, int | None],
    problems: list[Problem],
) -> None:
    """Resources (a preset's, the auto-approval envelope's) inside the per-user limits."""
    for kind in ("cpu", "memory", "storage"):
        raw = getattr(resources, kind)
        value = _amount(raw, kind, (*where, kind), problems)
        span: Span = getattr(policy.limits, kind)
        high = maxima[kind]
        if value is not None and high is not None and value > high:
            problems.append(((*where, kind), f"{raw} is above limits.{kind}.max ({span.max})"))
        if value is not None and span.min is not None and where[0] == "presets":
            try:
                low = _PARSERS[kind][0](span.min)
            except ValueError:
                continue
            if value < low:
                problems.append(((*where, kind), f"{raw} is below limits.{kind}.min ({span.min})"))
    if resources.gpus > policy.limits.gpus.max:
        problems.append(
            (
                (*where, "gpus"),
                f"{resources.gpus} is above limits.gpus.max ({policy.limits.gpus.max})",
            )
        )


def _envelope_problems(
    policy: Policy, maxima: Mapping[str, int | None], problems: list[Problem]
) -> None:
    auto, course = policy.auto_approval, policy.course
    if not auto.enabled:
        # A disabled envelope approves nothing: its defaults may exceed a tight policy.
        return
    _inside(auto.max_per_user, ("auto_approval", "max_per_user"), policy, maxima, problems)
    if auto.max_participants > course.max_participants:
        problems.append(
            (
                ("auto_approval", "max_participants"),
                f"{auto.max_participants} is above course.max_participants "
                f"({course.max_participants})",
            )
        )
    if auto.max_duration_days > course.max_duration_days:
        problems.append(
            (
                ("auto_approval", "max_duration_days"),
                f"{auto.max_duration_days} is above course.max_duration_days "
                f"({course.max_duration_days})",
            )
        )
