"""The whole product on one machine: NATS, every service and the gateway as
child processes with embedded defaults (SQLite, JetStream on disk)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import nats
from nats.aio.client import Client as NATS

from jhaas_launcher.natsauth import (
    LAUNCHER,
    NATS_ADMIN,
    Credentials,
    apply_streams,
    ensure_credentials,
)
from jhaas_launcher.processes import ManagedProcess, NatsServer, free_port, spawn
from jhaas_runtime.messaging import inbox_prefix
from jhaas_runtime.settings import database_url_variable

# (service name, module); the gateway starts last, once the services answer.
SERVICES: tuple[tuple[str, str], ...] = (
    ("request-svc", "request_svc"),
    ("governance-svc", "governance_svc"),
    ("participant-svc", "participant_svc"),
    ("deployer-svc", "deployer_svc"),
)
GATEWAY = ("gateway", "gateway")
ADMIN_USERNAME = "admin"
INITIAL_ADMIN_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name (the gateway's)
NATS_SEED_VARIABLE = "JHAAS_NATS_SEED_FILE"

# Secrets that belong to one process only; any other process gets none of them.
OWN_SECRETS: dict[str, frozenset[str]] = {
    GATEWAY[0]: frozenset({"JHAAS_ADMIN_PASSWORD", "JHAAS_JWT_SECRET"}),
    "deployer-svc": frozenset({"JHAAS_DEPLOYER_SECRET_KEYS"}),
}


def process_env(
    name: str, base: Mapping[str, str], credentials: Credentials | None = None
) -> dict[str, str]:
    """The environment of one process: `base` without the secrets meant for
    another process (a database URL carries its password), with its own NATS
    credential only."""
    processes = [n for n, _ in (*SERVICES, GATEWAY)]
    others = {database_url_variable(n) for n in processes if n != name}
    for owner, secrets in OWN_SECRETS.items():
        if owner != name:
            others |= secrets
    env = {k: v for k, v in base.items() if k not in others and k != NATS_SEED_VARIABLE}
    if credentials is not None:
        env[NATS_SEED_VARIABLE] = str(credentials.seed_file(name))
    return env


def initial_admin_password(data_dir: Path) -> str | None:
    """The first admin's password the gateway generated (when none was given),
    until it is changed."""
    try:
        return (data_dir / INITIAL_ADMIN_PASSWORD_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


@dataclass
class Stack:
    data_dir: Path
    nats_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    nats: NatsServer | None = None
    # Other institutions that get a read-only NATS credential (reader-<name>.nk).
    readers: Sequence[str] = ()

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def credentials(self) -> Credentials:
        """Kept in the data folder: made on the first start, reused after."""
        return Credentials(self.data_dir / "nats")

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def env(self, name: str) -> dict[str, str]:
        """The environment of the process `name`: see `process_env`."""
        base = dict(os.environ)
        base.update(
            {
                "JHAAS_DATA_DIR": str(self.data_dir),
                "JHAAS_NATS_URL": self.nats_url,
                "JHAAS_GATEWAY_HOST": "127.0.0.1",
                "JHAAS_GATEWAY_PORT": str(self.gateway_port),
                "JHAAS_PUBLIC_URL": self.gateway_url,
                # Where the hubs send people to sign in (and ask for tokens): this gateway.
                "JHAAS_GATEWAY_URL": self.gateway_url,
                # Plain http on loopback: a Secure cookie would never be sent back.
                "JHAAS_COOKIE_SECURE": "false",
                "JHAAS_ADMIN_USERNAME": base.get("JHAAS_ADMIN_USERNAME", ADMIN_USERNAME),
                "JHAAS_LOG_FORMAT": base.get("JHAAS_LOG_FORMAT", "json"),
            }
        )
        base.update(self.extra_env)
        return process_env(name, base, self.credentials)

    def start_nats(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        credentials = ensure_credentials(self.credentials.folder, self.readers)
        self.nats = NatsServer(
            store_dir=self.data_dir / "jetstream",
            port=self.nats_port,
            log_path=self.log_dir / "nats.log",
            config=credentials.server_config,
        ).start()

    async def nats_connect(self, as_: str) -> NATS:
        """A connection with the credential of `as_` (a process, `nats-admin`
        or `reader-<name>`), with exactly that principal's permissions."""
        return await nats.connect(
            self.nats_url,
            nkeys_seed=str(self.credentials.seed_file(as_)),
            inbox_prefix=inbox_prefix(as_),
        )

    def start_process(self, name: str, module: str, env: Mapping[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        merged = self.env(name)
        merged.update(env or {})
        self.processes[name] = spawn(
            name, [sys.executable, "-m", module], env=merged, log_path=self.log_dir / f"{name}.log"
        )

    async def wait_service(self, name: str, timeout: float = 60.0) -> None:
        """Until the service answers its health RPC (it has migrated and subscribed)."""
        subject = f"jhaas.rpc.{name.removesuffix('-svc')}.health"
        call = msgspec.json.encode(
            {
                "principal": {"user_id": "launcher", "username": "launcher", "roles": []},
                "correlation_id": "launcher-health",
                "payload": {},
            }
        )
        # The launcher's own credential may send health requests and nothing else;
        # the health route ignores the principal below.
        nc = await self.nats_connect(LAUNCHER)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._check_alive(name)
                try:
                    await nc.request(subject, call, timeout=0.5)
                    return
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    await asyncio.sleep(0.1)
            raise TimeoutError(f"{name} did not answer within {timeout:.0f}s; see {self.log_dir}")
        finally:
            await nc.close()

    async def wait_gateway(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                self._check_alive(GATEWAY[0])
                try:
                    if (
                        await client.get(f"{self.gateway_url}/readyz", timeout=1)
                    ).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"the gateway was not ready within {timeout:.0f}s; see {self.log_dir}")

    def _check_alive(self, name: str) -> None:
        handle = self.processes.get(name)
        if handle is not None and handle.process.poll() is not None:
            log = handle.log_path.read_text()[-2000:] if handle.log_path else ""
            raise RuntimeError(f"{name} exited with {handle.process.returncode}:\n{log}")

    async def start_service(self, name: str, env: Mapping[str, str] | None = None) -> None:
        module = dict((*SERVICES, GATEWAY))[name]
        self.start_process(name, module, env)
        if name == GATEWAY[0]:
            await self.wait_gateway()
        else:
            await self.wait_service(name)

    async def start(self) -> None:
        self.start_nats()
        # The services may create their streams but not change them.
        await apply_streams(self.nats_url, self.credentials.seed_file(NATS_ADMIN), replicas=1)
        for name, module in SERVICES:
            self.start_process(name, module)
        await asyncio.gather(*(self.wait_service(name) for name, _ in SERVICES))
        await self.start_service(GATEWAY[0])

    def stop_service(self, name: str) -> None:
        handle = self.processes.pop(name, None)
        if handle:
            handle.stop()

    def kill_service(self, name: str) -> None:
        handle = self.processes.pop(name, None)
        if handle:
            handle.kill()

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop_service(name)
        if self.nats:
            self.nats.stop()
            self.nats = None

    def dead(self) -> list[str]:
        return [n for n, h in self.processes.items() if h.process.poll() is not None]
