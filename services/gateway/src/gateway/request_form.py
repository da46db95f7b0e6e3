"""The leader's request form and the change form of an approved course (issue 11):
what a browser typed, turned into the request schema (dates in the course's time
zone, resources with units), the published policy's limits in the page's words
(the live checks of /static/request-form.js show them), the service's refusals
mapped to the inputs they concern, and the pages (templates web/templates/requests/).

The routes are in controllers/request_pages.py. The rules themselves are the
services': this module checks only what the schema needs to be built at all
(a number, a date, a zone); the policy's limits are rendered for the live checks
and checked again by request-svc on submit.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from gettext import NullTranslations
from typing import Any

import msgspec
from litestar import Request

from gateway.accounts import Caller
from gateway.web.i18n import N_, choose_language, translations
from gateway.web.render import Page
from jhaas_schemas.model import MULTI_LINE, SINGLE_LINE, SLUG, HubSpec, HubSpecDraft, Role
from jhaas_schemas.policy import Preset
from jhaas_schemas.quantities import byte_size, cpu_millicores, image_reference_problem
from jhaas_schemas.rpc import (
    ChangeStatus,
    HubRequest,
    HubSpecUpdate,
    PolicyView,
    ResourcesUpdate,
    RpcError,
)

TITLE_NEW = N_("Request a hub")
TITLE_CHANGE = N_("Change the course")
TITLE_EDIT = N_("Edit the request")
NEW_PATH = "/requests/new"
CUSTOM = "custom"  # the environment choice "my own image"
UNITS = {"GiB": 2**30, "MiB": 2**20}
MAX_PARTICIPANTS = 5000  # the schema's bound (Participants)
MAX_GPUS = 8  # the schema's bound (Gpus)
DEFAULT_START_TIME = "09:00"
DEFAULT_END_TIME = "17:00"
_CORES = re.compile(r"^\d{1,4}(?:[.,]\d{1,3})?$")
_SIZE = re.compile(r"^\d{1,7}(?:[.,]\d{1,14})?$")
_WHOLE = re.compile(r"^\d{1,6}$")
# The years a course can be in: past ones are refused by the service, and the
# edges of datetime overflow when moved between zones.
FIRST_YEAR, LAST_YEAR = 1970, 9000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(?::\d{2})?$")

Request_ = Request[Any, Any, Any]


def may_request(caller: Caller) -> bool:
    """Whether the form is offered: request-svc takes submissions from these roles
    (and refuses anyone else again on submit)."""
    return caller.principal.has(Role.LEADER, Role.ADMIN)


def course_path(request_id: str) -> str:
    return f"/courses/{request_id}"


def edit_path(request_id: str) -> str:
    return f"/requests/{request_id}/edit"


def change_path(request_id: str) -> str:
    return f"/courses/{request_id}/change"


@cache
def time_zones() -> tuple[str, ...]:
    """Every zone the server knows (IANA names), UTC first."""
    return ("UTC", *sorted(z for z in zoneinfo.available_timezones() if z != "UTC"))


@dataclass(frozen=True)
class Words:
    """The page's language for texts made here (messages with numbers in them)."""

    catalog: NullTranslations

    def __call__(self, message: str, **values: Any) -> str:
        text = self.catalog.gettext(message)
        return text % values if values else text


def words_for(request: Request_, caller: Caller) -> Words:
    """The language the page is shown in (as render.Page chooses it)."""
    language = choose_language(caller.preferred_language, request.headers.get("accept-language"))
    return Words(translations(language))


# --- quantities as people type them -------------------------------------------------


