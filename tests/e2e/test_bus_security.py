"""The product as `./jhaas up` runs it keeps its bus closed: NATS refuses a
connection without credentials, and each running process holds its own NATS
credential and no other process's secrets (read from /proc of the processes)."""

from __future__ import annotations

from pathlib import Path

import nats
import nats.errors
import pytest

from jhaas_launcher.stack import GATEWAY, Stack

pytestmark = pytest.mark.e2e


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def private(path: Path) -> bool:
    return path.stat().st_mode & 0o077 == 0


async def test_nats_refuses_a_connection_without_credentials(stack: Stack) -> None:
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        await nats.connect(stack.nats_url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_each_process_holds_only_its_own_credential_and_secrets(stack: Stack) -> None:
    assert set(stack.processes) == {
        "request-svc",
        "governance-svc",
        "participant-svc",
        "deployer-svc",
        GATEWAY[0],
    }
    given_password = stack.extra_env["JHAAS_ADMIN_PASSWORD"]
    for name, handle in stack.processes.items():
        env = environment_of(handle.process.pid)
        seed = Path(env["JHAAS_NATS_SEED_FILE"])
        assert seed == stack.credentials.seed_file(name)
        assert private(seed), f"{seed} is readable by others"
        assert not [v for v in env.values() if v.endswith(".nk") and v != str(seed)], name
        is_gateway = name == GATEWAY[0]
        assert (env.get("JHAAS_ADMIN_PASSWORD") == given_password) is is_gateway, name
        assert given_password not in "\n".join(env.values()) or is_gateway, name
    assert "Violation" not in (stack.log_dir / "nats.log").read_text()
