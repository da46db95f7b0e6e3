"""What the benchmarks share: the settings of a deployer-svc under measurement,
and a watch on what the services in this process log."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from jhaas_runtime.logs import configure_logging
from jhaas_runtime.settings import RuntimeSettings

# What a database says when a writer waited out its lock: SQLite's busy timeout,
# PostgreSQL's lock_timeout and deadlock detector.
LOCK_TIMEOUTS = ("database is locked", "lock timeout", "deadlock detected")
SHOWN_LEVELS = frozenset({"warning", "error", "critical"})


def deployer_runtime(nats_url: str, database_url: str, root: Path, pool: int) -> RuntimeSettings:
    """deployer-svc's runtime settings for a benchmark: quiet logs, one stream replica."""
    return RuntimeSettings(
        service="deployer-svc",
        nats_url=nats_url,
        database_url=database_url,
        db_pool_size=pool,
        data_dir=root,
        stream_replicas=1,
        rpc_timeout_seconds=5,
        max_deliver=5,
        ack_wait_seconds=30,
        log_level="WARNING",
        log_format="json",
    )


class LogWatch(io.TextIOBase):
    """The log of the services run in this process: warnings and errors go on
    to `out`; every line (info included, where a consumer says it applies a
    batch again one event at a time) is searched for a lock timeout."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock_timeouts: list[str] = []

    def write(self, text: str) -> int:
        if any(words in text for words in LOCK_TIMEOUTS):
            self.lock_timeouts.append(text)
        try:
            level = json.loads(text).get("level", "") if text.strip() else ""
        except ValueError:
            level = "warning"  # not one of ours: show it
        if level in SHOWN_LEVELS:
            self.out.write(text + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()


@contextlib.contextmanager
def no_lock_timeouts(name: str) -> Iterator[LogWatch]:
    """Log what the services log (at INFO) through a `LogWatch`; when the block
    ends, fail the run if any line was a lock timeout."""
    watch = LogWatch(sys.stderr)
    with contextlib.redirect_stderr(watch):
        configure_logging(name, level="INFO", fmt="json")
    yield watch
    if watch.lock_timeouts:
        sys.stderr.write("".join(f"  {line}\n" for line in watch.lock_timeouts[:5]))
        raise SystemExit(
            f"FAILED: {len(watch.lock_timeouts)} log lines of the services under measurement "
            f"say a database lock timed out ({', '.join(LOCK_TIMEOUTS)}); the figures above "
            "do not count"
        )
