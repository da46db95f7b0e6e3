"""Which URLs the gateway will talk to or send people to."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def endpoint_problem(url: str) -> str | None:
    """None for an https URL, or http on loopback; else why not.

    Over plain http on a network a code, a client secret and the tokens would
    travel in the clear, and anyone on the path could sign in as anyone.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"is not a URL: {url[:100]!r}"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme != "http" or not host:
        return f"must be an https:// URL, not {url[:100]!r}"
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return f"must use https:// (plain http only on loopback), not {url[:100]!r}"
