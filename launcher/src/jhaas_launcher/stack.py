"""The whole product on one machine: NATS, every service and the gateway as
child processes with embedded defaults (SQLite, JetStream on disk)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import nats

from jhaas_launcher.processes import ManagedProcess, NatsServer, free_port, spawn

# (service name, module); the gateway starts last, once the services answer.
SERVICES: tuple[tuple[str, str], ...] = (
    ("request-svc", "request_svc"),
    ("governance-svc", "governance_svc"),
    ("participant-svc", "participant_svc"),
    ("deployer-svc", "deployer_svc"),
)
GATEWAY = ("gateway", "gateway")
ADMIN_USERNAME = "admin"


def admin_password(data_dir: Path) -> str:
    """The first admin's password: from JHAAS_ADMIN_PASSWORD, or made once and kept."""
    given = os.environ.get("JHAAS_ADMIN_PASSWORD")
    if given:
        return given
    path = data_dir / "initial-admin-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(18)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


@dataclass
class Stack:
    data_dir: Path
    nats_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    nats: NatsServer | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "JHAAS_DATA_DIR": str(self.data_dir),
                "JHAAS_NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
                "JHAAS_GATEWAY_HOST": "127.0.0.1",
                "JHAAS_GATEWAY_PORT": str(self.gateway_port),
                "JHAAS_PUBLIC_URL": self.gateway_url,
                # Plain http on loopback: a Secure cookie would never be sent back.
                "JHAAS_COOKIE_SECURE": "false",
                "JHAAS_ADMIN_USERNAME": env.get("JHAAS_ADMIN_USERNAME", ADMIN_USERNAME),
                "JHAAS_ADMIN_PASSWORD": admin_password(self.data_dir),
                "JHAAS_LOG_FORMAT": env.get("JHAAS_LOG_FORMAT", "json"),
            }
        )
        env.update(self.extra_env)
        return env

    def start_nats(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.nats = NatsServer(
            store_dir=self.data_dir / "jetstream",
            port=self.nats_port,
            log_path=self.log_dir / "nats.log",
        ).start()

    def start_process(self, name: str, module: str, env: Mapping[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        merged = self.env()
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
        nc = await nats.connect(f"nats://127.0.0.1:{self.nats_port}")
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
