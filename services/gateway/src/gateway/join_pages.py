"""The join pages' HTML: plain forms, escaped, no script (the look of oauth/pages.py).

Only rendering lives here, so the web UI's templates can replace it without
touching the routes in controllers/joining.py.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from litestar import Response

from gateway.oauth.pages import page
from jhaas_schemas.rpc import CoursePreview

TITLE = "Join a course"
MAX_MESSAGE = 2000


def join_action(code: str) -> str:
    return "/join/" + quote(code, safe="")


def _notice(error: str) -> str:
    return f'<p role="alert">{escape(error)}</p>' if error else ""


def _code_form(code: str = "") -> str:
    return f"""<form method="get" action="/join">
<p><label>Join code <input name="code" required maxlength="32" autocomplete="off"
 autocapitalize="characters" spellcheck="false" value="{escape(code)}"></label></p>
<p><button type="submit">Continue</button></p>
</form>"""


def join_code_page(*, status: int = 200, code: str = "", error: str = "") -> Response[str]:
    """Where to type the code the course leader gave out."""
    body = (
        f"{_notice(error)}<p>Enter the join code your course leader gave you.</p>{_code_form(code)}"
    )
    return page(status, TITLE, body)


def unknown_code_page(code: str) -> Response[str]:
    body = (
        f'<p role="alert">No course is open for joining with the code '
        f"<strong>{escape(code)}</strong>. It may be mistyped, replaced by a new one, "
        "or joining may be closed; ask the course leader.</p>"
        f"<p>Try another code:</p>{_code_form()}"
    )
    return page(404, "Unknown join code", body)


def _dates(course: CoursePreview) -> str:
    start, end = course.starts_at.date().isoformat(), course.ends_at.date().isoformat()
    return f'<time datetime="{start}">{start}</time> to <time datetime="{end}">{end}</time>'


def apply_form_page(
    course: CoursePreview,
    code: str,
    csrf: str,
    *,
    status: int = 200,
    message: str = "",
    error: str = "",
) -> Response[str]:
    """The course a code opens, and the form to apply with an optional message."""
    body = f"""{_notice(error)}
<p>Course: <strong>{escape(course.title)}</strong></p>
<p>Runs from {_dates(course)}.</p>
<form method="post" action="{escape(join_action(code))}">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<p><label for="message">Message to the course leader (optional)</label><br>
<textarea id="message" name="message" rows="5" cols="60" maxlength="{MAX_MESSAGE}">
{escape(message)}</textarea></p>
<p><button type="submit">Apply to join</button></p>
</form>"""
    return page(status, TITLE, body)


def applied_page(course: CoursePreview) -> Response[str]:
    body = (
        f"<p>Your application to <strong>{escape(course.title)}</strong> was sent; "
        "the course leader decides. Once you are accepted you can use the course's "
        "JupyterHub.</p>"
    )
    return page(200, "Your application was sent", body)
