"""The deployer's hub credentials, encrypted at rest.

Each hub has an API token for the deployer (roster sync, checks). The token
must be readable again (a redeploy hands the same one to the hub), so it is
encrypted, not hashed: Fernet (AES-128-CBC with HMAC-SHA256, from
`cryptography`) under a key derived from an operator's secret. Several
secrets may be configured: the first encrypts, every one decrypts, so a key is
rotated by putting the new one first and dropping the old one once no hub
sealed under it is left (hubs live for one course).

Where no secret is configured (the embedded single-machine default), one is
made at first start in `<data dir>/deployer-secret.key` (mode 0600). Deployments
with several replicas or a shared database must configure the secret
(`JHAAS_DEPLOYER_SECRET_KEYS`): each replica would otherwise make its own.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from jhaas_runtime.files import write_private_file

MIN_SECRET_LENGTH = 32
KEY_FILE = "deployer-secret.key"
# Every Fernet token starts so (version byte 0x80, then a timestamp's zero high
# bytes); a token stored in the clear (hex) never does.
SEALED_PREFIX = "gAAAAA"


class CredentialError(RuntimeError):
    """A stored credential cannot be decrypted with any configured key."""


def _fernet(secret: str) -> Fernet:
    # The secrets are long random strings (not passwords), so one SHA-256 is a
    # sound way to turn any of them into the 32 bytes Fernet wants.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


class CredentialBox:
    def __init__(self, secrets_: Sequence[str]) -> None:
        if not secrets_:
            raise ValueError("at least one secret is needed")
        for secret in secrets_:
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"a deployer secret key must be at least {MIN_SECRET_LENGTH} characters "
                    f"(e.g. `openssl rand -hex 32`), got {len(secret)}"
                )
        self._box = MultiFernet([_fernet(s) for s in secrets_])

    @classmethod
    def from_key_file(cls, data_dir: Path) -> CredentialBox:
        """The embedded default: a secret kept in the data folder, made once."""
        path = data_dir / KEY_FILE
        write_private_file(path, secrets.token_hex(32) + "\n")  # kept when it exists
        return cls([path.read_text().strip()])

    def seal(self, plaintext: str) -> str:
        return self._box.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._box.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise CredentialError(
                "a stored hub credential cannot be decrypted with any configured key "
                "(JHAAS_DEPLOYER_SECRET_KEYS changed without keeping the old key?)"
            ) from None
