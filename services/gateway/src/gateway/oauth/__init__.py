"""The gateway as OAuth2 / OpenID Connect provider of the course hubs."""

from gateway.oauth.provider import revoke_hub_grants

__all__ = ["revoke_hub_grants"]
