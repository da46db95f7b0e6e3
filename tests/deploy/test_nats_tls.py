"""NATS over TLS as deploy/kubernetes configures it (issue 10 item 8), with the real
nats-server and the services' own client code: a throw-away CA and server certificate
made with openssl stand in for the Secret `jhaas-nats-tls` (cert-manager's layout)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from jhaas_launcher.natsauth import ensure_credentials
from jhaas_launcher.processes import NatsServer, nats_server_binary
from jhaas_launcher.testing import eventually
from jhaas_runtime.messaging import connect
from jhaas_runtime.settings import RuntimeSettings, SettingsError

from .test_manifests import config_data, nats_conf

pytestmark = pytest.mark.integration

TLS_DIR = "/etc/nats-tls/"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(folder: Path, name: str = "ca") -> Path:
    """ca.crt, tls.crt, tls.key in `folder` (the Secret's keys); returns the folder."""
    folder.mkdir(parents=True)
    ca_key, ca = folder / f"{name}.key", folder / "ca.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=jhaas-nats-{name}", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    csr = folder / "tls.csr"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=nats",
            "-keyout", str(folder / "tls.key"), "-out", str(csr))  # fmt: skip
    extensions = folder / "ext.cnf"
    extensions.write_text(
        "subjectAltName=DNS:*.nats-headless,DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
            "-out", str(folder / "tls.crt"))  # fmt: skip
    return folder


def client_tls_block() -> str:
    """The top-level `tls { ... }` block of the manifest's nats.conf (clients)."""
    found = re.search(r"^tls \{\n.*?^\}\n", nats_conf(), re.MULTILINE | re.DOTALL)
    assert found is not None, "nats.conf has no client tls block"
    return found.group(0)


def test_the_manifest_config_with_tls_is_valid(tmp_path: Path) -> None:
    """The whole nats.conf of the ConfigMap, with the authorization `./jhaas
    nats-credentials` generates beside it and its TLS files where the pod mounts them,
    parses in the real nats-server; a broken include or a missing key is refused."""
    pki = make_pki(tmp_path / "tls")
    credentials = ensure_credentials(tmp_path / "generated")
    conf = nats_conf().replace(TLS_DIR, f"{pki}/")
    assert conf.count(f"{pki}/tls.crt") == 2  # clients and routes
    (tmp_path / "nats.conf").write_text(conf)
    (tmp_path / "nats-auth.conf").write_text(credentials.server_config.read_text())
    check = [nats_server_binary(), "-t", "-c", str(tmp_path / "nats.conf")]
    result = subprocess.run(
        check, capture_output=True, text=True, env={"SERVER_NAME": "nats-0"}, check=False
    )
    assert result.returncode == 0, result.stderr
    (tmp_path / "nats-auth.conf").write_text("authorization {")
    broken_auth = subprocess.run(
        check, capture_output=True, text=True, env={"SERVER_NAME": "nats-0"}, check=False
    )
    assert broken_auth.returncode != 0
    (tmp_path / "nats-auth.conf").write_text(credentials.server_config.read_text())
    (pki / "tls.key").unlink()
    broken = subprocess.run(
        check, capture_output=True, text=True, env={"SERVER_NAME": "nats-0"}, check=False
    )
    assert broken.returncode != 0


async def test_services_reach_nats_only_over_verified_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "tls")
    config = tmp_path / "tls.conf"
    config.write_text(client_tls_block().replace(TLS_DIR, f"{pki}/"))
    server = NatsServer(store_dir=tmp_path / "js", log_path=tmp_path / "nats.log", config=config)
    server.start()
    try:
        url = f"tls://127.0.0.1:{server.port}"
        # As a service configures it: the CA from JHAAS_NATS_CA_FILE, checked at start.
        settings = RuntimeSettings.from_env(
            "request-svc", {"JHAAS_NATS_URL": url, "JHAAS_NATS_CA_FILE": str(pki / "ca.crt")}
        )
        assert settings.nats_ca_file == pki / "ca.crt"
        async with asyncio.timeout(30):  # a hang guard, not a timing claim
            nc = await connect(settings.nats_url, "request-svc", None, settings.nats_ca_file)
            try:
                await nc.publish("ping", b"x")
                await nc.flush()
                assert nc.is_connected
            finally:
                await nc.close()

        # Another CA's certificate is not trusted, and nothing speaks plain TCP to it
        # (the server requires TLS; the client's default trust has no such CA): the
        # service keeps retrying, saying why, and never gets a connection.
        other = make_pki(tmp_path / "other", "other")
        for attempt in (
            connect(url, "request-svc", None, other / "ca.crt"),
            connect(f"nats://127.0.0.1:{server.port}", "request-svc"),
        ):
            said: list[str] = []
            trying = asyncio.create_task(attempt)

            async def refused(said: list[str] = said) -> bool:
                said.append(capsys.readouterr().out)
                return "CERTIFICATE_VERIFY_FAILED" in "".join(said)

            await eventually(refused, timeout=60)
            assert not trying.done()
            trying.cancel()
            await asyncio.gather(trying, return_exceptions=True)
    finally:
        server.stop()


def test_every_service_verifies_nats_with_the_mounted_ca() -> None:
    data = config_data()
    assert all(url.startswith("tls://") for url in data["JHAAS_NATS_URL"].split(","))
    assert data["JHAAS_NATS_CA_FILE"] == "/var/run/secrets/jhaas/nats-ca/ca.crt"


def test_a_missing_or_wrong_ca_file_stops_the_service_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="JHAAS_NATS_CA_FILE: cannot read"):
        RuntimeSettings.from_env("request-svc", {"JHAAS_NATS_CA_FILE": str(tmp_path / "none")})
    (tmp_path / "ca.crt").write_text("not a certificate")
    with pytest.raises(SettingsError, match="holds no PEM certificate"):
        RuntimeSettings.from_env("request-svc", {"JHAAS_NATS_CA_FILE": str(tmp_path / "ca.crt")})
