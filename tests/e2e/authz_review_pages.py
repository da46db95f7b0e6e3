"""The authorization matrix's calls for the reviewer's pages (issue 11, lane
ui-review): /reviews, /reviews/{request_id} and its decision forms,
/governance/calendar, /governance/audit. A browser's calls: the session cookie,
the session's CSRF token in the form; governance-svc decides who may see and
decide, as for the API twins (authz_calls.decision, change_decision)."""

from __future__ import annotations

import httpx
from authz_calls import a_request, change_decision, decision
from authz_matrix import Call, Cell
from authz_world import World


async def review_page(w: World, cell: Cell) -> Call:
    """One request's page: own (lea's, the admin's) or leo's."""
    call = await a_request(w, cell)
    return Call(params=call.params, cookies=True)


async def signed_in_page(_: World, __: Cell) -> Call:
    """The queue, the calendar, the audit trail: the caller's session alone."""
    return Call(cookies=True)


async def decision_form(w: World, cell: Cell) -> Call:
    """Asking for changes with the page's form: of a fresh request when allowed, else
    of the standing one, whose review must stay as it was."""
    call = await decision({})(w, cell)
    request_id = call.params["request_id"]

    def check(r: httpx.Response) -> None:
        if r.headers["location"].startswith("/signin?"):
            return  # a stranger: to sign in first
        assert r.headers["location"] == f"/reviews/{request_id}?done=changes", r.headers

    return Call(
        params=call.params,
        form={"decision": "changes", "comment": "matrix"},
        csrf_in_form=True,
        cookies=True,
        unchanged=call.unchanged,
        check=check,
    )


async def change_decision_form(w: World, cell: Cell) -> Call:
    """Rejecting a waiting change with the page's form (fresh when allowed)."""
    call = await change_decision({})(w, cell)
    return Call(
        params=call.params,
        form={"decision": "reject", "comment": "matrix"},
        csrf_in_form=True,
        cookies=True,
        unchanged=call.unchanged,
    )
