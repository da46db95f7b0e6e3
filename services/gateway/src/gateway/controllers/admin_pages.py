"""The admins' pages (issue 11): /admin and its users, failed deployments, policy
and audit log (templates web/templates/admin/*.html, styles /static/admin.css).

Each page calls what the API route of the same thing calls: the gateway's
`Accounts`, `SecondFactors` and `Audit` for users and the audit log (the API
routes UserController, MfaResetController, AuditController), the deployer's and
governance's RPC ops for deployments and the policy (DeploymentController,
PolicyController), so a service refuses a page exactly as it refuses the API.
The API's guards are the pages' checks too: an admin role (403 page), and for
changes a second factor confirmed within JHAAS_STEP_UP_SECONDS
(`Caller.mfa_checked_within`, as `requires_recent_mfa`): without it the browser
goes to /account/confirm and comes back here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath

from gateway.accounts import Caller, generate_password
from gateway.audit import AuditQuery
from gateway.context import gateway_of
from gateway.controllers.account_pages import CONFIRM_PATH, local_refusal
from gateway.controllers.audit import KIND, USER_ID
from gateway.controllers.auth import client_info
from gateway.errors import STATUS_OF_CODE, ApiError, body_error_fields
from gateway.numbers import whole_number
from gateway.oauth.pages import problem_page
from gateway.schemas import UserCreate
from gateway.store import UserRecord
from gateway.web.actions import (
    Visitor,
    call_service,
    first,
    foreign_form_page,
    form_fields,
    see_other,
    signed_in,
)
from gateway.web.i18n import N_
from gateway.web.render import Page
from jhaas_schemas.errors import DomainError
from jhaas_schemas.model import Role
from jhaas_schemas.policy import Preset
from jhaas_schemas.rpc import (
    DeployerOps,
    Deployment,
    DeploymentList,
    DeploymentState,
    GetPolicy,
    GovernanceOps,
    ListDeployments,
    PolicyView,
    RedeployHub,
    RpcError,
)

Request_ = Request[Any, Any, Any]

ADMIN_PATH = "/admin"
USERS_PATH = "/admin/users"
DEPLOYMENTS_PATH = "/admin/deployments"
POLICY_PATH = "/admin/policy"
AUDIT_PATH = "/admin/audit"

ADMIN_TITLE = N_("Administration")
USERS_TITLE = N_("Users and roles")
DEPLOYMENTS_TITLE = N_("Failed deployments")
POLICY_TITLE = N_("Policy in force")
AUDIT_TITLE = N_("Audit log")

ROLES = tuple(Role)
ROLE_NAMES = {
    Role.LEADER: N_("Course leader"),
    Role.GOVERNANCE: N_("Governance"),
    Role.PARTICIPANT: N_("Participant"),
    Role.ADMIN: N_("Admin"),
}
ONLY_ADMINS = N_("Only an admin can see this page.")
NO_SUCH_USER = N_("There is no such user.")
NO_SUCH_DEPLOYMENT = N_("There is no such deployment.")
AUDIT_PAGE_SIZE = 50
# A done change's word for the page (?done=...): never the text of the query itself.
DONE = {
    "roles": N_("The roles were saved."),
    "disabled": N_("The account was disabled; its sessions ended."),
    "enabled": N_("The account was enabled."),
    "mfa-reset": N_("The second factors were removed; the user's sessions ended."),
}


# --- who may look ---------------------------------------------------------------


async def _admin(request: Request_, here: str) -> Visitor | Response[Any]:
    """An admin visitor, or where the browser goes (sign in, a step) or the 403 page."""
    visitor = await signed_in(request, here)
    if isinstance(visitor, Response):
        return visitor
    if not visitor.caller.is_admin:
        return problem_page(403, ADMIN_TITLE, ONLY_ADMINS, viewer=visitor.caller)
    return visitor


def recently_confirmed(request: Request_, caller: Caller) -> bool:
    """The API's step-up rule (guards.requires_recent_mfa) for a page's caller."""
    gateway = gateway_of(request)
    return caller.mfa_checked_within(gateway.settings.step_up_seconds, gateway.accounts.clock())


def to_confirm(back: str) -> Response[str]:
    """To the second-factor check, then back to `back` (a page, by GET)."""
    return see_other(f"{CONFIRM_PATH}?{urlencode({'next': back})}")


async def _posted(
    request: Request_, here: str, title: str
) -> tuple[Visitor, dict[str, list[str]]] | Response[Any]:
    """An admin's form that this site made for this session, or the page saying why not."""
    fields = await form_fields(request, title)
    if isinstance(fields, Response):
        return fields
    visitor = await _admin(request, here)
    if isinstance(visitor, Response):
        return visitor
    if not visitor.made(fields):
        return foreign_form_page(title, visitor.caller)
    return visitor, fields


