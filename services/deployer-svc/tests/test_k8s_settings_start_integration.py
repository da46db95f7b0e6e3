"""The deployer refuses to start on a bad kubernetes settings file: the real process
(`python -m deployer_svc`), its exit status and what the operator reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_bad_settings_file_stops_the_deployer_naming_key_and_line(tmp_path: Path) -> None:
    settings = tmp_path / "k8s.yaml"
    settings.write_text(
        "storage_class: ceph-rbd\n"
        "egress:\n"
        "  allow:\n"
        "    - name: licence\n"
        "      cidr: 10.20.30.40/32\n"
        "      ports: [27000]\n"
        "  blok: [34.118.224.0/20]\n"  # a typo: never silently ignored
    )
    env = {
        **os.environ,
        "JHAAS_HUB_BACKEND": "kubernetes",
        "JHAAS_HUB_DOMAIN": "hubs.example.org",
        "JHAAS_INSTALLATION_ID": "uni",
        "JHAAS_DEPLOYER_SECRET_KEYS": "k" * 40,
        "JHAAS_DATA_DIR": str(tmp_path),
        "JHAAS_K8S_SETTINGS_FILE": str(settings),
    }
    done = subprocess.run(
        [sys.executable, "-m", "deployer_svc"], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "deployer-svc: refusing to start: JHAAS_K8S_SETTINGS_FILE (k8s.yaml line 7): "
        "egress.blok: unknown setting (not one of the file's keys; a typo?)"
    )
