"""The providers file, the role mapping and the usernames made from claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.identity.config import ProviderConfig, ProvidersFileError, RoleRule, load_providers
from gateway.identity.roles import mapped_roles, numbered, username_candidates
from gateway.settings import GatewaySettings, SettingsError
from jhaas_schemas.model import Role

pytestmark = pytest.mark.unit

TOML = """
[[providers]]
name = "uni"
display_name = "University SSO"
issuer = "https://login.uni.example"
client_id = "jhaas"
client_secret_file = "uni.secret"
scopes = ["openid", "email", "groups"]
[[providers.roles]]
group = "jhaas-leaders"
roles = ["leader"]
[[providers.roles]]
email_domain = "Uni.Example"
roles = ["participant"]

[[providers]]
name = "social"
display_name = "Social login"
issuer = "http://127.0.0.1:9999"
client_id = "jhaas"
client_secret = "s3cret"
"""


def write(tmp_path: Path, text: str, name: str = "providers.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_toml_file_with_two_providers(tmp_path: Path) -> None:
    (tmp_path / "uni.secret").write_text("from the file\n")

    uni, social = load_providers(write(tmp_path, TOML))

    assert uni.name == "uni" and uni.client_secret == "from the file"
    assert uni.scopes == ("openid", "email", "groups")
    assert uni.roles[0] == RoleRule(roles=[Role.LEADER], group="jhaas-leaders")
    assert social.scopes == ("openid", "email", "profile")  # the default
    assert "s3cret" not in repr(social)  # never in a log line


def test_a_json_file(tmp_path: Path) -> None:
    provider = {
        "name": "uni",
        "display_name": "Uni",
        "issuer": "https://login.uni.example",
        "client_id": "jhaas",
        "client_secret": "s",
    }
    path = write(tmp_path, json.dumps({"providers": [provider]}), "p.json")

    assert load_providers(path)[0].issuer == "https://login.uni.example"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('name = "uni"', "provider names must be unique"),
        ('issuer = "http://login.uni.example"', "must use https://"),
        ('scopes = ["email"]', "scopes must include 'openid'"),
        ('client_secret_file = "uni.secret"', "exactly one of client_secret, client_secret_file"),
        ('name = "Not A Slug"', "name"),
        ('color = "blue"', "unknown field"),
        ('roles = [{roles = ["leader"]}]', "exactly one of group, entitlement, email_domain"),
        ('roles = [{group = "g", email_domain = "d", roles = ["leader"]}]', "exactly one of"),
        ('roles = [{group = "g", roles = ["king"]}]', "roles"),
        ('roles = [{group = "g", roles = []}]', "roles"),
    ],
)
def test_a_file_breaking_a_rule_names_it(tmp_path: Path, change: str, problem: str) -> None:
    (tmp_path / "uni.secret").write_text("x")
    # The change goes into the second provider, "social", replacing its line of that key.
    key = change.split(" = ")[0]
    head, social = TOML.split('name = "social"')
    lines = [line for line in social.splitlines() if not line.startswith(f"{key} =")]
    text = head + ('name = "social"' if key != "name" else "") + "\n".join([*lines, change])

    with pytest.raises(ProvidersFileError, match=problem):
        load_providers(write(tmp_path, text))


def test_a_missing_secret_file_or_providers_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProvidersFileError, match=r"uni\.secret"):
        load_providers(write(tmp_path, TOML))
    with pytest.raises(ProvidersFileError, match="cannot read"):
        load_providers(tmp_path / "nowhere.toml")


def test_the_setting_names_the_variable(tmp_path: Path) -> None:
    env = {"JHAAS_DATA_DIR": str(tmp_path), "JHAAS_OIDC_PROVIDERS_FILE": str(tmp_path / "no.toml")}
    with pytest.raises(SettingsError, match="JHAAS_OIDC_PROVIDERS_FILE"):
        GatewaySettings.from_env(env)

    (tmp_path / "uni.secret").write_text("x")
    env["JHAAS_OIDC_PROVIDERS_FILE"] = str(write(tmp_path, TOML))
    settings = GatewaySettings.from_env(env)
    assert [provider.name for provider in settings.oidc_providers] == ["uni", "social"]
    assert settings.oidc_clock_skew_seconds == 60


def test_the_clock_skew_is_bounded(tmp_path: Path) -> None:
    env = {"JHAAS_DATA_DIR": str(tmp_path), "JHAAS_OIDC_CLOCK_SKEW_SECONDS": "3600"}
    with pytest.raises(SettingsError, match="JHAAS_OIDC_CLOCK_SKEW_SECONDS must be at most 300"):
        GatewaySettings.from_env(env)


def provider(*rules: RoleRule) -> ProviderConfig:
    return ProviderConfig(
        name="uni",
        display_name="Uni",
        issuer="https://login.uni.example",
        client_id="c",
        client_secret="s",
        scopes=("openid",),
        roles=rules,
    )


UNI = provider(
    RoleRule(roles=[Role.LEADER], group="leaders"),
    RoleRule(roles=[Role.GOVERNANCE, Role.LEADER], entitlement="urn:gov"),
    RoleRule(roles=[Role.PARTICIPANT], email_domain="uni.example"),
)


@pytest.mark.parametrize(
    ("claims", "roles"),
    [
        ({"groups": ["leaders"]}, {Role.LEADER}),
        ({"groups": "leaders"}, {Role.LEADER}),  # a lone group, not in a list
        ({"eduPersonEntitlement": ["urn:gov"]}, {Role.GOVERNANCE, Role.LEADER}),
        ({"email": "a@UNI.example", "email_verified": True}, {Role.PARTICIPANT}),
        ({"email": "a@uni.example", "email_verified": "true"}, {Role.PARTICIPANT}),
        ({"email": "a@uni.example"}, set()),  # not verified: typed by anyone
        ({"email": "a@uni.example", "email_verified": False}, set()),
        ({"email": "a@sub.uni.example", "email_verified": True}, set()),
        ({"email": "a@evil.example@uni.example", "email_verified": True}, {Role.PARTICIPANT}),
        ({"groups": ["Leaders", "leaders-x"], "eduPersonEntitlement": "urn:go"}, set()),
        ({"groups": [1, None]}, set()),
        ({}, set()),
    ],
)
def test_rules_give_roles(claims: dict[str, Any], roles: set[Role]) -> None:
    assert mapped_roles(UNI, claims) == roles


def test_other_claim_names_can_be_configured() -> None:
    config = provider(RoleRule(roles=[Role.LEADER], group="staff"))
    renamed = ProviderConfig(**{**config.__dict__, "groups_claim": "memberOf"})

    assert mapped_roles(renamed, {"memberOf": ["staff"]}) == {Role.LEADER}
    assert mapped_roles(renamed, {"groups": ["staff"]}) == set()


@pytest.mark.parametrize(
    ("claims", "first"),
    [
        ({"preferred_username": "Alice", "email": "x@y", "sub": "1"}, "alice"),
        ({"email": "jürgen.müller@uni.example", "sub": "1"}, "jurgen.muller"),
        ({"name": "Ada Lovelace", "sub": "248289761001"}, "ada-lovelace"),
        ({"name": "李", "sub": "248289761001"}, "248289761001"),
        ({"sub": "ab"}, "user"),
        ({"preferred_username": "-_.x_", "sub": "..."}, "user"),
    ],
)
def test_usernames_from_claims(claims: dict[str, Any], first: str) -> None:
    assert next(username_candidates(claims)) == first


def test_numbered_names_stay_within_the_limit() -> None:
    assert numbered("alice", 2) == "alice-2"
    assert len(numbered("a" * 64, 12)) == 64
