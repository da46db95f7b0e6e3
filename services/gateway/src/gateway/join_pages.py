"""The join pages: rendering only (templates join_*.html in web/templates), so the
routes in controllers/joining.py stay about joining."""

from __future__ import annotations

from urllib.parse import quote

from gateway.accounts import Caller
from gateway.web.i18n import N_
from gateway.web.render import Page
from jhaas_schemas.rpc import CoursePreview

TITLE = N_("Join a course")
MAX_MESSAGE = 2000


def join_action(code: str) -> str:
    return "/join/" + quote(code, safe="")


def join_code_page(
    *, status: int = 200, code: str = "", error: str = "", viewer: Caller | None = None
) -> Page:
    """Where to type the code the course leader gave out."""
    return Page(
        "join_code.html",
        title=TITLE,
        viewer=viewer,
        status=status,
        code=code,
        error=error,
        unknown="",
    )


def unknown_code_page(code: str, *, viewer: Caller | None = None) -> Page:
    return Page(
        "join_code.html",
        title=N_("Unknown join code"),
        viewer=viewer,
        status=404,
        code=code,
        error="",
        unknown=code,
    )


def apply_form_page(
    course: CoursePreview,
    code: str,
    csrf: str,
    *,
    viewer: Caller | None = None,
    status: int = 200,
    message: str = "",
    error: str = "",
) -> Page:
    """The course a code opens, and the form to apply with an optional message."""
    return Page(
        "join_apply.html",
        title=TITLE,
        viewer=viewer,
        status=status,
        course=course,
        dates={
            "start": course.starts_at.date().isoformat(),
            "end": course.ends_at.date().isoformat(),
        },
        action=join_action(code),
        csrf=csrf,
        message=message,
        error=error,
        max_message=MAX_MESSAGE,
    )


def applied_page(course: CoursePreview, *, viewer: Caller | None = None) -> Page:
    return Page(
        "join_applied.html",
        title=N_("Your application was sent"),
        viewer=viewer,
        course_title=course.title,
    )
