"""The identity providers the operator configured: one JSON or TOML file, checked at start.

    JHAAS_OIDC_PROVIDERS_FILE=/etc/jhaas/providers.toml

    [[providers]]
    name = "uni"                       # in URLs: /signin/oidc/uni
    display_name = "University SSO"
    issuer = "https://login.uni.example"
    client_id = "jhaas"
    client_secret_file = "/run/secrets/uni-oidc"   # or client_secret = "..."
    scopes = ["openid", "email", "profile", "groups"]
    [[providers.roles]]
    group = "jhaas-leaders"            # or entitlement = "urn:...", or email_domain = "uni.example"
    roles = ["leader"]

A file that breaks a rule stops the gateway with the rule named: a provider
that half works would only show up when someone fails to sign in.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec

from gateway.identity.urls import endpoint_problem
from jhaas_schemas.model import Role, single_line

PROVIDER_NAME = r"^[a-z0-9][a-z0-9-]*$(?!\n)"
ProviderName = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=PROVIDER_NAME)]
Text = Annotated[str, single_line(min_length=1, max_length=200)]
ClaimName = Annotated[str, single_line(min_length=1, max_length=100)]
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
Scope = Annotated[str, msgspec.Meta(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$", max_length=100)]
DEFAULT_SCOPES = ("openid", "email", "profile")
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class ProvidersFileError(ValueError):
    """The providers file cannot be used; the message names the problem."""


class RoleRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One condition on the claims and the roles it gives."""

    roles: Annotated[list[Role], msgspec.Meta(min_length=1)]
    group: Text | None = None  # the groups claim contains this value
    entitlement: Text | None = None  # the entitlement claim contains this value
    email_domain: Text | None = None  # a verified e-mail address in this domain

    def __post_init__(self) -> None:
        conditions = [self.group, self.entitlement, self.email_domain]
        if sum(condition is not None for condition in conditions) != 1:
            raise ValueError("a role rule needs exactly one of group, entitlement, email_domain")


class ProviderEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: ProviderName
    display_name: Text
    issuer: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    client_id: Text
    client_secret: Secret | None = None
    client_secret_file: Text | None = None
    scopes: list[Scope] = msgspec.field(default_factory=lambda: list(DEFAULT_SCOPES))
    roles: list[RoleRule] = []
    groups_claim: ClaimName = "groups"
    entitlement_claim: ClaimName = "eduPersonEntitlement"


class ProvidersFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    providers: list[ProviderEntry]


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    """A provider as the gateway uses it: the secret read, the rules checked."""

    name: str
    display_name: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    roles: tuple[RoleRule, ...]
    groups_claim: str = "groups"
    entitlement_claim: str = "eduPersonEntitlement"


def load_providers(path: Path) -> tuple[ProviderConfig, ...]:
    """The providers in `path` (.toml, else JSON), or ProvidersFileError naming the problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProvidersFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
        parsed = msgspec.convert(data, ProvidersFile)
    except (ValueError, msgspec.ValidationError) as exc:  # JSON, TOML, UTF-8 and schema errors
        raise ProvidersFileError(f"{path}: {exc}") from None
    configs = tuple(_resolve(entry, path.parent) for entry in parsed.providers)
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ProvidersFileError(f"{path}: provider names must be unique: {duplicates}")
    return configs


def _resolve(entry: ProviderEntry, base: Path) -> ProviderConfig:
    where = f"provider {entry.name!r}"
    problem = endpoint_problem(entry.issuer)
    if problem:
        raise ProvidersFileError(f"{where}: issuer {problem}")
    if "openid" not in entry.scopes:
        raise ProvidersFileError(f"{where}: scopes must include 'openid'")
    return ProviderConfig(
        name=entry.name,
        display_name=entry.display_name,
        issuer=entry.issuer,
        client_id=entry.client_id,
        client_secret=_client_secret(entry, base, where),
        scopes=tuple(dict.fromkeys(entry.scopes)),
        roles=tuple(entry.roles),
        groups_claim=entry.groups_claim,
        entitlement_claim=entry.entitlement_claim,
    )


def _client_secret(entry: ProviderEntry, base: Path, where: str) -> str:
    if (entry.client_secret is None) == (entry.client_secret_file is None):
        raise ProvidersFileError(f"{where}: give exactly one of client_secret, client_secret_file")
    if entry.client_secret is not None:
        return entry.client_secret
    path = base / str(entry.client_secret_file)  # a relative path is beside the providers file
    try:
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvidersFileError(f"{where}: cannot read client_secret_file {path}: {exc}") from None
    if not secret:
        raise ProvidersFileError(f"{where}: client_secret_file {path} is empty")
    return secret
