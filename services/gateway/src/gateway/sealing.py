"""Secrets kept in the gateway's database, sealed: AES-GCM under a key derived
from the gateway's secret.

Each use derives its own key (`purpose`), and each sealed value names what it
belongs to as associated data (a key id, a user id): a database dump alone
opens nothing, and a sealed value copied to another row or another use does
not open there either.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class SealBroken(Exception):
    """The value was not sealed for this purpose and owner, or under another secret."""


class Seal:
    def __init__(self, secret: bytes, purpose: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
        self._aead = AESGCM(key)

    def seal(self, owner: str, plain: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plain, owner.encode())
        return base64.urlsafe_b64encode(sealed).decode()

    def open(self, owner: str, sealed: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise SealBroken from None
