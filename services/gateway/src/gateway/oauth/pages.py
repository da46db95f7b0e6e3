"""The pages of sign-in for the hubs: the sign-in form and the refusals.

Rendering only: the templates are in web/templates (signin.html,
problem.html, not_in_course.html); the routes are in controllers/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode

from gateway.accounts import Caller
from gateway.web.i18n import N_
from gateway.web.render import Page


def problem_page(
    status: int,
    title: str,
    message: str,
    *,
    viewer: Caller | None = None,
    action: tuple[str, str] | None = None,
) -> Page:
    """`title` and `message` in English: shown translated when the catalog has them.
    `action`: (a path on this site, its label in English), what the person can do next."""
    link = None if action is None else {"href": action[0], "label": action[1]}
    return Page(
        "problem.html", title=title, viewer=viewer, status=status, message=message, action=link
    )


def not_in_course_page(course_title: str, join_url: str, *, viewer: Caller | None = None) -> Page:
    return Page(
        "not_in_course.html",
        title=N_("You are not in this course"),
        viewer=viewer,
        status=403,
        course_title=course_title,
        join_url=join_url,
    )


def sign_in_page(
    *,
    next_url: str,
    csrf: str,
    viewer: Caller | None = None,
    status: int = 200,
    error: str = "",
    errors: Mapping[str, str] | None = None,
    username: str = "",
    providers: Sequence[tuple[str, str]] = (),
) -> Page:
    """The password form, and a link per identity provider: (name, display name).

    `error` is about the whole form; `errors` about one field each (by its id).
    """
    fields = dict(errors or {})
    problems = [("", error)] if error else []
    problems += [(field, message) for field, message in fields.items()]
    query = urlencode({"next": next_url})
    links = [
        {"href": f"/signin/oidc/{quote(name)}?{query}", "name": display_name}
        for name, display_name in providers
    ]
    return Page(
        "signin.html",
        title=N_("Sign in"),
        viewer=viewer,
        status=status,
        csrf=csrf,
        next_url=next_url,
        username=username,
        problems=problems,
        errors=fields,
        providers=links,
    )
