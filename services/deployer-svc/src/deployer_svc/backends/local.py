"""The `local` backend: a real JupyterHub per course as child processes on this machine.

Each hub lives in `root/<deployment_id>/`: its generated `jupyterhub_config.py`,
sqlite database, secrets (mode 0600), `state.json` and log. The hub runs in
its own session, so it outlives the deployer; everything needed to find it
again (pid, ports) is in `state.json`.

JupyterHub starts its proxy, managed services and single-user servers in
sessions of their own, so teardown stops the hub's process group first (the
hub then stops what it started) and afterwards kills any process whose
working directory or command line is still inside the hub's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from deployer_svc.backends import isolation
from deployer_svc.backends.base import (
    BackendError,
    HubDeployment,
    HubPhase,
    HubStatus,
    Roster,
)
from deployer_svc.backends.cgroups import CgroupHost
from deployer_svc.backends.hub_api import sync_hub_users
from deployer_svc.backends.hub_settings import HubConfigFiles
from deployer_svc.backends.isolation import Isolation
from deployer_svc.backends.local_config import (
    HubLayout,
    Ports,
    SeparateAccounts,
    render_config,
)
from deployer_svc.backends.processes import free_port, start_detached
from jhaas_schemas.model import DeletionRecord

log = logging.getLogger(__name__)

T = TypeVar("T")
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 40
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# What a hub may inherit of the deployer's environment (besides PATH and HOME,
# which it gets set): locale and time zone, nothing that can carry a secret.
HUB_ENV_KEEP = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
# Everything a hub writes (its database, log, pid files) is for root alone.
HUB_UMASK = 0o077


@dataclass(frozen=True, kw_only=True)
class HubState:
    deployment_id: str
    request_id: str
    slug: str
    ports: Ports
    pid: int
    # The installation that built the hub; None: written by a version without ids.
    installation_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "installation_id": self.installation_id,
                "deployment_id": self.deployment_id,
                "request_id": self.request_id,
                "slug": self.slug,
                "ports": {
                    "public": self.ports.public,
                    "hub": self.ports.hub,
                    "proxy_api": self.ports.proxy_api,
                },
                "pid": self.pid,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> HubState:
        data = json.loads(text)
        ports = data["ports"]
        return cls(
            deployment_id=str(data["deployment_id"]),
            request_id=str(data["request_id"]),
            slug=str(data["slug"]),
            ports=Ports(
                public=int(ports["public"]),
                hub=int(ports["hub"]),
                proxy_api=int(ports["proxy_api"]),
            ),
            pid=int(data["pid"]),
            installation_id=str(data["installation_id"]) if data.get("installation_id") else None,
        )


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600 from the start, not chmod after)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _port_free(port: int) -> bool:
    """Whether a server could listen on the port now (servers set SO_REUSEADDR, so
    connections of a previous run in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (None when it does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()[0]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (no zombie left)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def hub_alive(pid: int, config: Path) -> bool:
    """Whether `pid` is a live (non-zombie) JupyterHub started with this config."""
    _reap(pid)
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return str(config) in _cmdline(pid)


def processes_under(folder: Path) -> list[int]:
    """Every process (not this one) whose cwd or command line lies inside `folder`."""
    found: list[int] = []
    prefix = str(folder)
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me or _proc_state(pid) in (None, "Z", "X"):
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        inside = cwd == prefix or cwd.startswith(prefix + "/")
        if not inside:
            # The folder itself or a path inside it (not a sibling such as `<folder>0/`).
            inside = any(
                arg == prefix or (prefix + "/") in arg or arg.endswith("=" + prefix)
                for arg in _cmdline(pid)
            )
        if inside:
            found.append(pid)
    return found


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread`, but a cancellation waits for the thread to finish before
    it propagates: the hub's lock must not be released while files are still being
    written or processes stopped (a teardown could then race the writes and leave
    a folder with secrets and no state.json behind)."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait({future})
        raise


def _limits(layout: HubLayout) -> tuple[int, float]:
    """The approved per-user memory (bytes) and CPU (cores), as the hub's settings hold them."""
    try:
        spawner = json.loads(layout.settings.read_text())["config"]["Spawner"]
        return int(spawner["mem_limit"]), float(spawner["cpu_limit"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"{layout.settings}: no limits ({exc})", temporary=False) from exc


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class LocalBackend:
    """`HubBackend` running each hub as JupyterHub child processes under `root`."""

    name = "local"

    def __init__(
        self,
        root: Path,
        *,
        installation_id: str = "local",
        public_host: str = "127.0.0.1",
        python: str = sys.executable,
        start_timeout: float = 60.0,
        isolate: bool = False,
        require_isolation: bool = False,
        singleuser_venv: Path = Path("/opt/jhaas/singleuser"),
        private_dir: Path | None = None,
        cgroups: CgroupHost | None = None,
    ) -> None:
        """`isolate`: each user's server as its own system account with kernel limits
        where the host allows it, else only the leader is let in (the product's mode);
        False runs every server as the deployer's account and lets everyone in (tests,
        benchmarks). `private_dir`: the product's data folder, which the deployer keeps
        closed to the accounts while opening a path through it to their homes."""
        self.root = Path(root).resolve()
        self.installation_id = installation_id
        self.public_host = public_host
        self.python = python
        self.bin_dir = Path(python).parent
        self.start_timeout = start_timeout
        self.isolate = isolate
        self.require_isolation = require_isolation
        self.singleuser_bin = Path(singleuser_venv) / "bin"
        self.private_dir = Path(private_dir).resolve() if private_dir else self.root
        self.cgroups = cgroups or CgroupHost()
        self._cgroup_problem: str | None = None
        self._cgroups_probed = False
        self._locks: dict[str, asyncio.Lock] = {}

    # -- helpers ---------------------------------------------------------------

    def _layout(self, deployment_id: str) -> HubLayout:
        # Ids are the deployer's UUIDs; anything else never becomes a path (no '/',
        # '..', '$' that JupyterHub would expand, or characters a URL would misread).
        if not _DEPLOYMENT_ID.fullmatch(deployment_id):
            raise BackendError(f"invalid deployment id {deployment_id!r}", temporary=False)
        return HubLayout(self.root / deployment_id)

    def _lock(self, deployment_id: str) -> asyncio.Lock:
        return self._locks.setdefault(deployment_id, asyncio.Lock())

    def _read_state(self, layout: HubLayout) -> HubState | None:
        try:
            state = HubState.from_json(layout.state.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if state.installation_id not in (None, self.installation_id):
            # Another installation's hub in a shared folder: never ours to touch.
            raise BackendError(
                f"hub folder {layout.folder} belongs to installation "
                f"{state.installation_id!r}, not to {self.installation_id!r}",
                temporary=False,
            )
        return state

    def _status_for(self, state: HubState, phase: HubPhase, detail: str = "") -> HubStatus:
        return HubStatus(
            phase=phase,
            url=f"http://{self.public_host}:{state.ports.public}/",
            api_url=f"http://127.0.0.1:{state.ports.public}/hub/api",
            detail=detail,
        )

    async def _api_answers(self, state: HubState, token: str) -> bool:
        base = f"http://127.0.0.1:{state.ports.public}/hub/api"
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                root = await client.get(f"{base}/")
                if root.status_code != 200:
                    return False
                users = await client.get(
                    f"{base}/users", headers={"Authorization": f"token {token}"}
                )
                return users.status_code == 200
        except httpx.HTTPError:
            return False

    def _token(self, layout: HubLayout) -> str:
        try:
            return layout.api_token.read_text().strip()
        except OSError as exc:
            raise BackendError(
                f"hub {layout.folder.name} has no API token file", temporary=False
            ) from exc

    async def _reuse_ports(self, previous: HubState | None, wait: float = 10.0) -> Ports:
        """The hub's previous ports once the processes just stopped have let go of
        them (a few seconds at most), so its URL stays the same; else new ones."""
        deadline = asyncio.get_running_loop().time() + wait
        ports = self._pick_ports(previous)
        while (
            previous is not None
            and ports != previous.ports
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.1)
            ports = self._pick_ports(previous)
        return ports

    def _pick_ports(self, previous: HubState | None) -> Ports:
        if previous is not None:
            old = previous.ports
            if all(_port_free(p) for p in (old.public, old.hub, old.proxy_api)):
                return old  # keep the hub's URL stable across restarts
        public, hub, api = _distinct_free_ports(3)
        return Ports(public=public, hub=hub, proxy_api=api)

    def _write_files(self, hub: HubDeployment, layout: HubLayout, ports: Ports) -> None:
        files = self._render(hub, layout, ports)  # first: a hub it cannot configure gets no files
        if self.isolation().accounts:
            # The accounts pass through (never list) every folder down to their homes;
            # everything else of the hub and of the data folder stays root's alone.
            isolation.open_path(layout.homes, self._own_from())
        else:
            layout.folder.mkdir(parents=True, exist_ok=True)
            os.chmod(layout.folder, 0o700)
            layout.homes.mkdir(exist_ok=True)
        if not layout.cookie_secret.exists():
            _write_private(layout.cookie_secret, secrets.token_hex(32))
        # A fresh proxy token on every start: the proxy is restarted with the hub.
        _write_private(layout.proxy_token, secrets.token_hex(32))
        _write_private(layout.api_token, hub.api_token)
        if hub.oauth is not None:
            _write_private(layout.oauth_secret, hub.oauth.client_secret)
        _write_private(layout.settings, files.settings)
        _write_private(layout.config, files.config)

    def _render(self, hub: HubDeployment, layout: HubLayout, ports: Ports) -> HubConfigFiles:
        accounts = self._accounts(hub.deployment_id, self.isolation())
        try:
            return render_config(
                hub,
                layout,
                ports,
                bin_dir=self.bin_dir,
                python=self.python,
                public_host=self.public_host,
                as_root=os.geteuid() == 0,
                accounts=accounts,
            )
        except ValueError as exc:  # resources that are no quantities: no retry helps
            raise BackendError(f"cannot configure the hub: {exc}", temporary=False) from exc

    # -- isolation -------------------------------------------------------------

    def _own_from(self) -> Path:
        root, private = self.root, self.private_dir
        return private if (root == private or private in root.parents) else root

    def isolation(self) -> Isolation:
        """What this machine lets the backend do now (the cgroup probe runs once)."""
        if not self.isolate:
            return isolation.decide(wanted=False, is_root=False)
        is_root = os.geteuid() == 0
        if is_root and not self._cgroups_probed:
            self._cgroup_problem = self.cgroups.probe()
            self._cgroups_probed = True
        singleuser = self.singleuser_bin / "jupyterhub-singleuser"
        return isolation.decide(
            wanted=True,
            is_root=is_root,
            has_useradd=shutil.which("useradd") is not None,
            singleuser_ready=singleuser.is_file()
            and isolation.first_closed_ancestor(singleuser) is None,
            closed=isolation.first_closed_ancestor(self.root, self._own_from()),
            cgroup_problem=self._cgroup_problem if is_root else None,
        )

    def _accounts(self, deployment_id: str, plan: Isolation) -> SeparateAccounts | None:
        if not plan.accounts:
            return None
        return SeparateAccounts(
            account_prefix=isolation.hub_prefix(self.installation_id, deployment_id),
            singleuser_bin=self.singleuser_bin,
            cgroup_procs=tuple(self.cgroups.procs_templates()) if plan.limits else (),
        )

    def _marker(self, deployment_id: str) -> str:
        return isolation.marker(self.installation_id, deployment_id)

    def _check_required(self, plan: Isolation) -> None:
        if self.require_isolation and not plan.complete:
            why = "; ".join(plan.warnings)
            raise BackendError(
                f"isolation is required (JHAAS_REQUIRE_ISOLATION) but not possible: {why}",
                temporary=False,
                reason=f"the hub was not started because its users could not be isolated: {why}",
            )

    def _changed(self, hub: HubDeployment, layout: HubLayout, ports: Ports) -> bool:
        """Whether the running hub's config or secrets differ from what `hub` asks for."""

        def read(path: Path) -> str | None:
            try:
                return path.read_bytes().decode()  # no newline translation: exact values
            except (OSError, UnicodeDecodeError):
                return None

        wanted = self._render(hub, layout, ports)
        wanted_secret = hub.oauth.client_secret if hub.oauth else None
        return (
            # A config written by an older deployer (code, not data) differs too.
            read(layout.config) != wanted.config
            or read(layout.settings) != wanted.settings
            or read(layout.api_token) != hub.api_token
            or (wanted_secret is not None and read(layout.oauth_secret) != wanted_secret)
        )

    def _env(self, layout: HubLayout) -> dict[str, str]:
        """The hub's whole environment: only what it needs, never the deployer's own.

        Built from a short list instead of copying ours minus known secrets: the
        deployer's environment may hold anything an operator put there (database
        URLs, keys, the NATS credentials), and a hub passes parts of its
        environment on to every user's server.
        """
        env = {key: os.environ[key] for key in HUB_ENV_KEEP if key in os.environ}
        env["PATH"] = os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", os.defpath)])
        env["HOME"] = str(layout.folder)
        return env

    # -- HubBackend ------------------------------------------------------------

    async def deploy(self, hub: HubDeployment) -> HubStatus:
        layout = self._layout(hub.deployment_id)
        plan = await _in_thread(self.isolation)
        self._check_required(plan)
        for warning in plan.warnings if self.isolate else ():  # off on purpose: no news
            log.warning("hub %s: %s", hub.deployment_id, warning)
        status = await self._deploy(hub, layout)
        return replace(status, warnings=plan.warnings)

    async def _deploy(self, hub: HubDeployment, layout: HubLayout) -> HubStatus:
        async with self._lock(hub.deployment_id):
            previous = self._read_state(layout)
            if previous is not None and hub_alive(previous.pid, layout.config):
                if self._changed(hub, layout, previous.ports):
                    # Converge: restart the hub with the new config on the same ports
                    # (user servers keep running: cleanup_servers is off).
                    log.info("configuration of hub %s changed: restarting it", hub.deployment_id)
                    # The proxy's pid before the hub removes its file while stopping it.
                    proxy = self._proxy_pid(layout)
                    await _in_thread(self._stop_group, previous.pid)
                    if proxy is not None:
                        await _in_thread(self._stop_proxy, proxy)
                else:
                    if await self._wait_ready(previous, layout, hub.api_token, process=None):
                        return self._status_for(previous, HubPhase.READY)
                    await _in_thread(self._stop_group, previous.pid)
                    self._log_failure(hub, layout, "ran but did not answer")
                    raise BackendError(
                        f"the hub was running but did not answer within "
                        f"{self.start_timeout:.0f} s, so it was stopped",
                        temporary=True,
                    )
            elif layout.folder.exists():
                # A dead hub may have left its proxy or servers behind (or a hub started
                # by a deployer that died before it wrote state.json).
                await _in_thread(self._kill_leftovers, layout.folder)
            ports = await self._reuse_ports(previous)
            await _in_thread(self._write_files, hub, layout, ports)
            argv = [self.python, "-m", "jupyterhub", "-f", str(layout.config)]
            process = start_detached(
                argv, env=self._env(layout), log_path=layout.log, cwd=layout.folder, umask=HUB_UMASK
            )
            state = HubState(
                installation_id=self.installation_id,
                deployment_id=hub.deployment_id,
                request_id=hub.request_id,
                slug=hub.slug,
                ports=ports,
                pid=process.pid,
            )
            tmp = layout.state.with_suffix(".json.tmp")
            _write_private(tmp, state.to_json())
            tmp.replace(layout.state)
            log.info(
                "started hub %s (pid %d) on port %d",
                hub.deployment_id,
                state.pid,
                ports.public,
            )
            if await self._wait_ready(state, layout, hub.api_token, process=process):
                return self._status_for(state, HubPhase.READY)
            code = process.poll()
            await _in_thread(self._stop_group, state.pid)
            await _in_thread(self._kill_leftovers, layout.folder)
            with contextlib.suppress(Exception):
                process.wait(1)
            why = (
                f"the hub stopped during start-up (exit code {code})"
                if code is not None
                else f"the hub did not answer within {self.start_timeout:.0f} s of starting"
            )
            self._log_failure(hub, layout, why)
            raise BackendError(why, temporary=True)

    def _log_failure(self, hub: HubDeployment, layout: HubLayout, why: str) -> None:
        """The hub's own log stays with the operator (the deployer's log); the
        reason that travels to the leader says what failed in words."""
        log.warning(
            "hub %s failed to start: %s; the end of its log %s:\n%s",
            hub.deployment_id,
            why,
            layout.log,
            _tail(layout.log),
        )

    async def _wait_ready(
        self,
        state: HubState,
        layout: HubLayout,
        token: str,
        *,
        process: subprocess.Popen[bytes] | None,
    ) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if await self._api_answers(state, token):
                return True
            if process is not None:
                if process.poll() is not None:
                    return False
            elif not hub_alive(state.pid, layout.config):
                return False
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)

    async def status(self, deployment_id: str) -> HubStatus:
        layout = self._layout(deployment_id)
        if not layout.folder.exists():
            return HubStatus(phase=HubPhase.ABSENT)
        state = self._read_state(layout)
        if state is None:
            return HubStatus(phase=HubPhase.FAILED, detail="folder without state.json")
        if not hub_alive(state.pid, layout.config):
            return self._status_for(
                state, HubPhase.FAILED, f"hub process {state.pid} is not running"
            )
        try:
            token = self._token(layout)
        except BackendError as exc:
            return self._status_for(state, HubPhase.FAILED, str(exc))
        if await self._api_answers(state, token):
            plan = await _in_thread(self.isolation)
            return replace(
                self._status_for(state, HubPhase.READY, "; ".join(plan.warnings)),
                warnings=plan.warnings,
            )
        return self._status_for(state, HubPhase.STARTING, "hub process runs, API does not answer")

    async def sync_roster(self, deployment_id: str, roster: Roster) -> None:
        layout = self._layout(deployment_id)
        state = self._read_state(layout)
        if state is None or not hub_alive(state.pid, layout.config):
            raise BackendError(f"hub {deployment_id} is not running", temporary=True)
        token = self._token(layout)
        base = f"http://127.0.0.1:{state.ports.public}/hub/api"
        plan = await _in_thread(self.isolation)
        admitted = isolation.admit(roster, plan, wanted=self.isolate)
        if admitted != roster:
            log.warning("hub %s: only the leader is let in: %s", deployment_id, plan.warnings)
        async with self._lock(deployment_id):
            if plan.accounts:
                admitted = await _in_thread(self._make_accounts, deployment_id, layout, admitted)
            await sync_hub_users(deployment_id, base, token, admitted)
            if plan.accounts:
                # After the hub deleted them (and stopped their servers).
                await _in_thread(self._remove_accounts, deployment_id, admitted.everyone)

    def _make_accounts(self, deployment_id: str, layout: HubLayout, roster: Roster) -> Roster:
        """Every roster member's account, home and cgroup, before the hub lets them in;
        a name that cannot be an account is left out of the hub (and logged)."""
        prefix = isolation.hub_prefix(self.installation_id, deployment_id)
        memory, cpu = _limits(layout)
        limits = self.isolation().limits
        isolation.open_path(layout.homes, self._own_from())
        usable: set[str] = set()
        for user in sorted(roster.everyone):
            account = isolation.account_name(prefix, user)
            if account is None:
                log.warning("hub %s: %r cannot be a system account; left out", deployment_id, user)
                continue
            isolation.ensure_account(account, layout.homes / user, self._marker(deployment_id))
            if limits:
                try:
                    self.cgroups.create(account, memory, cpu)
                except OSError as exc:
                    raise BackendError(
                        f"cgroup for {account}: {exc}",
                        temporary=True,
                        reason="the memory and CPU limits of a course member could not be set",
                    ) from exc
            usable.add(user)
        if roster.leader not in usable:
            raise BackendError(
                f"the leader {roster.leader!r} of hub {deployment_id} cannot be an account",
                temporary=False,
            )
        return Roster(
            leader=roster.leader,
            tutors=roster.tutors & usable,
            participants=roster.participants & usable,
        )

    def _remove_accounts(self, deployment_id: str, keep: frozenset[str]) -> list[str]:
        """Remove this hub's accounts of users not in `keep` (processes, home, cgroup)."""
        prefix = isolation.hub_prefix(self.installation_id, deployment_id)
        wanted = {isolation.account_name(prefix, user) for user in keep}
        removed = []
        for name, entry in isolation.hub_accounts(self._marker(deployment_id)).items():
            if name in wanted:
                continue
            isolation.remove_account(entry)
            try:
                self.cgroups.remove(name)
            except OSError as exc:
                log.warning("could not remove the cgroup of %s: %s", name, exc)
            removed.append(name)
        return removed

    async def teardown(self, deployment_id: str) -> DeletionRecord:
        layout = self._layout(deployment_id)
        async with self._lock(deployment_id):
            objects = await _in_thread(self._teardown_sync, layout)
        self._locks.pop(deployment_id, None)
        return DeletionRecord(backend=self.name, deleted_at=datetime.now(UTC), objects=objects)

    def _teardown_sync(self, layout: HubLayout) -> tuple[str, ...]:
        objects: list[str] = []
        if not layout.folder.exists():
            return ()
        state = self._read_state(layout)
        if state is not None and hub_alive(state.pid, layout.config):
            self._stop_group(state.pid)
            objects.append(f"process-group/{state.pid}")
        objects += [f"process/{pid}" for pid in self._kill_leftovers(layout.folder)]
        objects += [
            f"account/{name}" for name in self._remove_accounts(layout.folder.name, frozenset())
        ]
        shutil.rmtree(layout.folder)
        objects.append(f"directory/{layout.folder}")
        log.info("tore down hub %s: %s", layout.folder.name, ", ".join(objects))
        return tuple(objects)

    def _stop_group(self, pid: int) -> None:
        """SIGTERM the hub's process group, wait up to STOP_TIMEOUT, then SIGKILL it.

        The hub leads its own session (start_new_session), so its pgid is its pid; if it
        is not (it was started some other way) only the hub itself is signalled: another
        group is not ours to kill.
        """
        try:
            own_group = os.getpgid(pid) == pid
        except ProcessLookupError:
            return

        def send(sig: signal.Signals) -> None:
            with contextlib.suppress(ProcessLookupError):
                if own_group:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)

        send(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            _reap(pid)
            if _proc_state(pid) in (None, "Z", "X"):
                break
            time.sleep(0.1)
        # SIGKILL the hub if it did not stop in time, and any straggler of its group.
        send(signal.SIGKILL)
        _reap(pid)

    def _proxy_pid(self, layout: HubLayout) -> int | None:
        """The pid of the hub's running proxy (from the pid file the hub writes)."""
        try:
            pid = int(layout.proxy_pid.read_text().strip())
        except (OSError, ValueError):
            return None
        # Not a reused pid of something else: the proxy runs inside the hub's folder.
        return pid if pid in processes_under(layout.folder) else None

    def _stop_proxy(self, pid: int) -> None:
        """Wait for the proxy to exit, SIGKILL it after STOP_TIMEOUT. It runs in a
        session of its own (JupyterHub starts it so), and a stopping hub only sends
        it SIGTERM without waiting: a slow exit (a loaded machine) would hold the
        hub's ports, and the restarted hub would come up on another URL."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            _reap(pid)
            if _proc_state(pid) in (None, "Z", "X"):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)

    def _kill_leftovers(self, folder: Path) -> list[int]:
        """Stop whatever still runs inside the folder (proxy, culler, user servers)."""
        pids = processes_under(folder)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        remaining = list(pids)
        while remaining and time.monotonic() < deadline:
            for pid in remaining:
                _reap(pid)
            remaining = [pid for pid in remaining if _proc_state(pid) not in (None, "Z", "X")]
            if remaining:
                time.sleep(0.1)
        for pid in remaining:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in remaining:
            _reap(pid)
        # Anything started in the meantime (e.g. a kernel) gets the same treatment once.
        late = [pid for pid in processes_under(folder) if pid not in pids]
        for pid in late:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids + late

    async def list_managed(self) -> list[str]:
        """This installation's hubs (a hub written by a version without installation
        ids is left out: it is still deployed, read and torn down by id)."""
        if not self.root.exists():
            return []
        found = []
        for entry in self.root.iterdir():
            try:
                state = HubState.from_json((entry / "state.json").read_text())
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if state.installation_id == self.installation_id:
                found.append(entry.name)
        return sorted(found)

    async def close(self) -> None:
        """Nothing to release: hubs keep running by design."""


async def teardown_all(hubs_dir: Path, installation_id: str) -> list[str]:
    """Tear down every hub of this installation under `hubs_dir`, with its servers and
    system accounts. Hubs outlive the product's processes by design (a restart must
    not end a class); tests and benchmarks use this to leave nothing behind."""
    if not await asyncio.to_thread(hubs_dir.exists):
        return []
    backend = LocalBackend(hubs_dir, installation_id=installation_id, isolate=os.geteuid() == 0)
    deployments = await backend.list_managed()
    for deployment_id in deployments:
        await backend.teardown(deployment_id)
    return deployments
