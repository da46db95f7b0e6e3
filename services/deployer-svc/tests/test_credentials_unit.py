"""The deployer's hub credentials are encrypted at rest, keys rotate, and a
missing key is named instead of failing obscurely."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deployer_svc.credentials import KEY_FILE, SEALED_PREFIX, CredentialBox, CredentialError
from deployer_svc.settings import DeployerSettings
from jhaas_runtime.settings import SettingsError

pytestmark = pytest.mark.unit

OLD, NEW = "o" * 32 + "ld-key", "n" * 32 + "ew-key"
TOKEN = "0123456789abcdef" * 4


def test_a_sealed_token_is_not_the_token_and_opens_to_it() -> None:
    box = CredentialBox([OLD])
    sealed = box.seal(TOKEN)
    assert TOKEN not in sealed
    assert sealed.startswith(SEALED_PREFIX)
    assert not TOKEN.startswith(SEALED_PREFIX)
    assert len(sealed) <= 200  # the column's width
    assert box.open(sealed) == TOKEN
    assert box.seal(TOKEN) != sealed  # a fresh IV every time


def test_keys_rotate_first_seals_all_open() -> None:
    sealed_before = CredentialBox([OLD]).seal(TOKEN)
    rotated = CredentialBox([NEW, OLD])
    assert rotated.open(sealed_before) == TOKEN
    sealed_after = rotated.seal(TOKEN)
    assert CredentialBox([NEW]).open(sealed_after) == TOKEN
    with pytest.raises(CredentialError, match="JHAAS_DEPLOYER_SECRET_KEYS"):
        CredentialBox([NEW]).open(sealed_before)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        CredentialBox(["short"])


def test_the_embedded_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    first = CredentialBox.from_key_file(tmp_path / "data")
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = CredentialBox.from_key_file(tmp_path / "data")
    assert again.open(first.seal(TOKEN)) == TOKEN


def test_settings_require_shared_keys_where_replicas_share_a_database(tmp_path: Path) -> None:
    local = {"JHAAS_DATA_DIR": str(tmp_path)}
    assert DeployerSettings.from_env(local).secret_keys == ()  # SQLite: the key file
    pg = {
        **local,
        "JHAAS_DEPLOYER_SVC_DATABASE_URL": "postgresql+asyncpg://u:p@db/deployer",
        "JHAAS_INSTALLATION_ID": "uni-test",
    }
    with pytest.raises(SettingsError, match="JHAAS_DEPLOYER_SECRET_KEYS is required"):
        DeployerSettings.from_env(pg)
    k8s = {**pg, "JHAAS_HUB_BACKEND": "kubernetes", "JHAAS_HUB_DOMAIN": "hubs.example.org"}
    with pytest.raises(SettingsError, match="JHAAS_DEPLOYER_SECRET_KEYS is required"):
        DeployerSettings.from_env(k8s)
    with pytest.raises(SettingsError, match="at least 32 characters"):
        DeployerSettings.from_env({**pg, "JHAAS_DEPLOYER_SECRET_KEYS": f"{NEW},short"})
    settings = DeployerSettings.from_env({**pg, "JHAAS_DEPLOYER_SECRET_KEYS": f" {NEW} , {OLD} "})
    assert settings.secret_keys == (NEW, OLD)
