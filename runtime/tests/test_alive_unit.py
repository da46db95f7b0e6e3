"""The workers' liveness probe (`python -m jhaas_runtime.alive`), run as the kubelet
runs it, on heartbeat files aged by hand (no waiting)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jhaas_runtime.alive import Heartbeat

pytestmark = pytest.mark.unit


def probe(max_age: float, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jhaas_runtime.alive", "--max-age", str(max_age), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_fresh_beats_pass_and_an_old_or_missing_one_fails_naming_it(tmp_path: Path) -> None:
    relay = Heartbeat(tmp_path / "alive", "outbox-relay")
    scheduler = Heartbeat(tmp_path / "alive", "scheduler")
    missing = probe(60, tmp_path / "alive" / "outbox-relay")
    assert missing.returncode == 1
    assert "outbox-relay: never written" in missing.stderr

    relay.beat()
    scheduler.beat()
    files = (tmp_path / "alive" / "outbox-relay", tmp_path / "alive" / "scheduler")
    assert probe(60, *files).returncode == 0

    age(files[1], 600)
    old = probe(60, *files)
    assert old.returncode == 1
    assert old.stderr.strip() == f"{files[1]}: last written 600 s ago (allowed: 60 s)"

    scheduler.beat()  # the loop came back
    assert probe(60, *files).returncode == 0


def test_without_a_directory_nothing_is_written(tmp_path: Path) -> None:
    beat = Heartbeat.from_env("scheduler", {})
    beat.beat()
    assert beat.path is None
    configured = Heartbeat.from_env("scheduler", {"JHAAS_ALIVE_DIR": str(tmp_path / "a")})
    configured.beat()
    assert configured.path == tmp_path / "a" / "scheduler"
    assert configured.path.exists()


def test_a_bad_invocation_is_refused() -> None:
    result = probe(60)  # no file named
    assert result.returncode == 2
    assert "files" in result.stderr
