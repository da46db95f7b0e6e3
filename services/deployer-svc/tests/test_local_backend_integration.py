"""The `local` backend against a real JupyterHub: deployed by a deployer process that is then
SIGKILLed, found again, managed through its REST API and torn down by a fresh instance."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployer_svc.backends.base import (
    BackendError,
    HubDeployment,
    HubPhase,
    OAuthClient,
    Roster,
)
from deployer_svc.backends.hub_settings import CONFIG_TEXT
from deployer_svc.backends.local import LocalBackend, processes_under
from jhaas_launcher.testing import eventually, sample_spec

pytestmark = pytest.mark.integration

API_TOKEN = "integration-deployer-token-5f0c1b7e9a"
DEPLOYMENT = "dep-int-1"

DEPLOYER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from deployer_svc.backends.base import HubDeployment
    from deployer_svc.backends.local import LocalBackend
    from jhaas_launcher.testing import sample_spec

    async def main():
        backend = LocalBackend(Path(sys.argv[1]), start_timeout=60)
        hub = HubDeployment(
            deployment_id=sys.argv[2], request_id="req-int", slug="ds101",
            configuration=sample_spec(), api_token=sys.argv[3],
        )
        status = await backend.deploy(hub)
        print(json.dumps({"phase": status.phase, "url": status.url, "api_url": status.api_url}),
              flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def hub_deployment() -> HubDeployment:
    return HubDeployment(
        deployment_id=DEPLOYMENT,
        request_id="req-int",
        slug="ds101",
        configuration=sample_spec(),
        api_token=API_TOKEN,
    )


def deploy_in_a_process_then_kill_it(root: Path) -> dict[str, Any]:
    """Deploy from a separate deployer process and SIGKILL it once the hub is READY."""
    script = root.parent / "deployer.py"
    script.write_text(DEPLOYER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), DEPLOYMENT, API_TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # the deployer prints once deploy() returned
        assert line.startswith("{"), line + proc.stdout.read(4000).decode(errors="replace")
        return dict(json.loads(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


@pytest.fixture
async def hub_root(tmp_path: Path) -> AsyncIterator[Path]:
    """The backend's root; whatever a failing test leaves running there is torn down."""
    root = tmp_path / "hubs"
    try:
        yield root
    finally:
        if root.exists():
            backend = LocalBackend(root)
            for entry in root.iterdir():
                if entry.is_dir():
                    await backend.teardown(entry.name)


