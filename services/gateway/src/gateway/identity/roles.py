"""From a provider's claims to JHaaS roles and a username: pure functions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.identity.config import ProviderConfig, RoleRule
from jhaas_schemas.model import Role

USERNAME_MIN, USERNAME_MAX = 3, 64


def mapped_roles(config: ProviderConfig, claims: Mapping[str, Any]) -> frozenset[Role]:
    """Every role a rule of the provider gives for these claims (none: an empty set)."""
    groups = _values(claims.get(config.groups_claim))
    entitlements = _values(claims.get(config.entitlement_claim))
    domain = verified_email_domain(claims)
    roles: set[Role] = set()
    for rule in config.roles:
        if _matches(rule, groups, entitlements, domain):
            roles.update(rule.roles)
    return frozenset(roles)


def verified_email_domain(claims: Mapping[str, Any]) -> str | None:
    """The e-mail's domain, only when the provider vouches for the address.

    An unverified address is whatever the person typed at the provider: a
    domain rule on it would hand out roles to anyone who types the domain.
    """
    email = claims.get("email")
    if claims.get("email_verified") not in (True, "true") or not isinstance(email, str):
        return None
    local, at, domain = email.rpartition("@")
    return domain.lower() if at and local and domain else None


def _values(claim: Any) -> frozenset[str]:
    """A list claim, or one string (some providers send a single group bare)."""
    if isinstance(claim, str):
        return frozenset({claim})
    if isinstance(claim, list):
        return frozenset(value for value in claim if isinstance(value, str))
    return frozenset()


def _matches(
    rule: RoleRule, groups: frozenset[str], entitlements: frozenset[str], domain: str | None
) -> bool:
    if rule.group is not None:
        return rule.group in groups
    if rule.entitlement is not None:
        return rule.entitlement in entitlements
    return (
        domain is not None
        and rule.email_domain is not None
        and (domain == rule.email_domain.lower())
    )


def username_candidates(claims: Mapping[str, Any]) -> Iterator[str]:
    """Usernames to try for a new account, best first, each a valid username.

    From preferred_username, the e-mail's local part, the name, then the
    subject; the caller appends a number while one is taken.
    """
    email = claims.get("email")
    sources = [
        claims.get("preferred_username"),
        email.rpartition("@")[0] if isinstance(email, str) else None,
        claims.get("name"),
        claims.get("sub"),
    ]
    seen: set[str] = set()
    for source in sources:
        name = _as_username(source) if isinstance(source, str) else None
        if name and name not in seen:
            seen.add(name)
            yield name
    if not seen:
        yield "user"


def numbered(name: str, number: int) -> str:
    """`name` with `-number`, still within the length limit."""
    suffix = f"-{number}"
    return name[: USERNAME_MAX - len(suffix)] + suffix


def _as_username(value: str) -> str | None:
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", ascii_text).strip("._-")[:USERNAME_MAX].rstrip("._-")
    if len(name) < USERNAME_MIN:
        return None
    return name