# --- /admin -----------------------------------------------------------------------


@get(
    ADMIN_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_index(request: Request_) -> Response[Any]:
    """Admins: links to the admin pages."""
    visitor = await _admin(request, ADMIN_PATH)
    if isinstance(visitor, Response):
        return visitor
    return Page("admin/index.html", title=ADMIN_TITLE, viewer=visitor.caller)


# --- /admin/users -----------------------------------------------------------------


def _user_row(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.user_id,
        "username": user.username,
        "name": user.display_name,
        "roles": {role.value for role in user.roles},
        "mfa": user.mfa_enrolled,
        "disabled": user.disabled,
    }


async def _users_page(
    request: Request_,
    visitor: Visitor,
    *,
    status: int = 200,
    notice: str = "",
    row_errors: Mapping[str, str] | None = None,
    new: Mapping[str, Any] | None = None,
    new_errors: Mapping[str, str] | None = None,
    created: Mapping[str, str] | None = None,
) -> Page:
    users = await gateway_of(request).accounts.list_users()
    typed = dict(new or {})
    problems = [(f"new-{name}", message) for name, message in (new_errors or {}).items()]
    problems += [(f"user-{user_id}", message) for user_id, message in (row_errors or {}).items()]
    return Page(
        "admin/users.html",
        title=USERS_TITLE,
        viewer=visitor.caller,
        status=status,
        csrf=visitor.csrf,
        users=[_user_row(user) for user in users],
        role_choices=[(role.value, ROLE_NAMES[role]) for role in ROLES],
        notice=notice,
        row_errors=dict(row_errors or {}),
        problems=problems,
        new={
            "username": str(typed.get("username", "")),
            "display_name": str(typed.get("display_name", "")),
            "roles": set(typed.get("roles", ())),
        },
        new_errors=dict(new_errors or {}),
        created=dict(created or {}),
        confirmed=recently_confirmed(request, visitor.caller),
        confirm_url=f"{CONFIRM_PATH}?{urlencode({'next': USERS_PATH})}",
    )


@get(
    USERS_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_users(request: Request_) -> Response[Any]:
    """Admins: every account with its roles, second factor and state; the forms to
    change them and to create one (`?username=&display_name=&roles=` fill it in,
    as after the second-factor check)."""
    visitor = await _admin(request, USERS_PATH)
    if isinstance(visitor, Response):
        return visitor
    query = request.query_params
    done = DONE.get(query.get("done") or "", "")
    typed = {
        "username": (query.get("username") or "")[:64],
        "display_name": (query.get("display_name") or "")[:200],
        "roles": [r for r in query.getall("roles", []) if r in {x.value for x in ROLES}],
    }
    return await _users_page(request, visitor, notice=done, new=typed)


def _roles_of(fields: Mapping[str, list[str]]) -> tuple[list[Role], str]:
    """The checked roles, or what is wrong with them."""
    known = {role.value: role for role in ROLES}
    chosen = fields.get("roles", [])
    unknown = [value for value in chosen if value not in known]
    if unknown:
        return [], N_("Choose roles from the list.")
    return sorted({known[value] for value in chosen}), ""


@post(
    USERS_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_create_user(request: Request_) -> Response[Any]:
    """Admins, with a recent second-factor check: a new local account with a generated
    password, shown on this page once; its user must replace it at the first sign-in."""
    posted = await _posted(request, USERS_PATH, USERS_TITLE)
    if isinstance(posted, Response):
        return posted
    visitor, fields = posted
    username, display_name = first(fields, "username").strip(), first(fields, "display_name")
    roles, roles_problem = _roles_of(fields)
    typed = {"username": username, "display_name": display_name, "roles": fields.get("roles", [])}
    if roles_problem:
        return await _users_page(
            request, visitor, status=422, new=typed, new_errors={"roles": roles_problem}
        )
    if not recently_confirmed(request, visitor.caller):
        back = {"username": username[:64], "display_name": display_name[:200]}
        query = urlencode([*back.items(), *(("roles", role.value) for role in roles)])
        return to_confirm(f"{USERS_PATH}?{query}")
    password = generate_password()
    try:
        data = msgspec.convert(
            {
                "username": username,
                "password": password,
                "roles": [role.value for role in roles],
                "display_name": display_name,
                "password_change_required": True,
            },
            UserCreate,
        )
    except msgspec.ValidationError as exc:
        problems = {
            name if name in ("username", "display_name") else "username": message
            for name, message in body_error_fields(exc).items()
        }
        return await _users_page(request, visitor, status=422, new=typed, new_errors=problems)
    gateway = gateway_of(request)
    try:
        user = await gateway.accounts.create_user(
            username=data.username,
            password=data.password,
            roles=tuple(data.roles),
            display_name=data.display_name,
            password_change_required=True,
            actor_id=visitor.caller.user_id,
            client=client_info(request, gateway.settings),
        )
    except (DomainError, ApiError) as exc:
        status, message, problem_fields = local_refusal(exc)
        errors = {
            name if name in ("username", "display_name") else "username": f"{name} {text}"
            for name, text in problem_fields.items()
        } or {"username": message}
        return await _users_page(request, visitor, status=status, new=typed, new_errors=errors)
    return await _users_page(
        request,
        visitor,
        status=201,
        created={"username": user.username, "password": password},
    )


def _valid_user_id(user_id: str) -> bool:
    return len(user_id) == 36 and all(c in "0123456789abcdef-" for c in user_id)


async def _change_user(request: Request_, user_id: str, change: str) -> Response[Any]:
    """One of the row forms: roles, disable, enable, mfa-reset."""
    posted = await _posted(request, USERS_PATH, USERS_TITLE)
    if isinstance(posted, Response):
        return posted
    visitor, fields = posted
    caller = visitor.caller
    if not _valid_user_id(user_id):
        return problem_page(404, USERS_TITLE, NO_SUCH_USER, viewer=caller)
    if not recently_confirmed(request, caller):
        return to_confirm(USERS_PATH)
    gateway = gateway_of(request)
    client = client_info(request, gateway.settings)
    try:
        if change == "roles":
            roles, problem = _roles_of(fields)
            if problem:
                return await _users_page(
                    request, visitor, status=422, row_errors={user_id: problem}
                )
            await gateway.accounts.update_user(
                user_id, roles=tuple(roles), disabled=None, actor_id=caller.user_id, client=client
            )
        elif change in ("disabled", "enabled"):
            await gateway.accounts.update_user(
                user_id,
                roles=None,
                disabled=change == "disabled",
                actor_id=caller.user_id,
                client=client,
            )
        else:
            await gateway.mfa.reset(caller, user_id, client)
    except (DomainError, ApiError) as exc:
        status, message, _ = local_refusal(exc)
        if status == 404:
            return problem_page(404, USERS_TITLE, NO_SUCH_USER, viewer=caller)
        return await _users_page(request, visitor, status=status, row_errors={user_id: message})
    return see_other(f"{USERS_PATH}?{urlencode({'done': change})}#user-{user_id}")


@post(
    f"{USERS_PATH}/{{user_id:str}}/roles",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_user_roles(request: Request_, user_id: FromPath[str]) -> Response[Any]:
    """Admins, recently confirmed: the user's roles become the checked ones (the last
    active admin keeps the role: refused in words)."""
    return await _change_user(request, user_id, "roles")


@post(
    f"{USERS_PATH}/{{user_id:str}}/disable",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_user_disable(request: Request_, user_id: FromPath[str]) -> Response[Any]:
    """Admins, recently confirmed: disable the account; its sessions end."""
    return await _change_user(request, user_id, "disabled")


@post(
    f"{USERS_PATH}/{{user_id:str}}/enable",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_user_enable(request: Request_, user_id: FromPath[str]) -> Response[Any]:
    """Admins, recently confirmed: enable a disabled account."""
    return await _change_user(request, user_id, "enabled")


@post(
    f"{USERS_PATH}/{{user_id:str}}/mfa-reset",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_user_mfa_reset(request: Request_, user_id: FromPath[str]) -> Response[Any]:
    """Admins, recently confirmed: remove every second factor of a user who lost them."""
    return await _change_user(request, user_id, "mfa-reset")


# --- /admin/deployments -------------------------------------------------------------


def _deployment_row(deployment: Deployment) -> dict[str, Any]:
    return {
        "request_id": deployment.request_id,
        "title": deployment.configuration.title,
        "state": deployment.state.value,
        "deploy_at": _when(deployment.deploy_at),
        "starts_at": _when(deployment.starts_at),
        "attempts": deployment.attempts,
        "error": deployment.failure_reason,
        "hub_url": deployment.hub_url or "",
    }


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


STATE_NAMES = {
    DeploymentState.SCHEDULED: N_("scheduled"),
    DeploymentState.DEPLOYING: N_("deploying"),
    DeploymentState.RUNNING: N_("running"),
    DeploymentState.FAILED: N_("failed"),
    DeploymentState.ENDING: N_("ending"),
    DeploymentState.DELETED: N_("deleted"),
    DeploymentState.CANCELLED: N_("cancelled"),
}
LIVE = frozenset({DeploymentState.SCHEDULED, DeploymentState.DEPLOYING, DeploymentState.RUNNING})


async def _deployments_page(
    request: Request_,
    visitor: Visitor,
    *,
    status: int = 200,
    notice: str = "",
    row_errors: Mapping[str, str] | None = None,
) -> Response[Any]:
    found = await call_service(
        request, visitor.caller, DeployerOps.LIST_DEPLOYMENTS, ListDeployments(), DeploymentList
    )
    if isinstance(found, RpcError):
        return _service_refusal(DEPLOYMENTS_TITLE, found, visitor.caller)
    items = sorted(found.items, key=lambda d: d.deploy_at, reverse=True)
    return Page(
        "admin/deployments.html",
        title=DEPLOYMENTS_TITLE,
        viewer=visitor.caller,
        status=status,
        csrf=visitor.csrf,
        failed=[_deployment_row(d) for d in items if d.state is DeploymentState.FAILED],
        live=[_deployment_row(d) for d in items if d.state in LIVE],
        state_names={state.value: name for state, name in STATE_NAMES.items()},
        notice=notice,
        row_errors=dict(row_errors or {}),
        problems=[(f"deployment-{key}", message) for key, message in (row_errors or {}).items()],
        confirmed=recently_confirmed(request, visitor.caller),
        confirm_url=f"{CONFIRM_PATH}?{urlencode({'next': DEPLOYMENTS_PATH})}",
    )


def _service_refusal(title: str, error: RpcError, caller: Caller) -> Response[Any]:
    return problem_page(STATUS_OF_CODE.get(error.code, 502), title, error.message, viewer=caller)


@get(
    DEPLOYMENTS_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_deployments(request: Request_) -> Response[Any]:
    """Admins: the failed deployments (course, when, why) with a Redeploy button, and
    the scheduled, deploying and running ones."""
    visitor = await _admin(request, DEPLOYMENTS_PATH)
    if isinstance(visitor, Response):
        return visitor
    redeployed = request.query_params.get("redeployed") or ""
    notice = ""
    if redeployed:
        notice = N_("The hub is being deployed again; its state is shown below.")
    return await _deployments_page(request, visitor, notice=notice)


@post(
    f"{DEPLOYMENTS_PATH}/{{request_id:str}}/redeploy",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_redeploy(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Admins, recently confirmed: build a failed hub again (the op of
    POST /api/v1/deployments/{id}/redeploy); the deployer's answer is shown."""
    posted = await _posted(request, DEPLOYMENTS_PATH, DEPLOYMENTS_TITLE)
    if isinstance(posted, Response):
        return posted
    visitor, _ = posted
    try:
        ask = msgspec.convert({"request_id": request_id}, RedeployHub)
    except msgspec.ValidationError:
        return problem_page(404, DEPLOYMENTS_TITLE, NO_SUCH_DEPLOYMENT, viewer=visitor.caller)
    if not recently_confirmed(request, visitor.caller):
        return to_confirm(DEPLOYMENTS_PATH)
    answer = await call_service(request, visitor.caller, DeployerOps.REDEPLOY, ask, Deployment)
    if isinstance(answer, RpcError):
        status = STATUS_OF_CODE.get(answer.code, 502)
        if status == 404:
            return problem_page(404, DEPLOYMENTS_TITLE, answer.message, viewer=visitor.caller)
        return await _deployments_page(
            request, visitor, status=status, row_errors={request_id: answer.message}
        )
    query = urlencode({"redeployed": answer.request_id})
    return see_other(f"{DEPLOYMENTS_PATH}?{query}#live")


# --- /admin/policy --------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """("limits.cpu.max", "8"), ...: every rule of a policy part with its value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        yield prefix, ", ".join(str(v) for v in value) if value else "—"
    elif isinstance(value, bool):
        yield prefix, "yes" if value else "no"
    else:
        yield prefix, str(value)


def _preset_row(preset: Preset) -> dict[str, Any]:
    resources = msgspec.to_builtins(preset.resources)
    return {
        "name": preset.name,
        "title": preset.title,
        "description": preset.description,
        "image": preset.image,
        "resources": list(flatten(resources)),
    }


@get(
    POLICY_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_policy(request: Request_) -> Response[Any]:
    """Admins: the policy in force, as GET /api/v1/policy shows it to them: version,
    every rule with its value, presets, capacity and the auto-approval envelope."""
    visitor = await _admin(request, POLICY_PATH)
    if isinstance(visitor, Response):
        return visitor
    policy = await call_service(
        request, visitor.caller, GovernanceOps.GET_POLICY, GetPolicy(), PolicyView
    )
    if isinstance(policy, RpcError):
        return _service_refusal(POLICY_TITLE, policy, visitor.caller)
    parts = [
        ("limits", N_("Per-user limits"), policy.limits),
        ("course", N_("Course rules"), policy.course),
        ("images", N_("Image rules"), policy.images),
        ("capacity", N_("Capacity"), policy.capacity),
        ("auto_approval", N_("Automatic approval"), policy.auto_approval),
    ]
    sections = [
        {"id": key, "caption": caption, "rules": list(flatten(msgspec.to_builtins(part), key))}
        for key, caption, part in parts
        if part is not None
    ]
    return Page(
        "admin/policy.html",
        title=POLICY_TITLE,
        viewer=visitor.caller,
        version=policy.version,
        sections=sections,
        presets=[_preset_row(preset) for preset in policy.presets],
    )


# --- /admin/audit -------------------------------------------------------------------

OUTCOMES = ("ok", "refused")
AUDIT_FILTERS = ("kind", "user_id", "actor_id", "subject_id", "outcome", "since", "until")


def _audit_query(params: Mapping[str, str]) -> tuple[AuditQuery, dict[str, str]]:
    """The API's filters from the GET form; the problems by field (the API's rules)."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    kind = params.get("kind", "").strip()
    if kind:
        if len(kind) > 64 or not re.fullmatch(KIND.strip("^$"), kind):
            problems["kind"] = N_(
                'A kind is like "sign_in.failed", or a prefix ending in "." like "mfa.".'
            )
        values["kind"] = kind
    for name in ("user_id", "actor_id", "subject_id"):
        found = params.get(name, "").strip()
        if found:
            if not re.fullmatch(USER_ID.strip("^$"), found):
                problems[name] = N_("A user id has 36 characters: digits, a-f and dashes.")
            values[name] = found
    outcome = params.get("outcome", "")
    if outcome:
        if outcome not in OUTCOMES:
            problems["outcome"] = N_("Choose an outcome from the list.")
        values["outcome"] = outcome
    for name in ("since", "until"):
        text = params.get(name, "").strip()
        if text:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                problems[name] = N_("Enter a date and time like 2026-03-01T09:00.")
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            values[name] = moment
    before = params.get("before", "").strip()
    if before:
        page = whole_number(before, 18)
        if page is None or page < 1:
            problems["before"] = N_("This page of the log does not exist.")
        else:
            values["before"] = page
    if problems:
        return AuditQuery(limit=AUDIT_PAGE_SIZE), problems
    return AuditQuery(limit=AUDIT_PAGE_SIZE, **values), {}


@get(
    AUDIT_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def admin_audit(request: Request_) -> Response[Any]:
    """Admins: the audit log, newest first, with the API's filters (a GET form) and
    "Older entries" paging (GET /api/v1/audit's `before`)."""
    visitor = await _admin(request, AUDIT_PATH)
    if isinstance(visitor, Response):
        return visitor
    params = {name: request.query_params.get(name) or "" for name in (*AUDIT_FILTERS, "before")}
    query, problems = _audit_query(params)
    gateway = gateway_of(request)
    entries = [] if problems else await gateway.audit.find(query)
    ids = {e.actor_id for e in entries} | {e.subject_id for e in entries}
    names = await gateway.accounts.names_of(sorted(i for i in ids if i))
    rows = [
        {
            "id": e.entry_id,
            "at": e.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "kind": e.kind,
            "outcome": e.outcome,
            "actor": names.get(e.actor_id, (e.actor_id or "", ""))[0] if e.actor_id else "",
            "subject": names.get(e.subject_id, (e.subject_id or "", ""))[0] if e.subject_id else "",
            "address": e.address or "",
            "details": json.dumps(e.details, ensure_ascii=False, sort_keys=True)
            if e.details
            else "",
        }
        for e in entries
    ]
    older = ""
    if len(entries) == AUDIT_PAGE_SIZE:
        kept = [(name, params[name]) for name in AUDIT_FILTERS if params[name]]
        older = f"{AUDIT_PATH}?{urlencode([*kept, ('before', str(entries[-1].entry_id))])}"
    return Page(
        "admin/audit.html",
        title=AUDIT_TITLE,
        viewer=visitor.caller,
        status=422 if problems else 200,
        filters=params,
        outcomes=OUTCOMES,
        problems=[(name, message) for name, message in problems.items()],
        errors=problems,
        rows=rows,
        older=older,
        paged=bool(params["before"]),
    )
