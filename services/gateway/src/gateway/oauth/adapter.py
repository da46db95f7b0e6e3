"""Authlib's authorization server on Litestar: no integration ships, so this is it.

Authlib wants a request with `.payload` (query and form together), `.form`
(it reads `code_verifier` and `client_secret` there), case-insensitive
`.headers` (HTTP Basic client authentication), and a URI that it checks for
https. The URI is built from the gateway's public URL, which the settings
allow only as https or loopback, so no AUTHLIB_INSECURE_TRANSPORT is needed
behind a TLS-terminating ingress.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Payload, OAuth2Request

from gateway.oauth.exchange import Exchange
from gateway.oauth.grants import (
    HubClient,
    HubCodeGrant,
    HubOpenIDCode,
    RequireS256,
    bearer_token,
    token_record,
)
from gateway.oauth.store import add_token

Pairs = list[tuple[str, str]]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Pairs) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._data.setdefault(name, value)
            self._datalist[name].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class LitestarOAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], query: Pairs, form: Pairs
    ) -> None:
        # Litestar's Headers: Authlib looks up "Authorization" in any case.
        super().__init__(method=method, uri=uri, headers=headers)
        self._query = dict(reversed(query))
        self._form = dict(reversed(form))  # the first of repeated names, as in `data`
        self.payload = _Payload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass(frozen=True)
class OAuthAnswer:
    """What Authlib answered: turned into a Litestar response on the event loop."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


class HubAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """One per request: it knows the one client the request named (looked up
    over the bus before Authlib runs) and the request's Exchange."""

    def __init__(self, exchange: Exchange, client: HubClient | None) -> None:
        super().__init__()
        self.exchange = exchange
        self._client = client
        self.register_token_generator("default", bearer_token(exchange))
        self.register_grant(HubCodeGrant, [RequireS256(), HubOpenIDCode(exchange)])

    def query_client(self, client_id: str) -> HubClient | None:
        if self._client is not None and client_id == self._client.get_client_id():
            return self._client
        return None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        record = token_record(self.exchange, token, request)
        self.exchange.wait(self.exchange.db.write(add_token, record))

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def handle_error_response(self, request: Any, error: Any) -> OAuthAnswer:
        if error.error == "invalid_client":
            # Whichever way the client authenticated: 401, so a client
            # library reports a wrong secret as such (RFC 6749, 5.2 allows it).
            error.status_code = 401
        return super().handle_error_response(request, error)  # type: ignore[no-any-return]

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthAnswer:
        return OAuthAnswer(status, body, dict(headers))