def cwd_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def test_local_hub_lifecycle(hub_root: Path) -> None:
    root = hub_root
    first = await asyncio.to_thread(deploy_in_a_process_then_kill_it, root)
    assert first["phase"] == "ready"
    url, api = first["url"], first["api_url"]
    assert api == url + "hub/api"
    folder = root / DEPLOYMENT
    state = json.loads((folder / "state.json").read_text())
    hub_pid = state["pid"]
    assert alive(hub_pid), "the hub must outlive the SIGKILLed deployer"

    # A fresh backend, as after a deployer restart, finds the hub again.
    backend = LocalBackend(root)
    assert await backend.list_managed() == [DEPLOYMENT]
    status = await backend.status(DEPLOYMENT)
    assert status.phase is HubPhase.READY and status.url == url and status.api_url == api

    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        ok = await client.get("/users", headers={"Authorization": f"token {API_TOKEN}"})
        assert ok.status_code == 200
        wrong = await client.get("/users", headers={"Authorization": "token not-the-token"})
        assert wrong.status_code in (401, 403)
        anonymous = await client.get("/users")
        assert anonymous.status_code in (401, 403)

    # Deploying again is idempotent: same process, still READY.
    again = await backend.deploy(hub_deployment())
    assert again.phase is HubPhase.READY and again.url == url
    assert json.loads((folder / "state.json").read_text())["pid"] == hub_pid

    auth = {"Authorization": f"token {API_TOKEN}"}

    async def users() -> dict[str, tuple[bool, list[str]]]:
        async with httpx.AsyncClient(base_url=api, headers=auth, timeout=10) as client:
            response = await client.get("/users")
            response.raise_for_status()
            return {u["name"]: (u["admin"], sorted(u["groups"])) for u in response.json()}

    staff, participant = (False, ["course-staff"]), (False, ["course-participants"])
    await backend.sync_roster(
        DEPLOYMENT,
        Roster(leader="lea", tutors=frozenset({"tim"}), participants=frozenset({"alice", "bob"})),
    )
    assert await users() == {"lea": staff, "tim": staff, "alice": participant, "bob": participant}
    await backend.sync_roster(DEPLOYMENT, Roster(leader="lea", participants=frozenset({"alice"})))
    assert await users() == {"lea": staff, "alice": participant}

    # A single-user server really starts (as root: --allow-root) inside the hub's folder.
    # The hub answers a start only after its slow_spawn_timeout (10 s) when the server
    # is slow to come up (a loaded machine): wait longer than that.
    async with httpx.AsyncClient(base_url=api, headers=auth, timeout=60) as client:
        started = await client.post("/users/alice/server")
        assert started.status_code in (201, 202), started.text

        async def alice_ready() -> bool:
            user = (await client.get("/users/alice")).json()
            server = user.get("servers", {}).get("")
            return bool(server and server.get("ready"))

        await eventually(alice_ready, timeout=60, interval=0.25)
    assert (folder / "home" / "alice").is_dir()
    running = processes_under(folder)
    assert hub_pid in running and len(running) >= 4  # hub, proxy, culler, alice's server

    alice_pids = [pid for pid in running if cwd_of(pid) == str(folder / "home" / "alice")]
    assert alice_pids, "alice's server runs in her home inside the hub's folder"

    # A changed configuration (sign-in arrives) restarts the hub on the same URL;
    # alice's server keeps running through the restart.
    oauth = OAuthClient(
        client_id="hub-ds101",
        client_secret="client-secret-3c9d2e",
        authorize_url="http://127.0.0.1:9/oauth/authorize",
        token_url="http://127.0.0.1:9/oauth/token",
        userdata_url="http://127.0.0.1:9/oauth/userinfo",
    )
    # A proxy slow to exit (here: stopped, so the hub's SIGTERM waits) must not move
    # the hub to new ports: the deployer waits for it, then kills it.
    proxy_pid = int((folder / "jupyterhub-proxy.pid").read_text())
    os.kill(proxy_pid, signal.SIGSTOP)
    changed = await backend.deploy(replace(hub_deployment(), oauth=oauth))
    assert changed.phase is HubPhase.READY and changed.url == url
    assert proxy_pid not in processes_under(folder)
    new_pid = json.loads((folder / "state.json").read_text())["pid"]
    assert new_pid != hub_pid and not alive(hub_pid)
    assert all(alive(pid) for pid in alice_pids)
    assert "GenericOAuthenticator" in (folder / "hub_settings.json").read_text()
    assert (folder / "jupyterhub_config.py").read_text() == CONFIG_TEXT  # the same, as data
    hub_pid = new_pid
    assert await users() == {"lea": staff, "alice": participant}
    # The same request again changes nothing.
    await backend.deploy(replace(hub_deployment(), oauth=oauth))
    assert json.loads((folder / "state.json").read_text())["pid"] == hub_pid
    running = processes_under(folder)

    log_text = (folder / "hub.log").read_text()
    assert "client-secret-3c9d2e" not in log_text
    assert API_TOKEN not in log_text
    assert (folder / "cookie_secret").read_text() not in log_text
    assert (folder / "proxy_auth_token").read_text() not in log_text

    # Teardown from yet another fresh instance: nothing of the hub is left.
    record = await LocalBackend(root).teardown(DEPLOYMENT)
    assert record.backend == "local"
    assert f"process-group/{hub_pid}" in record.objects
    assert f"directory/{folder}" in record.objects
    # alice's server survives a hub stop by design; teardown found it and killed it.
    assert {f"process/{pid}" for pid in alice_pids} <= set(record.objects)
    assert not alive(hub_pid)
    assert [pid for pid in running if alive(pid)] == []
    assert processes_under(folder) == []
    assert not folder.exists()
    assert (await backend.status(DEPLOYMENT)).phase is HubPhase.ABSENT
    assert await backend.list_managed() == []
    again_record = await backend.teardown(DEPLOYMENT)
    assert again_record.objects == ()


