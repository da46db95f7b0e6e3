"""The governance policy as an operator deploys it.

- deploy/policy.yaml, the documented example `./jhaas up` uses: it loads, it
  writes out every key of the policy, its five presets use dated images.
- A policy file with an unknown key or an impossible value stops the real
  `python -m request_svc` / `python -m governance_svc` (and `./jhaas up`) before
  anything is started: a non-zero exit, a message naming the key and its line,
  no database made, nothing subscribed on NATS. The same command with a good
  file starts (so the checks above can fail).
- A running service re-reads the file on SIGHUP; a file that is not valid then
  is logged with its key and line, and the policy in force stays.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
import yaml

from jhaas_launcher.processes import NatsServer, free_port
from jhaas_launcher.testing import eventually
from jhaas_runtime.policy import load_policy
from jhaas_schemas.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "policy.yaml"
SERVICES = ["request_svc", "governance_svc"]

# (what is changed in the example, into what, the text on the line the message
# names, the message)
BAD = [
    ("  max_participants: 300", "  max_participants: 300\n  max_participant: 20",
     "max_participant: 20", "policy.yaml line {line}: course.max_participant: unknown key"),
    ("    min: 512Mi\n    max: 16Gi", "    min: 32Gi\n    max: 16Gi", "min: 32Gi",
     "policy.yaml line {line}: limits.memory.min: 32Gi is more than limits.memory.max (16Gi)"),
    ("    image: quay.io/jupyter/r-notebook:2025-03-14\n    resources: {cpu: 1,",
     "    image: quay.io/jupyter/r-notebook:2025-03-14\n    resources: {cpu: 8,",
     "resources: {cpu: 8,",
     "policy.yaml line {line}: presets[2].resources.cpu: 8 is above limits.cpu.max (4)"),
    ("  max_duration_days: 200", "  max_duration_days: -3", "max_duration_days: -3",
     "policy.yaml line {line}: course.max_duration_days: -3 is not allowed: Expected `int` >= 1"),
]  # fmt: skip


def keys(struct: type[msgspec.Struct], prefix: str = "") -> Iterator[str]:
    """Every key of the policy, dotted (a preset's: `presets.name`, ...)."""
    for field in msgspec.structs.fields(struct):
        name = f"{prefix}{field.name}"
        kind: Any = field.type
        if getattr(kind, "__origin__", None) is tuple and kind.__args__[0] is not str:
            kind = kind.__args__[0]
        yield name
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            yield from keys(kind, f"{name}.")


def written(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}{key}"
            yield from written(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for value in node:
            yield from written(value, prefix)


@pytest.mark.unit
def test_the_example_policy_loads_and_writes_out_every_key() -> None:
    policy = load_policy(EXAMPLE, {}).policy
    assert set(keys(Policy)) <= set(written(yaml.safe_load(EXAMPLE.read_text())))
    # Nothing left to its default by accident: the example says what it means.
    assert policy != Policy()


@pytest.mark.unit
def test_the_example_offers_five_presets_on_dated_images() -> None:
    presets = load_policy(EXAMPLE, {}).policy.presets
    assert [p.name for p in presets] == [
        "python", "scientific-python", "r", "data-science", "bioinformatics",
    ]  # fmt: skip
    for preset in presets:
        tag = preset.image.rpartition(":")[2]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", tag), preset.image
    jupyter = [p.image for p in presets if p.image.startswith("quay.io/jupyter/")]
    assert len(jupyter) == 4
    bio = presets[-1].image
    dockerfile = (ROOT / "deploy" / "images" / "bioinformatics" / "Dockerfile").read_text()
    assert bio in dockerfile  # the build command names the image the preset uses
    base = re.search(r"^FROM (\S+)$", dockerfile, re.M)
    assert base is not None and base[1].rpartition(":")[2] == bio.rpartition(":")[2]


def bad_file(tmp_path: Path, old: str, new: str, marker: str, expected: str) -> tuple[Path, str]:
    text = EXAMPLE.read_text()
    assert text.count(old) == 1, old
    changed = text.replace(old, new)
    line = changed[: changed.index(marker)].count("\n") + 1
    path = tmp_path / "policy.yaml"
    path.write_text(changed)
    return path, expected.format(line=line)


def service_env(tmp_path: Path, nats_url: str, policy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JHAAS_")}
    env.update(
        {
            "JHAAS_DATA_DIR": str(tmp_path / "data"),
            "JHAAS_NATS_URL": nats_url,
            "JHAAS_POLICY_FILE": str(policy),
            "JHAAS_LOG_FORMAT": "console",
        }
    )
    return env


async def consumers(nats_url: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        jsm = nc.jsm()
        names = []
        for stream in await jsm.streams_info():
            names += [c.name for c in await jsm.consumers_info(stream.config.name)]
        return names
    finally:
        await nc.close()


async def answers_health(nats_url: str, module: str, process: subprocess.Popen[bytes]) -> bool:
    """Until the started service answers its health RPC (or exits: False)."""
    subject = f"jhaas.rpc.{module.removesuffix('_svc')}.health"
    call = msgspec.json.encode(
        {
            "principal": {"user_id": "test", "username": "test", "roles": []},
            "correlation_id": "policy-start",
            "payload": {},
        }
    )
    nc = await nats.connect(nats_url)
    try:
        while process.poll() is None:
            try:
                await nc.request(subject, call, timeout=0.5)
                return True
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.1)
        return False
    finally:
        await nc.close()


@pytest.mark.integration
@pytest.mark.parametrize("module", SERVICES)
@pytest.mark.parametrize("bad", BAD, ids=["unknown-key", "min>max", "preset", "negative"])
def test_a_bad_policy_file_stops_the_start_naming_key_and_line(
    tmp_path: Path, nats_server: NatsServer, module: str, bad: tuple[str, str, str, str]
) -> None:
    path, message = bad_file(tmp_path, *bad)
    env = service_env(tmp_path, nats_server.url, path)
    result = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result
    assert "the policy is not valid; not starting" in result.stderr
    assert message in result.stderr, result.stderr
    # Nothing half-started: no database, nothing subscribed.
    data = tmp_path / "data"
    assert not data.exists() or not list(data.rglob("*.sqlite*"))
    assert asyncio.run(consumers(nats_server.url)) == []


@pytest.mark.integration
@pytest.mark.parametrize("module", SERVICES)
def test_the_same_service_starts_with_the_example_policy(
    tmp_path: Path, nats_server: NatsServer, module: str
) -> None:
    env = service_env(tmp_path, nats_server.url, EXAMPLE)
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        assert asyncio.run(answers_health(nats_server.url, module, process)), log.read_text()
        assert list((tmp_path / "data").rglob("*.sqlite"))
        assert asyncio.run(consumers(nats_server.url)) != []
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.integration
def test_jhaas_up_refuses_a_bad_policy_before_starting_anything(tmp_path: Path) -> None:
    path, message = bad_file(tmp_path, *BAD[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("JHAAS_")}
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "jhaas_launcher", "up", "--data-dir", str(data)]
    argv += ["--port", str(free_port()), "--nats-port", str(free_port()), "--policy", str(path)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr
    assert not list(data.rglob("*")), "nothing written: no NATS, no service started"


@pytest.mark.unit
def test_jhaas_up_uses_the_example_policy_unless_told_otherwise(tmp_path: Path) -> None:
    from jhaas_launcher.__main__ import default_policy

    assert default_policy({}) == str(EXAMPLE)
    assert default_policy({"JHAAS_POLICY_FILE": ""}) == ""  # the built-in defaults
    assert default_policy({"JHAAS_POLICY_FILE": "/etc/jhaas/policy.yaml"}) == (
        "/etc/jhaas/policy.yaml"
    )


async def published_policy(nats_url: str) -> dict[str, Any]:
    """governance.get_policy as a reviewer asks it."""
    call = msgspec.json.encode(
        {
            "principal": {"user_id": "gus", "username": "gus", "roles": ["governance"]},
            "correlation_id": "policy-reload",
            "payload": {},
        }
    )
    nc = await nats.connect(nats_url)
    try:
        reply = await nc.request("jhaas.rpc.governance.get_policy", call, timeout=5)
    finally:
        await nc.close()
    answer: dict[str, Any] = msgspec.json.decode(reply.data)["ok"]
    return answer


@pytest.mark.integration
def test_a_running_service_reloads_on_sighup_and_keeps_its_policy_on_a_bad_file(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE.read_text())
    env = service_env(tmp_path, nats_server.url, path)
    env["JHAAS_POLICY_POLL_SECONDS"] = "3600"  # only the signal makes it look
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "governance_svc"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        asyncio.run(reload_on_sighup(tmp_path, nats_server.url, process, log))
    finally:
        process.terminate()
        process.wait(timeout=60)


async def reload_on_sighup(
    tmp_path: Path, nats_url: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    def read_log() -> Awaitable[str]:
        return asyncio.to_thread(log.read_text)

    assert await answers_health(nats_url, "governance_svc", process), await read_log()
    first = await published_policy(nats_url)
    assert first["course"]["max_participants"] == 300

    tighter = EXAMPLE.read_text().replace("max_participants: 300", "max_participants: 20")
    await asyncio.to_thread((tmp_path / "policy.yaml").write_text, tighter)
    process.send_signal(signal.SIGHUP)
    second = await eventually(
        lambda: published_policy(nats_url), lambda policy: policy["version"] != first["version"]
    )
    assert second["course"]["max_participants"] == 20

    _, message = await asyncio.to_thread(bad_file, tmp_path, *BAD[0])
    process.send_signal(signal.SIGHUP)
    await eventually(read_log, lambda text: "policy file not valid" in text)
    assert message in await read_log()
    assert process.poll() is None, "a bad file at reload does not stop the service"
    assert await published_policy(nats_url) == second
