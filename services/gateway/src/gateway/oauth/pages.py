"""The few HTML pages of sign-in for the hubs: plain, escaped, no script."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote, urlencode

from litestar import MediaType, Response

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} - JHaaS</title>
<link rel="stylesheet" href="/static/jhaas.css"></head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""
# The pages hold a form or a refusal: never cached. (Never framed, no script:
# the gateway's security headers, gateway/headers.py, say so for every page.)
_HEADERS = {"Cache-Control": "no-store"}


def page(status: int, title: str, body: str) -> Response[str]:
    """`body` is HTML already escaped by the caller."""
    html = _PAGE.format(title=escape(title), body=body)
    return Response(html, status_code=status, media_type=MediaType.HTML, headers=_HEADERS)


def problem_page(status: int, title: str, message: str) -> Response[str]:
    return page(status, title, f"<p>{escape(message)}</p>")


def not_in_course_page(course_title: str, join_url: str) -> Response[str]:
    course = escape(course_title) if course_title else "this course"
    body = (
        f"<p>You are signed in, but you are not in the course <strong>{course}</strong>, "
        "so you cannot use its JupyterHub.</p>"
        f'<p>If you have the course\'s join code, <a href="{escape(join_url)}">enter it here '
        "to apply</a>; then ask the course leader to accept you.</p>"
    )
    return page(403, "You are not in this course", body)


def sign_in_page(
    *,
    next_url: str,
    csrf: str,
    status: int = 200,
    error: str = "",
    username: str = "",
    providers: Sequence[tuple[str, str]] = (),
) -> Response[str]:
    """The password form, and a link per identity provider: (name, display name)."""
    notice = f'<p role="alert">{escape(error)}</p>' if error else ""
    body = f"""{notice}
<form method="post" action="/signin">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="next" value="{escape(next_url)}">
<p><label>Username <input name="username" autocomplete="username" required
 value="{escape(username)}"></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password"
 required></label></p>
<p><button type="submit">Sign in</button></p>
</form>{_provider_links(providers, next_url)}"""
    return page(status, "Sign in", body)


def _provider_links(providers: Sequence[tuple[str, str]], next_url: str) -> str:
    if not providers:
        return ""
    query = urlencode({"next": next_url})
    links = "".join(
        f'<li><a href="/signin/oidc/{quote(name)}?{escape(query)}">'
        f"Sign in with {escape(display_name)}</a></li>"
        for name, display_name in providers
    )
    return f'\n<nav aria-label="Other ways to sign in"><ul>{links}</ul></nav>'