async def test_hub_that_cannot_start_fails_in_words_and_its_log_stays_with_the_operator(
    hub_root: Path, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    tmp_path = hub_root
    # A "python" that writes to the hub's log and exits at once. What it wrote may be
    # anything (paths, tracebacks, tokens): it must reach the deployer's log, never the
    # reason that travels in HubFailed to the leader.
    fake = tmp_path_factory.mktemp("bin") / "python"
    fake.write_text("#!/bin/sh\necho 'Traceback: secret-looking-line-4711'\nexit 3\n")
    fake.chmod(0o755)
    backend = LocalBackend(tmp_path, python=str(fake), start_timeout=10)
    with caplog.at_level("WARNING"), pytest.raises(BackendError) as failure:
        await backend.deploy(hub_deployment())
    assert failure.value.temporary
    assert str(failure.value) == "the hub stopped during start-up (exit code 3)"
    assert "secret-looking-line-4711" in caplog.text  # the operator's log has it
    assert API_TOKEN not in caplog.text
    assert (await backend.status(DEPLOYMENT)).phase is HubPhase.FAILED
    record = await backend.teardown(DEPLOYMENT)
    assert record.objects == (f"directory/{tmp_path / DEPLOYMENT}",)
    assert not (tmp_path / DEPLOYMENT).exists()
    assert os.listdir(tmp_path) == []


async def test_a_crashed_hub_is_failed_then_redeployed_and_its_orphans_cleaned(
    hub_root: Path,
) -> None:
    tmp_path = hub_root
    # SIGKILL only the hub: its proxy and culler (own sessions) are orphaned and keep running.
    backend = LocalBackend(tmp_path, start_timeout=60)
    first = await backend.deploy(hub_deployment())
    folder = tmp_path / DEPLOYMENT
    old_pid = json.loads((folder / "state.json").read_text())["pid"]
    orphans = [pid for pid in processes_under(folder) if pid != old_pid]
    assert orphans, "the proxy and the culler run in sessions of their own"
    os.kill(old_pid, signal.SIGKILL)
    await eventually(lambda: asyncio.to_thread(alive, old_pid), lambda up: not up, timeout=10)
    assert (await backend.status(DEPLOYMENT)).phase is HubPhase.FAILED

    # Deploy converges: leftovers are stopped, a new hub answers on the same URL.
    second = await backend.deploy(hub_deployment())
    assert second.phase is HubPhase.READY and second.url == first.url
    new_pid = json.loads((folder / "state.json").read_text())["pid"]
    assert new_pid != old_pid
    assert [pid for pid in orphans if alive(pid)] == []

    # Crash it again; teardown finds the orphans through /proc and names them.
    orphans = [pid for pid in processes_under(folder) if pid != new_pid]
    os.kill(new_pid, signal.SIGKILL)
    await eventually(lambda: asyncio.to_thread(alive, new_pid), lambda up: not up, timeout=10)
    record = await backend.teardown(DEPLOYMENT)
    assert {f"process/{pid}" for pid in orphans} <= set(record.objects)
    assert f"process-group/{new_pid}" not in record.objects
    assert [pid for pid in orphans if alive(pid)] == []
    assert processes_under(folder) == [] and not folder.exists()


def test_processes_under_matches_the_folder_not_its_siblings(tmp_path: Path) -> None:
    inside, sibling = tmp_path / "dep-1", tmp_path / "dep-10"
    inside.mkdir()
    sibling.mkdir()
    procs = [
        subprocess.Popen(["sleep", "30"], cwd=inside),
        subprocess.Popen(["sleep", "30"], cwd=sibling),
        subprocess.Popen(["sh", "-c", f"sleep 30 # {inside}/jupyterhub_config.py"]),
        subprocess.Popen(["sh", "-c", f"sleep 30 # {sibling}/jupyterhub_config.py"]),
    ]
    try:
        found = processes_under(inside)
        assert procs[0].pid in found and procs[2].pid in found
        assert procs[1].pid not in found and procs[3].pid not in found
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def test_a_hub_inherits_none_of_the_deployers_secrets(
    hub_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever an operator put into the deployer's environment (database URLs with
    # passwords, keys, the admin password, cloud credentials) must not reach a hub:
    # a hub hands parts of its environment on to every participant's server.
    secrets = {
        "JHAAS_ADMIN_PASSWORD": "admin-password-in-env-9d1",
        "JHAAS_DEPLOYER_SVC_DATABASE_URL": "postgresql+asyncpg://u:db-password-7c2@db/x",
        "JHAAS_DEPLOYER_SECRET_KEYS": "deployer-key-material-0123456789abcdef",
        "JHAAS_NATS_SEED_FILE": "/var/lib/jhaas/nats/deployer-svc.nk",
        "AWS_SECRET_ACCESS_KEY": "cloud-secret-4b8",
        "PYTHONPATH": "/somewhere/else",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    backend = LocalBackend(hub_root, start_timeout=60)
    await backend.deploy(hub_deployment())
    folder = hub_root / DEPLOYMENT
    try:
        pids = processes_under(folder)
        assert len(pids) >= 2, "the hub and its proxy run"
        for pid in pids:
            raw = await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)
            environ = raw.decode(errors="replace")
            names = {entry.split("=", 1)[0] for entry in environ.split("\0") if entry}
            assert not names & set(secrets), (pid, names & set(secrets))
            assert not [v for v in secrets.values() if v in environ], pid
            assert not any(name.startswith("JHAAS_") for name in names), (pid, names)
    finally:
        await backend.teardown(DEPLOYMENT)
