"""Local hubs isolate their users (as root): a real hub, two participants' servers, and
code run inside one of them through its kernel, as that participant would run it."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deployer_svc.backends.base import HubDeployment, Roster
from deployer_svc.backends.cgroups import CgroupHost
from deployer_svc.backends.isolation import hub_accounts, hub_prefix, marker, processes_of
from deployer_svc.backends.local import LocalBackend
from deployer_svc.credentials import KEY_FILE, CredentialBox
from jhaas_launcher.testing import eventually, sample_spec
from jhaas_schemas.hubnames import hub_username
from jhaas_schemas.model import Resources

sys.path.insert(0, str(Path(__file__).parent))
from kernel_client import run_in_kernel

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="making system accounts needs root"),
]

SINGLEUSER = Path(os.environ.get("JHAAS_SINGLEUSER_VENV", "/opt/jhaas/singleuser"))
INSTALLATION = "isotest"
DEPLOYMENT = "dep-iso-1"
API_TOKEN = "isolation-deployer-token-8e1f0a"
MEMORY = 512 * 1024**2
LEADER, ALICE, BOB = (hub_username(f"user-{name}") for name in ("lea", "alice", "bob"))
DEPLOYER_SECRETS = {
    "JHAAS_ADMIN_PASSWORD": "admin-password-in-env-51c",
    "JHAAS_NATS_SEED_FILE": "/var/lib/jhaas/nats/deployer-svc.nk",
    "JHAAS_DEPLOYER_SECRET_KEYS": "deployer-key-material-0123456789abcdef",
}


@pytest.fixture
async def data_dir() -> AsyncIterator[Path]:
    """A product data folder as `./jhaas up` leaves it (0700, files as services make
    them), outside pytest's 0700 temporary folder so the accounts can reach their homes."""
    if not (SINGLEUSER / "bin" / "jupyterhub-singleuser").exists():
        pytest.fail(f"no single-user venv at {SINGLEUSER}: run `./jhaas singleuser-venv`")
    data = Path(tempfile.mkdtemp(prefix="jhaas-iso-", dir="/var/tmp"))
    os.chmod(data, 0o700)
    CredentialBox.from_key_file(data)  # deployer-secret.key
    (data / "gateway.sqlite").write_text("a database made with umask 022")
    os.chmod(data / "gateway.sqlite", 0o644)
    (data / "nats").mkdir(mode=0o755)
    (data / "nats" / "deployer-svc.nk").write_text("SUAFAKESEED")
    os.chmod(data / "nats" / "deployer-svc.nk", 0o644)
    try:
        yield data
    finally:
        backend = LocalBackend(data / "hubs", installation_id=INSTALLATION, isolate=True)
        await backend.teardown(DEPLOYMENT)
        shutil.rmtree(data, ignore_errors=True)


def hub() -> HubDeployment:
    spec = sample_spec(resources=Resources(cpu="500m", memory="512Mi", storage="1Gi"))
    return HubDeployment(
        deployment_id=DEPLOYMENT,
        request_id="req-iso",
        slug="iso101",
        configuration=spec,
        api_token=API_TOKEN,
    )


async def spawn(api: str, user: str) -> None:
    auth = {"Authorization": f"token {API_TOKEN}"}
    # A start is answered after the hub's slow_spawn_timeout at the latest; a loaded
    # machine may take longer: a generous client timeout.
    async with httpx.AsyncClient(base_url=api, headers=auth, timeout=60) as client:
        started = await client.post(f"/users/{user}/server")
        assert started.status_code in (201, 202), started.text

        async def ready() -> bool:
            server = (await client.get(f"/users/{user}")).json().get("servers", {}).get("")
            return bool(server and server.get("ready"))

        await eventually(ready, timeout=90, interval=0.25)


def mode_and_owner(path: Path) -> tuple[int, int]:
    info = path.stat()
    return stat.S_IMODE(info.st_mode), info.st_uid


