"""Liveness for the workers, which serve no HTTP.

A loop that must keep going (every service's outbox relay, the deployer's scheduler)
touches a file under `JHAAS_ALIVE_DIR` on every pass. The kubelet's exec probe runs
`python -m jhaas_runtime.alive --max-age SECONDS FILE...`, which fails when a file is
missing or older than allowed: a loop stuck in a database call that never returns, or
an event loop blocked by a runaway call, stops touching its file and the pod is
restarted. Without `JHAAS_ALIVE_DIR` (a developer's machine, compose) nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ENV = "JHAAS_ALIVE_DIR"


class Heartbeat:
    """Touches `<directory>/<name>` on `beat()`; does nothing without a directory."""

    def __init__(self, directory: Path | None, name: str) -> None:
        self.path = None if directory is None else directory / name

    def beat(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError:
            pass  # a full or read-only disk: the probe restarts us, which is right

    @classmethod
    def from_env(cls, name: str, env: Mapping[str, str] | None = None) -> Heartbeat:
        directory = (os.environ if env is None else env).get(ENV, "")
        return cls(Path(directory) if directory else None, name)


def stale(files: Sequence[Path], max_age: float, now: float | None = None) -> list[str]:
    """What is wrong with each file that is missing or older than `max_age` seconds."""
    now = time.time() if now is None else now
    problems = []
    for path in files:
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            problems.append(f"{path}: never written (the loop has not run once)")
            continue
        if age > max_age:
            problems.append(f"{path}: last written {age:.0f} s ago (allowed: {max_age:.0f} s)")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jhaas_runtime.alive",
        description="Exit 1 when a worker loop's heartbeat file is missing or too old.",
    )
    parser.add_argument("--max-age", type=float, required=True, help="seconds")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    problems = stale(args.files, args.max_age)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
