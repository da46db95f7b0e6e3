"""The interface every hub backend implements, and the values it exchanges.

The deployer's schedule calls these; a backend never touches the deployer's
database or publishes events. Every call is idempotent: deploying a hub that
already runs converges it to the spec, tearing down one that is gone returns
a record of nothing left.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from jhaas_schemas.model import DeletionRecord, HubSpec


class HubPhase(enum.StrEnum):
    ABSENT = "absent"  # nothing of this hub exists
    STARTING = "starting"  # objects/processes exist, the hub does not answer yet
    READY = "ready"  # the hub's API answers
    FAILED = "failed"  # it exists but cannot become ready without help


@dataclass(frozen=True, kw_only=True)
class OAuthClient:
    """How the hub signs people in against the gateway (generic OAuth2/OIDC)."""

    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    userdata_url: str
    # Who may sign in is not listed here: the hub lets in the users that exist
    # in it (`allow_existing_users`), which roster sync keeps to the roster.


def oauth_callback_url(hub_url: str) -> str:
    """Where the gateway sends a hub's users back: the hub's config and the
    registration the gateway matches exactly (character for character) both use this."""
    return hub_url.rstrip("/") + "/hub/oauth_callback"


@dataclass(frozen=True, kw_only=True)
class HubDeployment:
    """Everything a backend needs to build one course's hub."""

    deployment_id: str
    request_id: str
    slug: str  # DNS-safe; names the namespace / data folder and the URL
    configuration: HubSpec  # the approved configuration
    api_token: str  # the deployer's own token for the hub's REST API (a secret)
    oauth: OAuthClient | None = None  # None: no sign-in yet (API token only)


@dataclass(frozen=True, kw_only=True)
class HubStatus:
    phase: HubPhase
    url: str | None = None  # where people reach the hub, once known
    api_url: str | None = None  # the hub's REST API (…/hub/api)
    detail: str = ""
    # What the hub cannot do on this host, in words for the leader (HubReady.warnings).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Roster:
    """Who may use the hub now, by hub username (`jhaas_schemas.hubnames`).

    The leader and tutors are the course's staff: they may see, start, stop and
    enter the participants' servers (a scoped hub role, never hub admin).
    """

    leader: str
    tutors: frozenset[str] = field(default_factory=frozenset)
    participants: frozenset[str] = field(default_factory=frozenset)

    @property
    def staff(self) -> frozenset[str]:
        return frozenset({self.leader, *self.tutors})

    @property
    def everyone(self) -> frozenset[str]:
        return self.staff | self.participants


class BackendError(Exception):
    """A backend could not do what it was asked; `temporary` says whether a retry may help.

    The message is for the operator (the deployer's log) and may name objects,
    accounts and API answers; `reason` is what the course's leader and the event
    subscribers are told, in words, without internals (default: the message,
    for backends whose messages are already that).
    """

    def __init__(self, message: str, *, temporary: bool, reason: str | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.reason = reason if reason is not None else message


class HubBackend(Protocol):
    name: str

    async def deploy(self, hub: HubDeployment) -> HubStatus:
        """Create or converge the hub; return once it answers (READY) or raise BackendError."""
        ...

    async def status(self, deployment_id: str) -> HubStatus: ...

    async def sync_roster(self, deployment_id: str, roster: Roster) -> None:
        """Make the hub's users exactly the roster, in their groups (`hub_roles`)."""
        ...

    async def teardown(self, deployment_id: str) -> DeletionRecord:
        """Delete the hub and all its data; return once nothing of it is left."""
        ...

    async def list_managed(self) -> list[str]:
        """The deployment ids of every hub this backend has (for reconciliation)."""
        ...

    async def close(self) -> None:
        """Release the backend's own resources (not the hubs)."""
        ...
