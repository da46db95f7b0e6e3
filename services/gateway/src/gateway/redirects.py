"""Where the gateway may send a browser after a step: only a path on this site.

Every `next` / `return_to` passes through `safe_next`, so no parameter can
turn a sign-in into a redirect to another origin (an open redirect).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

MAX_NEXT = 4000
# Every printable ASCII character stays as it is; anything beyond is percent-encoded.
_ASCII_PRINTABLE = "".join(chr(code) for code in range(0x21, 0x7F))


def safe_next(value: str | None) -> str:
    """`value` when it is a path on this site, else "/": never another origin."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value:
        return "/"  # "//evil.example" and "/\\evil.example" leave the site in browsers
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        return "/"  # "/\t/evil.example": browsers drop tabs and newlines, leaving "//"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    # A header is latin-1: a non-ASCII path would not go out (or go out garbled).
    return quote(value, safe=_ASCII_PRINTABLE)
