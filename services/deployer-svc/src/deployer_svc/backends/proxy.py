"""`python -m deployer_svc.backends.proxy --max-clients N [configurable-http-proxy options]`:
the local hubs' proxy, the pure-Python `configurable-http-proxy`, with room for a class.

That proxy forwards every request through Tornado's `AsyncHTTPClient`, whose
default allows 10 requests in flight; the 11th waits in a queue and gets a 503
after 20 s. At class start a spawn request holds its slot for up to the hub's
`slow_spawn_timeout` (10 s) and each spawn page keeps a progress stream open, so
50 students starting at once saw 30 of them refused (docs/benchmarks.md, "Class
start"). JupyterHub appends the proxy's own options (ports, token) after ours.
"""

from __future__ import annotations

import resource
import sys

from tornado.httpclient import AsyncHTTPClient

OPTION = "--max-clients"


def take_max_clients(argv: list[str]) -> tuple[int, list[str]]:
    """The `--max-clients N` value and the arguments without it (default 10, Tornado's)."""
    rest = list(argv)
    if OPTION not in rest:
        return 10, rest
    at = rest.index(OPTION)
    value = int(rest[at + 1])
    if value < 1:
        raise SystemExit(f"{OPTION} must be at least 1, got {value}")
    del rest[at : at + 2]
    return value, rest


def raise_open_files(wanted: int) -> None:
    """Each forwarded request holds two sockets: lift the soft limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def main() -> None:
    max_clients, rest = take_max_clients(sys.argv[1:])
    raise_open_files(2 * max_clients + 256)
    AsyncHTTPClient.configure(None, max_clients=max_clients)
    from configurable_http_proxy.cli import main as proxy_main  # type: ignore[import-untyped]

    sys.argv = [sys.argv[0], *rest]
    proxy_main()


if __name__ == "__main__":
    main()
