"""The authorization matrix's vocabulary: a route's entry, its cells, and the call
a cell makes. The entries themselves are in authz_entries.py.

An entry says, for each caller role and for the caller's own resource and
someone else's, the exact status the gateway must answer:

    route("PATCH", "/api/v1/requests/{request_id}", edit_request,
          who="the request's leader",
          #      anonymous none participant leader governance admin
          own=   (NA,       NA,  NA,         200,   NA,        200),
          other= (401,      404, 404,        404,   403,       403),
          no_own="only leaders and admins submit requests")

`any=` is the row of a route that names no resource. NA marks a role that has
no own resource of that kind (say why in `no_own`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from authz_world import ROLES, Actor, Role, World

NA = None  # the role has no own resource of this kind
Row = tuple[int | None, int | None, int | None, int | None, int | None, int | None]


class Scope(StrEnum):
    ANY = "-"  # the route names no resource
    OWN = "own"
    OTHER = "other"


@dataclass(frozen=True)
class Cell:
    role: Role
    scope: Scope
    expected: int

    @property
    def allowed(self) -> bool:
        """A call that passes authorization (it may change the world)."""
        return 200 <= self.expected < 300 or self.expected in (302, 303)

    def __str__(self) -> str:
        return f"{self.role.value}/{self.scope.value}"


Probe = Callable[[], Awaitable[Any]]
Check = Callable[[httpx.Response], Awaitable[None] | None]


@dataclass(frozen=True)
class Call:
    """What one cell sends, and what else it asserts."""

    params: Mapping[str, str] = field(default_factory=dict)  # the path's parameters
    query: Mapping[str, str] | None = None
    json: Any = None
    form: Mapping[str, str] | None = None
    # The caller, when not the world's standing person of the role (a fresh one).
    actor: Actor | None = None
    # Send the session cookie (+ X-CSRF-Token) instead of the bearer token.
    cookies: bool = False
    # Put the caller's CSRF token into the form (a page's form post), whoever calls.
    csrf_in_form: bool = False
    # Headers sent instead of the caller's credentials (a page's own form cookie).
    headers: Mapping[str, str] | None = None
    # Read before and after a refused call: the two must be equal.
    unchanged: Probe | None = None
    # More to assert about an allowed call's answer (once its status is the expected one).
    check: Check | None = None


Build = Callable[[World, Cell], Awaitable[Call]]


async def no_params(_: World, __: Cell) -> Call:
    return Call()


@dataclass(frozen=True)
class Entry:
    method: str
    path: str
    build: Build
    who: str
    rows: Mapping[Scope, Row]
    no_own: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def cells(self) -> list[Cell]:
        return [
            Cell(role, scope, expected)
            for scope, row in self.rows.items()
            for role, expected in zip(ROLES, row, strict=True)
            if expected is not None
        ]


def route(
    method: str,
    path: str,
    build: Build,
    *,
    who: str,
    any: Row | None = None,
    own: Row | None = None,
    other: Row | None = None,
    no_own: str = "",
) -> Entry:
    rows = {s: r for s, r in ((Scope.ANY, any), (Scope.OWN, own), (Scope.OTHER, other)) if r}
    assert rows, f"{method} {path}: give `any=` or `own=`/`other=`"
    assert (Scope.ANY in rows) != (Scope.OWN in rows or Scope.OTHER in rows), path
    has_na = [row for row in rows.values() if None in row]
    assert no_own or not has_na, f"{method} {path}: NA cells need `no_own=` saying why"
    return Entry(method, path, build, who, rows, no_own)


def public(method: str, path: str, status: int = 200, build: Build = no_params) -> Entry:
    """A route anyone may call, with no data of anybody's: the same answer for every role."""
    return route(method, path, build, who="anyone", any=(status,) * 6)


def template(path: str) -> str:
    """`/api/v1/requests/{request_id:str}` -> `/api/v1/requests/{request_id}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def missing_entry_message(method: str, path: str) -> str:
    return (
        f"the gateway has {method} {path} but the authorization matrix has no entry for it. "
        "Add one to ENTRIES in tests/e2e/authz_entries.py, e.g.\n"
        f'    route("{method}", "{path}", <build, in authz_calls.py: (world, cell) -> Call>,\n'
        '          who="<who may call it>",\n'
        "          #      anonymous none participant leader governance admin\n"
        "          own=   (...),   # the caller's own resource\n"
        "          other= (...)),  # someone else's (or any=(...) for a route naming none)\n"
        f'or, for a page with nobody\'s data: public("{method}", "{path}")'
    )