def cores(quantity: str) -> str:
    """``"500m"`` -> ``"0.5"``; ``"2"`` -> ``"2"``."""
    text = f"{Decimal(cpu_millicores(quantity)) / 1000:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def size_input(quantity: str) -> tuple[str, str]:
    """A size as the form's number and unit: ``"4Gi"`` -> ("4", "GiB")."""
    size = byte_size(quantity)
    if size % UNITS["GiB"] == 0:
        return str(size // UNITS["GiB"]), "GiB"
    text = f"{Decimal(size) / UNITS['MiB']:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text), "MiB"


def size_words(quantity: str) -> str:
    number, unit = size_input(quantity)
    return f"{number} {unit}"


def _decimal(text: str, pattern: re.Pattern[str]) -> Decimal | None:
    text = text.strip()
    if not pattern.fullmatch(text):
        return None
    return Decimal(text.replace(",", "."))


def cpu_quantity(text: str) -> str | None:
    """Cores as typed (``0.5``, ``2``) -> a Kubernetes quantity; None: not a core count."""
    value = _decimal(text, _CORES)
    if value is None or value <= 0:
        return None
    millicores = value * 1000
    if millicores % 1000 == 0:
        return str(int(millicores // 1000))
    return f"{int(millicores)}m"


def size_quantity(text: str, unit: str) -> str | None:
    """A number and GiB/MiB -> ``4Gi`` / ``1536Mi`` (bytes when neither fits, as a
    size the policy wrote as ``1G`` comes back); None: not a size in whole bytes."""
    value = _decimal(text, _SIZE)
    if value is None or value <= 0 or unit not in UNITS:
        return None
    size = value * UNITS[unit]
    if size % 1 != 0:
        return None
    if size % UNITS["GiB"] == 0:
        return f"{int(size // UNITS['GiB'])}Gi"
    if size % UNITS["MiB"] == 0:
        return f"{int(size // UNITS['MiB'])}Mi"
    return str(int(size))


# --- the policy's rules in the page's words -------------------------------------------


def rule_words(policy: PolicyView, say: Words) -> dict[str, str]:
    """Each rule a field is checked against, as the person reads it: shown by the
    live checks (data-* attributes) and for the service's refusal naming the rule."""
    limits, course = policy.limits, policy.course
    words = {
        "participants.min": say(N_("Expect at least 1 participant.")),
        "participants.max": say(
            N_("At most %(max)s participants are allowed."),
            max=min(course.max_participants, MAX_PARTICIPANTS),
        ),
        "cpu.max": say(
            N_("At most %(max)s CPU cores per user are allowed."), max=cores(limits.cpu.max)
        ),
        "memory.max": say(
            N_("At most %(max)s memory per user is allowed."), max=size_words(limits.memory.max)
        ),
        "storage.max": say(
            N_("At most %(max)s storage per user is allowed."), max=size_words(limits.storage.max)
        ),
        "gpus.max": say(
            N_("At most %(max)s GPUs per user are allowed."), max=min(limits.gpus.max, MAX_GPUS)
        ),
        "end.after_start": say(N_("The end must be after the start.")),
        "duration.max": say(
            N_("A course may last at most %(days)s days."), days=course.max_duration_days
        ),
        "advance.max": say(
            N_("A course may start at most %(days)s days from now."), days=course.max_advance_days
        ),
        "lead.min": say(
            N_(
                "The course must start at least %(hours)s hours from now, so that it can be "
                "reviewed and prepared."
            ),
            hours=course.min_lead_time_hours,
        ),
        "start.future": say(N_("The start must be in the future.")),
        "slug.taken": say(N_("Another course uses this short name; choose another.")),
        "end.future": say(N_("The end must be in the future and after the start.")),
        "image.custom": say(N_("The policy allows only the presets' images.")),
        "image.allowed": say(
            N_("The policy allows only images matching %(patterns)s."),
            patterns=", ".join(policy.images.allowed),
        ),
    }
    if limits.cpu.min is not None:
        words["cpu.min"] = say(
            N_("At least %(min)s CPU cores per user are needed."), min=cores(limits.cpu.min)
        )
    if limits.memory.min is not None:
        words["memory.min"] = say(
            N_("At least %(min)s memory per user is needed."), min=size_words(limits.memory.min)
        )
    if limits.storage.min is not None:
        words["storage.min"] = say(
            N_("At least %(min)s storage per user is needed."), min=size_words(limits.storage.min)
        )
    return words


# A refusal's rule (request-svc's "rule: message") -> its words above.
SERVICE_RULES = {
    "limits.cpu.max": "cpu.max",
    "limits.cpu.min": "cpu.min",
    "limits.memory.max": "memory.max",
    "limits.memory.min": "memory.min",
    "limits.storage.max": "storage.max",
    "limits.storage.min": "storage.min",
    "limits.gpus.max": "gpus.max",
    "course.max_participants": "participants.max",
    "course.max_duration_days": "duration.max",
    "course.max_advance_days": "advance.max",
    "course.min_lead_time_hours": "lead.min",
    "images.allow_custom": "image.custom",
    "images.allowed": "image.allowed",
}
# The request's own rules, as request-svc words them.
SERVICE_TEXTS = {
    "must be in the future": "start.future",
    "must be after starts_at": "end.after_start",
    "must be in the future and after starts_at": "end.future",
    "is taken": "slug.taken",
}
# A refusal's field -> the input it concerns.
FIELD_INPUTS = {
    "spec.title": "title",
    "spec.slug": "slug",
    "spec.description": "description",
    "spec.starts_at": "start_date",
    "spec.ends_at": "end_date",
    "spec.expected_participants": "expected_participants",
    "spec.image": "image",
    "spec.default_interface": "interface",
    "spec.resources": "cpu",
    "spec.resources.cpu": "cpu",
    "spec.resources.memory": "memory",
    "spec.resources.storage": "storage",
    "spec.resources.gpus": "gpus",
}


def refusal_problems(
    refusal: RpcError, rules: dict[str, str], *, environment_input: str
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The service's `fields` next to their inputs (in the page's words where the rule
    is known, else as the service put it), and the summary (input id or "", message)."""
    errors: dict[str, str] = {}
    summary: list[tuple[str, str]] = []
    for name, message in refusal.fields.items():
        rule, _, _ = message.partition(": ")
        key = SERVICE_RULES.get(rule) or SERVICE_TEXTS.get(message)
        text = rules.get(key, message) if key else message
        input_id = FIELD_INPUTS.get(name, "")
        if name == "spec.preset":
            input_id = environment_input
        if name == "spec.image" and environment_input != "image":
            input_id = environment_input  # a preset's image: the choice is the culprit
        if input_id and input_id not in errors:
            errors[input_id] = text
        summary.append((input_id, text))
    if not summary:
        summary.append(("", refusal.message))
    return errors, summary


# --- dates in a zone ------------------------------------------------------------------


def local_instant(
    day: str, hour: str, zone_name: str, say: Words
) -> tuple[datetime | None, str | None]:
    """The moment `day` `hour` in `zone_name` is, in UTC; or the problem in words."""
    if not _DATE.fullmatch(day.strip()):
        return None, say(N_("Enter a date such as 2027-04-12."))
    if not _TIME.fullmatch(hour.strip()):
        return None, say(N_("Enter a time such as 09:00."))
    try:
        wall = datetime.combine(date.fromisoformat(day.strip()), time.fromisoformat(hour.strip()))
    except ValueError:
        return None, say(N_("Enter a date and a time that exist, such as 2027-04-12 09:00."))
    if not FIRST_YEAR <= wall.year <= LAST_YEAR:
        # Year 1 or 9999 in a zone off UTC is outside what a datetime can hold.
        return None, say(N_("Enter a date and a time that exist, such as 2027-04-12 09:00."))
    zone = zoneinfo.ZoneInfo(zone_name)
    early, late = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    shown = f"{day.strip()} {hour.strip()}"
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return None, say(
            N_(
                "%(time)s does not exist in %(zone)s: the clocks go forward then. "
                "Choose another time."
            ),
            time=shown,
            zone=zone_name,
        )
    if early.utcoffset() != late.utcoffset():
        return None, say(
            N_("%(time)s happens twice in %(zone)s: the clocks go back then. Choose another time."),
            time=shown,
            zone=zone_name,
        )
    return early.astimezone(UTC), None


def wall_clock(instant: datetime, zone_name: str) -> tuple[str, str]:
    local = instant.astimezone(zoneinfo.ZoneInfo(zone_name))
    return local.date().isoformat(), local.strftime("%H:%M")


# --- the request form ------------------------------------------------------------------


@dataclass(frozen=True)
class RequestForm:
    """What the request form holds: every value as typed (shown again on a refusal)."""

    title: str = ""
    slug: str = ""
    description: str = ""
    timezone: str = "UTC"
    start_date: str = ""
    start_time: str = DEFAULT_START_TIME
    end_date: str = ""
    end_time: str = DEFAULT_END_TIME
    expected_participants: str = ""
    environment: str = ""
    image: str = ""
    interface: str = "lab"
    cpu: str = ""
    memory: str = ""
    memory_unit: str = "GiB"
    storage: str = ""
    storage_unit: str = "GiB"
    gpus: str = "0"

    @classmethod
    def posted(cls, fields_: dict[str, list[str]]) -> RequestForm:
        names = {f.name for f in fields(cls)}
        return cls(**{n: v[0] for n, v in fields_.items() if n in names and v})

    @classmethod
    def blank(cls, policy: PolicyView) -> RequestForm:
        """A new form: the first preset picked, with its resources."""
        if policy.presets:
            return cls().with_preset(policy.presets[0])
        return cls(environment=CUSTOM if policy.images.allow_custom else "")

    @classmethod
    def of_request(cls, course: HubRequest, policy: PolicyView) -> RequestForm:
        """The request as it stands (its dates in UTC: the script shows them in the
        browser's zone), for the edit form."""
        spec = course.spec
        start_date, start_time = wall_clock(spec.starts_at, "UTC")
        end_date, end_time = wall_clock(spec.ends_at, "UTC")
        memory, memory_unit = size_input(spec.resources.memory)
        storage, storage_unit = size_input(spec.resources.storage)
        preset = spec.preset if isinstance(spec.preset, str) else ""
        picked = preset in {p.name for p in policy.presets} and spec.image in {
            p.image for p in policy.presets if p.name == preset
        }
        return cls(
            title=spec.title,
            slug=spec.slug,
            description=spec.description,
            start_date=start_date,
            start_time=start_time,
            end_date=end_date,
            end_time=end_time,
            expected_participants=str(spec.expected_participants),
            environment=preset if picked else CUSTOM,
            image="" if picked else spec.image,
            interface=spec.default_interface,
            cpu=cores(spec.resources.cpu),
            memory=memory,
            memory_unit=memory_unit,
            storage=storage,
            storage_unit=storage_unit,
            gpus=str(spec.resources.gpus),
        )

    def with_preset(self, preset: Preset) -> RequestForm:
        memory, memory_unit = size_input(preset.resources.memory)
        storage, storage_unit = size_input(preset.resources.storage)
        return replace(
            self,
            environment=preset.name,
            cpu=cores(preset.resources.cpu),
            memory=memory,
            memory_unit=memory_unit,
            storage=storage,
            storage_unit=storage_unit,
            gpus=str(preset.resources.gpus),
        )


def _text_problem(value: str, *, low: int, high: int, pattern: str) -> bool:
    return not (low <= len(value) <= high) or re.search(pattern, value) is None


@dataclass
class _Parsed:
    say: Words
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, input_id: str, message: str) -> None:
        self.errors.setdefault(input_id, message)


def _resources(form: RequestForm | ChangeForm, gpus_allowed: bool, p: _Parsed) -> dict[str, Any]:
    say = p.say
    cpu = cpu_quantity(form.cpu)
    if cpu is None:
        p.fail("cpu", say(N_("Enter the CPU cores per user as a number such as 0.5 or 2.")))
    memory = size_quantity(form.memory, form.memory_unit)
    if memory is None:
        p.fail("memory", say(N_("Enter the memory per user as a number of GiB or MiB.")))
    storage = size_quantity(form.storage, form.storage_unit)
    if storage is None:
        p.fail("storage", say(N_("Enter the storage per user as a number of GiB or MiB.")))
    gpus = 0
    if gpus_allowed:
        typed = form.gpus.strip() or "0"
        if not _WHOLE.fullmatch(typed) or int(typed) > MAX_GPUS:
            p.fail("gpus", say(N_("Enter the GPUs per user as a whole number from 0 to 8.")))
        else:
            gpus = int(typed)
    return {"cpu": cpu, "memory": memory, "storage": storage, "gpus": gpus}


def _participants(text: str, policy: PolicyView, p: _Parsed) -> int | None:
    typed = text.strip()
    if _WHOLE.fullmatch(typed) and 1 <= int(typed) <= MAX_PARTICIPANTS:
        return int(typed)
    p.fail(
        "expected_participants",
        p.say(
            N_("Enter the number of participants as a whole number from 1 to %(max)s."),
            max=min(policy.course.max_participants, MAX_PARTICIPANTS),
        ),
    )
    return None


def _zone(form: RequestForm | ChangeForm, p: _Parsed) -> str | None:
    if form.timezone in time_zones():
        return form.timezone
    p.fail("timezone", p.say(N_("Choose a time zone from the list.")))
    return None


def parse_request(
    form: RequestForm, policy: PolicyView, say: Words
) -> tuple[HubSpecDraft | None, dict[str, str]]:
    """The draft to submit, or the problems by input id (nothing is sent then)."""
    p = _Parsed(say)
    if _text_problem(form.title, low=3, high=200, pattern=SINGLE_LINE):
        p.fail("title", say(N_("Enter a title of 3 to 200 characters on one line.")))
    if _text_problem(form.slug, low=3, high=40, pattern=SLUG):
        p.fail(
            "slug",
            say(
                N_(
                    "Enter a short name of 3 to 40 characters: lower-case letters, digits "
                    "and '-', starting with a letter."
                )
            ),
        )
    if _text_problem(form.description, low=0, high=5000, pattern=MULTI_LINE):
        p.fail(
            "description",
            say(N_("The description may have up to 5000 characters, without control characters.")),
        )
    zone = _zone(form, p)
    starts_at = ends_at = None
    if zone is not None:
        starts_at, problem = local_instant(form.start_date, form.start_time, zone, say)
        if problem:
            p.fail("start_date", problem)
        ends_at, problem = local_instant(form.end_date, form.end_time, zone, say)
        if problem:
            p.fail("end_date", problem)
    participants = _participants(form.expected_participants, policy, p)
    presets = {preset.name: preset for preset in policy.presets}
    image: str | None = None
    preset: str | msgspec.UnsetType = msgspec.UNSET
    if form.environment in presets:
        preset = form.environment
    elif form.environment == CUSTOM and policy.images.allow_custom:
        image = form.image.strip()
        if len(image) > 512 or image_reference_problem(image) is not None:
            p.fail(
                "image",
                say(
                    N_(
                        "Enter an image reference such as "
                        "quay.io/jupyter/scipy-notebook:2024-12-02."
                    )
                ),
            )
    else:
        p.fail("environment", say(N_("Choose an environment.")))
    resources = _resources(form, policy.limits.gpus.max > 0, p)
    if form.interface not in ("lab", "notebook"):
        p.fail("interface", say(N_("Choose JupyterLab or the classic notebook.")))
    if p.errors:
        return None, p.errors
    draft = {
        "title": form.title,
        "slug": form.slug,
        "description": form.description,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "image": image,
        "default_interface": form.interface,
        "resources": resources,
        "expected_participants": participants,
    }
    if preset is not msgspec.UNSET:
        draft["preset"] = preset
    try:
        return msgspec.convert(draft, HubSpecDraft), {}
    except msgspec.ValidationError as exc:  # pragma: no cover - the checks above cover the schema
        return None, {"": str(exc)}


def spec_update(draft: HubSpecDraft, spec: HubSpec) -> HubSpecUpdate:
    """What the edited form changes of `spec` (only that is sent): a moment to the minute
    the form shows; a new preset with the resources typed beside it."""
    changes: dict[str, Any] = {}
    for name in ("title", "slug", "description", "default_interface", "expected_participants"):
        if getattr(draft, name) != getattr(spec, name):
            changes[name] = getattr(draft, name)
    for name in ("starts_at", "ends_at"):
        if getattr(draft, name) != getattr(spec, name).replace(second=0, microsecond=0):
            changes[name] = getattr(draft, name)
    new_preset = isinstance(draft.preset, str) and draft.preset != spec.preset
    if new_preset:
        changes["preset"] = draft.preset
    if draft.image is not None and draft.image != spec.image:
        changes["image"] = draft.image
    if draft.resources is not None:
        typed = msgspec.structs.asdict(draft.resources)
        now = msgspec.structs.asdict(spec.resources)
        resources = {k: v for k, v in typed.items() if new_preset or v != now[k]}
        if resources:
            changes["resources"] = ResourcesUpdate(**resources)
    return HubSpecUpdate(**changes)


def environment_id(environment: str, policy: PolicyView) -> str:
    """The input a problem of the environment concerns: the image typed, or the choice."""
    return "image" if environment == CUSTOM and policy.images.allow_custom else "environment"


def _preset_card(preset: Preset) -> dict[str, str]:
    memory, memory_unit = size_input(preset.resources.memory)
    storage, storage_unit = size_input(preset.resources.storage)
    return {
        "name": preset.name,
        "title": preset.title,
        "description": preset.description,
        "image": preset.image,
        "cpu": cores(preset.resources.cpu),
        "memory": memory,
        "memory_unit": memory_unit,
        "storage": storage,
        "storage_unit": storage_unit,
        "gpus": str(preset.resources.gpus),
    }


def limits_of(policy: PolicyView) -> dict[str, Any]:
    """The policy's bounds as the inputs' attributes (cores, bytes, days, hours)."""
    limits, course = policy.limits, policy.course
    return {
        "participants_max": min(course.max_participants, MAX_PARTICIPANTS),
        "cpu_min": cores(limits.cpu.min) if limits.cpu.min is not None else "",
        "cpu_max": cores(limits.cpu.max),
        "memory_min": byte_size(limits.memory.min) if limits.memory.min is not None else "",
        "memory_max": byte_size(limits.memory.max),
        "storage_min": byte_size(limits.storage.min) if limits.storage.min is not None else "",
        "storage_max": byte_size(limits.storage.max),
        "gpus_max": min(limits.gpus.max, MAX_GPUS),
        "duration_days": course.max_duration_days,
        "lead_hours": course.min_lead_time_hours,
        "advance_days": course.max_advance_days,
    }


def request_form_page(
    *,
    policy: PolicyView,
    form: RequestForm,
    csrf: str,
    rules: dict[str, str],
    viewer: Caller,
    status: int = 200,
    errors: dict[str, str] | None = None,
    summary: list[tuple[str, str]] | None = None,
    detect_zone: bool = False,
    editing: HubRequest | None = None,
    revision: str = "",
) -> Page:
    """The request form; `editing`: the request it edits (its revision in a hidden
    field: `revision` as the form came, else the request's)."""
    errors = errors or {}
    if summary is None:
        summary = [(input_id, message) for input_id, message in errors.items()]
    instants = {"start": "", "end": ""}
    if editing is not None and detect_zone:
        instants = {
            "start": editing.spec.starts_at.astimezone(UTC).isoformat(),
            "end": editing.spec.ends_at.astimezone(UTC).isoformat(),
        }
    return Page(
        "requests/new.html",
        title=TITLE_NEW if editing is None else TITLE_EDIT,
        viewer=viewer,
        status=status,
        form=form,
        csrf=csrf,
        action=NEW_PATH if editing is None else edit_path(editing.request_id),
        editing=editing,
        revision=revision or ("" if editing is None else str(editing.revision)),
        instants=instants,
        errors=errors,
        summary=summary,
        rules=rules,
        limits=limits_of(policy),
        presets=[_preset_card(preset) for preset in policy.presets],
        allow_custom=policy.images.allow_custom,
        custom=CUSTOM,
        zones=time_zones(),
        detect_zone=detect_zone,
        units=dict(UNITS),
    )


# --- the change form ----------------------------------------------------------------


@dataclass(frozen=True)
class ChangeForm:
    """The change form's values as typed; a new one shows the course's current ones."""

    timezone: str = "UTC"
    end_date: str = ""
    end_time: str = ""
    expected_participants: str = ""
    cpu: str = ""
    memory: str = ""
    memory_unit: str = "GiB"
    storage: str = ""
    storage_unit: str = "GiB"
    gpus: str = "0"
    image: str = ""
    comment: str = ""
    expected_revision: str = ""

    @classmethod
    def posted(cls, fields_: dict[str, list[str]]) -> ChangeForm:
        names = {f.name for f in fields(cls)}
        return cls(**{n: v[0] for n, v in fields_.items() if n in names and v})

    @classmethod
    def current(cls, course: HubRequest) -> ChangeForm:
        spec = course.spec
        end_date, end_time = wall_clock(spec.ends_at, "UTC")
        memory, memory_unit = size_input(spec.resources.memory)
        storage, storage_unit = size_input(spec.resources.storage)
        return cls(
            end_date=end_date,
            end_time=end_time,
            expected_participants=str(spec.expected_participants),
            cpu=cores(spec.resources.cpu),
            memory=memory,
            memory_unit=memory_unit,
            storage=storage,
            storage_unit=storage_unit,
            gpus=str(spec.resources.gpus),
            image=spec.image,
            expected_revision=str(course.revision),
        )


def parse_change(
    form: ChangeForm, spec: HubSpec, policy: PolicyView, say: Words
) -> tuple[HubSpecUpdate | None, str, int | None, dict[str, str]]:
    """What differs from the course as it runs (only that is sent), the comment, the
    revision the form was made from, or the problems by input id."""
    p = _Parsed(say)
    changes: dict[str, Any] = {}
    zone = _zone(form, p)
    if zone is not None:
        ends_at, problem = local_instant(form.end_date, form.end_time, zone, say)
        if problem:
            p.fail("end_date", problem)
        elif ends_at is not None and ends_at != spec.ends_at.replace(second=0, microsecond=0):
            changes["ends_at"] = ends_at
    participants = _participants(form.expected_participants, policy, p)
    if participants is not None and participants != spec.expected_participants:
        changes["expected_participants"] = participants
    gpus_allowed = policy.limits.gpus.max > 0 or spec.resources.gpus > 0
    typed = _resources(form, gpus_allowed, p)
    resources: dict[str, Any] = {}
    for name, parse in (("cpu", cpu_millicores), ("memory", byte_size), ("storage", byte_size)):
        if typed[name] is not None and parse(typed[name]) != parse(getattr(spec.resources, name)):
            resources[name] = typed[name]
    if gpus_allowed and typed["gpus"] != spec.resources.gpus and "gpus" not in p.errors:
        resources["gpus"] = typed["gpus"]
    if resources:
        changes["resources"] = ResourcesUpdate(**resources)
    image = form.image.strip()
    if image != spec.image:
        if len(image) > 512 or image_reference_problem(image) is not None:
            p.fail(
                "image",
                say(
                    N_(
                        "Enter an image reference such as "
                        "quay.io/jupyter/scipy-notebook:2024-12-02."
                    )
                ),
            )
        else:
            changes["image"] = image
    if _text_problem(form.comment, low=0, high=2000, pattern=MULTI_LINE):
        p.fail(
            "comment",
            say(N_("The comment may have up to 2000 characters, without control characters.")),
        )
    revision = int(form.expected_revision) if _WHOLE.fullmatch(form.expected_revision) else None
    if revision is None or revision < 1:
        p.fail("", say(N_("This form is incomplete; open the page again and send it from there.")))
    if p.errors:
        return None, "", None, p.errors
    return HubSpecUpdate(**changes), form.comment, revision, {}


def change_answer(course: HubRequest) -> str:
    """What became of the latest change: "" none; "pending", "applied" (by the system at
    once), "approved" (by a reviewer) or "rejected"."""
    change = course.change
    if change is None:
        return ""
    if change.status is ChangeStatus.PENDING:
        return "pending"
    if change.status is ChangeStatus.APPROVED:
        return "applied" if change.decided_by == "system" else "approved"
    return "rejected"


def change_form_page(
    *,
    course: HubRequest,
    policy: PolicyView,
    form: ChangeForm,
    csrf: str,
    rules: dict[str, str],
    viewer: Caller,
    status: int = 200,
    errors: dict[str, str] | None = None,
    summary: list[tuple[str, str]] | None = None,
    fresh: bool = False,
    sent: bool = False,
) -> Page:
    errors = errors or {}
    if summary is None:
        summary = [(input_id, message) for input_id, message in errors.items()]
    spec = course.spec
    return Page(
        "requests/change.html",
        title=TITLE_CHANGE,
        viewer=viewer,
        status=status,
        course=course,
        current={
            "ends_at": spec.ends_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "ends_at_utc": spec.ends_at.astimezone(UTC).isoformat(),
            "participants": spec.expected_participants,
            "cpu": cores(spec.resources.cpu),
            "memory": size_words(spec.resources.memory),
            "storage": size_words(spec.resources.storage),
            "gpus": spec.resources.gpus,
            "image": spec.image,
        },
        answer=change_answer(course),
        sent=sent,
        form=form,
        csrf=csrf,
        action=change_path(course.request_id),
        errors=errors,
        summary=summary,
        rules=rules,
        limits=limits_of(policy),
        show_gpus=policy.limits.gpus.max > 0 or spec.resources.gpus > 0,
        preset_images=sorted({preset.image for preset in policy.presets}),
        zones=time_zones(),
        detect_zone=fresh,
        units=dict(UNITS),
    )
