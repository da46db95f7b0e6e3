"""The access line, written without structlog's chain in JSON, is the line the
chain writes: same fields, same order, same values, one valid JSON line each,
whatever the path holds (a process of its own, configured as the gateway is)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

PATHS = [
    "/api/v1/requests/7",
    '/a\nb\u2028c\u0085d"e\\',  # characters that end a line for one reader or another
    "/lone\ud800surrogate",
    "/caf\u00e9",
]

SCRIPT = f"""
import sys
from gateway.access_log import JsonLines, _through_structlog
from jhaas_runtime.logs import configure_logging

configure_logging("gateway", level="INFO", fmt="json")
for path in {PATHS!r}:
    _through_structlog("GET", path, 200, "203.0.113.9", 1.25, "probe")
    JsonLines("gateway", sys.stderr.fileno())("GET", path, 200, "203.0.113.9", 1.25, "probe")
"""


def test_the_fast_access_line_is_the_line_structlog_writes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()  # str.splitlines: also at U+2028 and U+0085
    assert len(lines) == 2 * len(PATHS), done.stderr
    for path, (chain, fast) in zip(PATHS, zip(lines[::2], lines[1::2], strict=True), strict=True):
        expected, written = json.loads(chain), json.loads(fast)
        stamp = written["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp), stamp
        assert fast == chain.replace(expected["timestamp"], stamp)
        assert written["path"] == path
        assert written["service"] == "gateway"
