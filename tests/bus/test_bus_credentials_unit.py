"""The launcher's credentials and environments, and the bus roles the NATS
permissions are derived from, without a server."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import nkeys
import pytest

import governance_svc.app
import participant_svc.app
import request_svc.app
from deployer_svc.app import build_app as build_deployer
from deployer_svc.settings import DeployerSettings
from jhaas_launcher.natsauth import (
    GATEWAY,
    LAUNCHER,
    NATS_ADMIN,
    ensure_credentials,
    reader_principal,
)
from jhaas_launcher.stack import SERVICES, Stack, process_env
from jhaas_runtime.settings import RuntimeSettings, SettingsError
from jhaas_schemas.bus import ROLES

pytestmark = pytest.mark.unit

PROCESSES = [name for name, _ in SERVICES] + [GATEWAY]


def public_key(seed_file: Path) -> str:
    key: bytes = nkeys.from_seed(bytearray(seed_file.read_text().strip().encode())).public_key
    return key.decode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_private_kept_and_consistent(tmp_path: Path) -> None:
    folder = tmp_path / "nats"
    first = ensure_credentials(folder, readers=["uni-example"])
    principals = [*PROCESSES, LAUNCHER, NATS_ADMIN, "reader-uni-example"]
    assert mode(folder) == 0o700
    seeds = {p: first.seed_file(p).read_text() for p in principals}
    for principal in principals:
        assert mode(first.seed_file(principal)) == 0o600
    assert mode(first.server_config) == 0o600
    config = first.server_config.read_text()
    for principal in principals:
        assert public_key(first.seed_file(principal)) in config
    assert not re.search(r"\bSU[A-Z2-7]{56}\b", config), "a seed leaked into the server config"

    # A restart keeps every seed (and so every running process's credential) ...
    again = ensure_credentials(folder)
    assert {p: again.seed_file(p).read_text() for p in principals} == seeds
    assert again.server_config.read_text() == config
    # ... and a lost one is made anew, with the server config following it.
    again.seed_file("governance-svc").unlink()
    third = ensure_credentials(folder)
    assert third.seed_file("governance-svc").read_text() != seeds["governance-svc"]
    new_config = third.server_config.read_text()
    assert public_key(third.seed_file("governance-svc")) in new_config
    assert public_key(first.seed_file("request-svc")) in new_config


@pytest.mark.parametrize("name", ["Uni", "gateway.x", "", "a" * 41, "-x", "x--y", "a b"])
def test_a_reader_name_must_be_a_plain_token(name: str) -> None:
    with pytest.raises(ValueError, match="reader name"):
        reader_principal(name)


def test_each_process_gets_only_its_own_secrets(tmp_path: Path) -> None:
    stack = Stack(
        data_dir=tmp_path,
        extra_env={
            "JHAAS_ADMIN_PASSWORD": "a long admin password",
            "JHAAS_JWT_SECRET": "x" * 40,
            "JHAAS_DEPLOYER_SECRET_KEYS": "y" * 40,
            "JHAAS_REQUEST_SVC_DATABASE_URL": "postgresql+psycopg://r:pw@db/request_svc",
            "JHAAS_NATS_SEED_FILE": "/somewhere/else.nk",
        },
    )
    for name in PROCESSES:
        env = stack.env(name)
        assert env["JHAAS_NATS_SEED_FILE"] == str(tmp_path / "nats" / f"{name}.nk")
        assert ("JHAAS_ADMIN_PASSWORD" in env) is (name == GATEWAY)
        assert ("JHAAS_JWT_SECRET" in env) is (name == GATEWAY)
        assert ("JHAAS_DEPLOYER_SECRET_KEYS" in env) is (name == "deployer-svc")
        assert ("JHAAS_REQUEST_SVC_DATABASE_URL" in env) is (name == "request-svc")
        assert not [v for v in env.values() if ".nk" in v and f"/{name}.nk" not in v]


def test_the_launcher_no_longer_makes_the_admin_password(tmp_path: Path) -> None:
    env = process_env(GATEWAY, {"PATH": "/usr/bin"})
    assert "JHAAS_ADMIN_PASSWORD" not in env
    Stack(data_dir=tmp_path).env(GATEWAY)
    assert not (tmp_path / "initial-admin-password").exists()


def test_the_seed_setting_names_itself_when_unusable(tmp_path: Path) -> None:
    assert RuntimeSettings.from_env("request-svc", {}).nats_seed_file is None
    with pytest.raises(SettingsError, match="JHAAS_NATS_SEED_FILE: cannot read"):
        RuntimeSettings.from_env("request-svc", {"JHAAS_NATS_SEED_FILE": str(tmp_path / "x")})
    not_a_seed = tmp_path / "not-a-seed"
    not_a_seed.write_text("hello\n")
    with pytest.raises(SettingsError, match=r"JHAAS_NATS_SEED_FILE: .* NKey seed"):
        RuntimeSettings.from_env("request-svc", {"JHAAS_NATS_SEED_FILE": str(not_a_seed)})
    seed_file = ensure_credentials(tmp_path / "nats").seed_file("request-svc")
    settings = RuntimeSettings.from_env("request-svc", {"JHAAS_NATS_SEED_FILE": str(seed_file)})
    assert settings.nats_seed_file == seed_file


def test_every_service_builds_exactly_the_consumers_its_role_declares(tmp_path: Path) -> None:
    # NATS permits only the declared durable names: another name is refused at start.
    def settings(service: str) -> RuntimeSettings:
        return RuntimeSettings.from_env(service, {"JHAAS_DATA_DIR": str(tmp_path)})

    runtimes = {
        "request-svc": request_svc.app.build_app(settings("request-svc")),
        "governance-svc": governance_svc.app.build_app(settings("governance-svc")),
        "participant-svc": participant_svc.app.build_app(settings("participant-svc")),
        "deployer-svc": build_deployer(
            DeployerSettings(runtime=settings("deployer-svc"), hubs_dir=tmp_path / "hubs")
        ),
    }
    assert set(runtimes) == set(ROLES)
    for service, runtime in runtimes.items():
        built = {(c.name, c.stream) for c in runtime.consumers}
        declared = {(c.name, c.stream.name) for c in ROLES[service].consumers}
        assert built == declared, service
