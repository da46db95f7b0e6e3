"""A provider's discovery document and signing keys, fetched and kept.

The document is refreshed after `ttl`; a refresh that fails keeps the last good
one, so a provider's brief outage does not stop sign-ins that need only its
cached document. The keys are fetched again when a token names a `kid` that is
not among them (the provider rotated), once for all the callers waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from gateway.identity.config import ProviderConfig
from gateway.identity.errors import ProviderUnavailable
from gateway.identity.urls import endpoint_problem
from jhaas_runtime.logs import get_logger

log = get_logger(__name__)

# Public-key algorithms only: `none` signs nothing, and an HS* token is checked
# with a shared secret (a confused verifier would take the public key as one).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_DOCUMENT_BYTES = 512 * 1024
RETRY_SECONDS = 60.0  # after a failed refresh of the discovery document


class ProviderMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of OpenID Connect Discovery 1.0 the gateway uses; the rest is ignored."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    id_token_signing_alg_values_supported: list[str] = []
    # Discovery's default when absent (OpenID Connect Discovery 1.0, 3).
    token_endpoint_auth_methods_supported: list[str] = msgspec.field(
        default_factory=lambda: ["client_secret_basic"]
    )
    code_challenge_methods_supported: list[str] | None = None
    authorization_response_iss_parameter_supported: bool = False

    @property
    def signing_algorithms(self) -> frozenset[str]:
        return ASYMMETRIC_ALGORITHMS.intersection(self.id_token_signing_alg_values_supported)


class ProviderDirectory:
    """One provider's discovery document and keys, for every sign-in through it."""

    def __init__(
        self,
        config: ProviderConfig,
        http: httpx.AsyncClient,
        *,
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._http = http
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._metadata: ProviderMetadata | None = None
        self._fetched_at = 0.0
        self._keys: KeySet | None = None
        self._key_generation = 0  # counts fetches of the key set
        # Two locks: a key refresh may have to fetch the document first.
        self._metadata_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is not None and self._monotonic() - self._fetched_at < self._ttl:
            return self._metadata
        async with self._metadata_lock:
            if self._metadata is not None and self._monotonic() - self._fetched_at < self._ttl:
                return self._metadata
            try:
                self._metadata = await self._discover()
                self._fetched_at = self._monotonic()
            except ProviderUnavailable:
                if self._metadata is None:
                    raise
                log.warning("keeping the provider's last discovery document", provider=self.name)
                # Asked again in a minute, not after a whole TTL.
                self._fetched_at = self._monotonic() - self._ttl + min(RETRY_SECONDS, self._ttl)
            return self._metadata

    async def signing_key(self, kid: str | None) -> Key | None:
        """The published key named `kid`, fetching the set again once when it is unknown."""
        generation = self._key_generation
        key = self._find(kid)
        if key is not None:
            return key
        async with self._keys_lock:
            if self._key_generation == generation:  # nobody refreshed while we waited
                self._keys = await self._fetch_keys()
                self._key_generation += 1
        return self._find(kid)

    @property
    def name(self) -> str:
        return self.config.name

    def _find(self, kid: str | None) -> Key | None:
        if self._keys is None:
            return None
        keys = [key for key in self._keys.keys if kid is None or key.kid == kid]
        # Without a kid the choice is unambiguous only when the provider has one key.
        return keys[0] if len(keys) == 1 else None

    async def _discover(self) -> ProviderMetadata:
        issuer = self.config.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self.get_json(url, "its discovery document")
        try:
            metadata = msgspec.convert(document, ProviderMetadata)
        except msgspec.ValidationError as exc:
            raise self.unusable(f"its discovery document is not usable: {exc}") from None
        problem = metadata_problem(metadata, issuer)
        if problem:
            raise self.unusable(f"its discovery document {problem}")
        return metadata

    async def _fetch_keys(self) -> KeySet:
        metadata = await self.metadata()
        document = await self.get_json(metadata.jwks_uri, "its signing keys")
        try:
            published = [key for key in document["keys"] if key.get("use", "sig") == "sig"]
            return KeySet.import_key_set({"keys": published})
        except (JoseError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise self.unusable(f"its signing keys (jwks_uri) are not usable: {exc}") from None

    async def get_json(
        self, url: str, what: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                body = await read_capped(response)
        except httpx.HTTPError as exc:
            raise self.unusable(f"did not answer for {what} ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise self.unusable(f"answered {response.status_code} for {what}")
        return self.json_object(body, what)

    def json_object(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise self.unusable(f"sent {what} that is not JSON") from None
        if not isinstance(document, dict):
            raise self.unusable(f"sent {what} that is not a JSON object")
        return document

    def unusable(self, problem: str) -> ProviderUnavailable:
        log.warning("identity provider unusable", provider=self.name, problem=problem)
        return ProviderUnavailable(f"{self.config.display_name} {problem}; try again later")


def metadata_problem(metadata: ProviderMetadata, issuer: str) -> str | None:
    if metadata.issuer != issuer:
        # OpenID Connect Discovery 4.3: else another issuer's tokens would pass as this one's.
        return f"names the issuer {metadata.issuer[:200]!r}, not {issuer!r}"
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        url = getattr(metadata, field)
        problem = url is not None and endpoint_problem(url)
        if problem:
            return f"has a {field} that {problem}"
    if not metadata.signing_algorithms:
        return "announces no public-key algorithm for ID tokens"
    methods = metadata.code_challenge_methods_supported
    if methods is not None and "S256" not in methods:
        return "does not support PKCE with S256"
    if not {"client_secret_basic", "client_secret_post"} & set(
        metadata.token_endpoint_auth_methods_supported
    ):
        return "supports neither client_secret_basic nor client_secret_post"
    return None


async def read_capped(response: httpx.Response) -> bytes:
    """The body, refusing one beyond MAX_DOCUMENT_BYTES (a provider's documents are small)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise httpx.DecodingError("the answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)