def environ_of(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(pid)


PROBE = """
import json, os, subprocess, sys
def attempt(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        return "read"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
hog = subprocess.run([sys.executable, "-c", "b = b'x' * (2 * %(memory)d); print(len(b))"],
                     capture_output=True)
print(json.dumps({
    "uid": os.getuid(),
    "home": os.path.expanduser("~"),
    "own_home": attempt(os.path.expanduser("~")),
    "targets": {name: attempt(path) for name, path in %(targets)r.items()},
    "hog": hog.returncode,
    "env": dict(os.environ),
    "cgroup": open("/proc/self/cgroup").read(),
}))
"""


async def test_each_participant_runs_as_an_account_of_their_own_and_reaches_nothing_else(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in DEPLOYER_SECRETS.items():
        monkeypatch.setenv(name, value)
    cgroups = CgroupHost()
    backend = LocalBackend(
        data_dir / "hubs",
        installation_id=INSTALLATION,
        isolate=True,
        require_isolation=cgroups.probe() is None,
        singleuser_venv=SINGLEUSER,
        private_dir=data_dir,
        start_timeout=90,
    )
    status = await backend.deploy(hub())
    limited = cgroups.probe() is None
    if limited:
        assert status.warnings == ()
    else:  # the host refused: the status says so instead of pretending
        assert any("not enforced by the kernel" in w for w in status.warnings), status
    await backend.sync_roster(
        DEPLOYMENT, Roster(leader=LEADER, participants=frozenset({ALICE, BOB}))
    )
    folder = data_dir / "hubs" / DEPLOYMENT
    prefix = hub_prefix(INSTALLATION, DEPLOYMENT)
    accounts = {user: pwd.getpwnam(prefix + user) for user in (LEADER, ALICE, BOB)}
    assert len({entry.pw_uid for entry in accounts.values()}) == 3
    for user, entry in accounts.items():
        assert mode_and_owner(folder / "home" / user) == (0o700, entry.pw_uid)
    # Enter, never list: the way to the homes through the data folder.
    assert mode_and_owner(folder) == mode_and_owner(data_dir) == (0o711, 0)

    assert status.api_url is not None and status.url is not None
    await asyncio.gather(spawn(status.api_url, ALICE), spawn(status.api_url, BOB))
    servers = {user: processes_of(accounts[user].pw_uid) for user in (ALICE, BOB)}
    assert servers[ALICE] and servers[BOB]
    assert all(uid_of(pid) == accounts[ALICE].pw_uid for pid in servers[ALICE])
    for pid in servers[ALICE] + servers[BOB]:
        environ = environ_of(pid)
        names = {entry.split("=", 1)[0] for entry in environ.split("\0") if entry}
        assert not [n for n in names if n.startswith(("JHAAS_", "NATS"))], names
        assert not [v for v in DEPLOYER_SECRETS.values() if v in environ]
        assert API_TOKEN not in environ

    targets = {
        "bob_home": str(folder / "home" / BOB),
        "data_folder": str(data_dir),
        "deployer_key": str(data_dir / KEY_FILE),
        "gateway_db": str(data_dir / "gateway.sqlite"),
        "nats_seed": str(data_dir / "nats" / "deployer-svc.nk"),
        "hubs_folder": str(data_dir / "hubs"),
        "hub_folder": str(folder),
        "hub_api_token": str(folder / "api_token"),
        "hub_cookie_secret": str(folder / "cookie_secret"),
        "hub_db": str(folder / "jupyterhub.sqlite"),
        "hub_settings": str(folder / "hub_settings.json"),
        "hub_log": str(folder / "hub.log"),
    }
    # Alice's own server's token (the deployer may not enter users' servers): as root
    # the test reads it where her server keeps it, and runs code as her.
    [alice_token] = [
        entry.split("=", 1)[1]
        for entry in environ_of(servers[ALICE][0]).split("\0")
        if entry.startswith("JUPYTERHUB_API_TOKEN=")
    ]
    output = await run_in_kernel(
        f"{status.url}user/{ALICE}/", alice_token, PROBE % {"memory": MEMORY, "targets": targets}
    )
    seen = json.loads(output.strip().splitlines()[-1])
    assert seen["uid"] == accounts[ALICE].pw_uid
    assert seen["home"] == str(folder / "home" / ALICE) and seen["own_home"] == "read"
    assert seen["targets"] == dict.fromkeys(targets, "denied")
    assert not [n for n in seen["env"] if n.startswith(("JHAAS_", "NATS"))]
    assert not [v for v in DEPLOYER_SECRETS.values() if v in json.dumps(seen["env"])]
    if limited:
        assert seen["hog"] == -9, "the kernel's OOM killer stops an allocation over the limit"
        assert prefix + ALICE in seen["cgroup"]
    else:
        assert seen["hog"] == 0

    # Bob leaves the roster: his server, account and home go; alice's stay.
    await backend.sync_roster(DEPLOYMENT, Roster(leader=LEADER, participants=frozenset({ALICE})))
    assert set(hub_accounts(marker(INSTALLATION, DEPLOYMENT))) == {prefix + LEADER, prefix + ALICE}
    assert not processes_of(accounts[BOB].pw_uid)
    assert not (folder / "home" / BOB).exists()
    assert all(uid_of(pid) == accounts[ALICE].pw_uid for pid in servers[ALICE])

    record = await backend.teardown(DEPLOYMENT)
    assert f"account/{prefix + ALICE}" in record.objects
    assert hub_accounts(marker(INSTALLATION, DEPLOYMENT)) == {}
    assert not processes_of(accounts[ALICE].pw_uid)
    assert not [p for p in [folder, *cgroups.dirs(prefix + ALICE)] if p.exists()]
