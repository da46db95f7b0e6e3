"""The ID tokens' signing keys: RS256, kept in the gateway's database, rotating.

The private key is stored sealed (AES-GCM under a key derived from the
gateway's secret, the key id as associated data), so a database dump alone
cannot sign tokens. A key signs until it is `rotate_after` old; then a new key
(next generation) takes over, and the old public key stays in the JWKS until
every ID token it signed has expired. Replicas agree through the database:
the generation is unique, so two rotating at once store one key.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import KeyParameters, RSAKey

from gateway.oauth.store import KeyRecord, add_signing_key, signing_keys
from jhaas_runtime.db import Database
from jhaas_runtime.logs import get_logger

log = get_logger(__name__)

ALGORITHM = "RS256"  # OpenID Connect Discovery: every provider offers RS256
RSA_BITS = 2048
_SEAL_INFO = b"jhaas-gateway oauth signing key seal v1"


class KeySeal:
    """AES-GCM under a key derived from the gateway's secret; `info` separates the
    uses, so a value sealed for one can never be opened as another's."""

    def __init__(self, secret: bytes, info: bytes = _SEAL_INFO) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
        self._aead = AESGCM(key)

    def seal(self, kid: str, plain: bytes) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, plain, kid.encode())
        return base64.urlsafe_b64encode(sealed).decode()

    def open(self, kid: str, sealed: str) -> bytes:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return self._aead.decrypt(raw[:12], raw[12:], kid.encode())


class Keyring:
    def __init__(
        self,
        db: Database,
        secret: bytes,
        *,
        rotate_after: timedelta,
        published_for: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._seal = KeySeal(secret)
        self.rotate_after = rotate_after
        self.published_for = published_for
        self._clock = clock
        self._opened: dict[str, RSAKey] = {}

    async def signing_key(self) -> RSAKey:
        """The key to sign with now: the newest, made first when it is due.

        Read from the database each time: another replica may have rotated.
        """
        keys = await self._db.read(signing_keys)
        now = self._clock()
        if keys and keys[0].created_at + self.rotate_after > now:
            opened = self._open(keys[0])
            if opened is not None:
                return opened
        generation = keys[0].generation + 1 if keys else 1
        record, key = self._new_key(generation, now)
        if await self._db.write(add_signing_key, record, self.published_for):
            log.info("oauth signing key rotated", kid=record.kid, generation=generation)
            self._opened[record.kid] = key
            return key
        return await self.signing_key()  # another replica rotated first: use theirs

    async def jwks(self) -> dict[str, Any]:
        """The public keys that may still verify an unexpired ID token."""
        keys = await self._db.read(signing_keys)
        now = self._clock()
        published = [
            json.loads(key.public_jwk)
            for key in keys
            if key.retired_at is None or key.retired_at + self.published_for > now
        ]
        return {"keys": published}

    def _open(self, record: KeyRecord) -> RSAKey | None:
        key = self._opened.get(record.kid)
        if key is not None:
            return key
        try:
            pem = self._seal.open(record.kid, record.sealed_private_key)
        except (InvalidTag, ValueError):
            # The gateway's secret changed: the key cannot sign any more. A new
            # one is made; the old stays published until its tokens expired.
            log.warning("oauth signing key cannot be opened; making a new one", kid=record.kid)
            return None
        key = RSAKey.import_key(pem, _parameters(record.kid))
        self._opened[record.kid] = key
        return key

    def _new_key(self, generation: int, now: datetime) -> tuple[KeyRecord, RSAKey]:
        kid = secrets.token_urlsafe(12)
        key = RSAKey.generate_key(RSA_BITS, parameters=_parameters(kid))
        record = KeyRecord(
            kid=kid,
            generation=generation,
            public_jwk=json.dumps(key.as_dict(private=False), sort_keys=True),
            sealed_private_key=self._seal.seal(kid, key.as_pem(private=True)),
            created_at=now,
            retired_at=None,
        )
        return record, key


def _parameters(kid: str) -> KeyParameters:
    return {"kid": kid, "use": "sig", "alg": ALGORITHM}
