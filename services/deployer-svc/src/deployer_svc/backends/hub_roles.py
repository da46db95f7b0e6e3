"""Who signs in to a course hub and what they may do there: the same for every backend.

The leader and tutors are the course's staff (hub group `course-staff`), the
accepted participants are in `course-participants`. The staff's hub role lets
them see, start, stop and enter the participants' servers, scoped to that
group: never hub admin, so a tutor cannot touch the hub, the services or one
another. Nobody at all is hub admin: the admin role is listed with empty
member lists, which JupyterHub treats as authoritative and so strips the
admin flag from anyone an older configuration (or a hand edit) gave it.
The deployer's service holds only what roster sync needs.
"""

from __future__ import annotations

from typing import Any

from deployer_svc.backends.base import OAuthClient, oauth_callback_url

STAFF_GROUP = "course-staff"
PARTICIPANT_GROUP = "course-participants"
STAFF_ROLE = "course-staff"
_OF_PARTICIPANTS = f"!group={PARTICIPANT_GROUP}"
STAFF_SCOPES = tuple(
    f"{scope}{_OF_PARTICIPANTS}"
    for scope in (
        "admin:servers",
        "access:servers",
        "read:users",
        "list:users",
        "read:servers",
    )
)
# Roster sync: create and delete users, stop their servers (and see them
# running), put users in the two groups.
DEPLOYER_SCOPES = (
    "admin:users",
    "admin:servers",
    "admin:groups",
    "list:users",
    "read:users",
    "read:servers",
    "list:groups",
    "read:groups",
)
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")


def hub_groups() -> dict[str, dict[str, Any]]:
    """`JupyterHub.load_groups`: both groups exist from the hub's first start (the
    staff role names one); their members are the deployer's to set."""
    return {STAFF_GROUP: {}, PARTICIPANT_GROUP: {}}


def hub_roles(*, deployer_service: str, culler_service: str) -> list[dict[str, Any]]:
    """`JupyterHub.load_roles`."""
    return [
        {"name": deployer_service, "scopes": list(DEPLOYER_SCOPES), "services": [deployer_service]},
        {"name": culler_service, "scopes": list(CULLER_SCOPES), "services": [culler_service]},
        {"name": STAFF_ROLE, "scopes": list(STAFF_SCOPES), "groups": [STAFF_GROUP]},
        {"name": "admin", "users": [], "services": []},
    ]


def oauth_traits(oauth: OAuthClient, secret: object, public_url: str) -> dict[str, Any]:
    """`GenericOAuthenticator` against the gateway; `secret` is the marker (file or
    environment variable) the client secret is read from, never the value."""
    return {
        "client_id": oauth.client_id,
        "client_secret": secret,
        "authorize_url": oauth.authorize_url,
        "token_url": oauth.token_url,
        "userdata_url": oauth.userdata_url,
        "oauth_callback_url": oauth_callback_url(public_url),
        # The gateway's userinfo names the person by their hub username
        # (jhaas_schemas.hubnames), the name roster sync creates.
        "username_claim": "preferred_username",
        "scope": ["openid", "profile"],
        "enable_pkce": True,  # the default, stated: the gateway refuses a client without S256
        # The hub's sign-in button names the product (else "Sign in with OAuth 2.0").
        "login_service": "JHaaS",
    }


def sign_in_traits() -> dict[str, Any]:
    """`Authenticator`: exactly the users roster sync created may sign in (a removed
    one is deleted, so refused), whatever the gateway says about anyone else."""
    return {"allow_existing_users": True, "allow_all": False}
