"""Roster sync through a hub's REST API, the same for every backend: the hub's
users become exactly the roster, and the leader is an admin of the hub."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from deployer_svc.backends.base import BackendError, Roster

PAGE = 200


async def sync_hub_users(deployment_id: str, base_url: str, token: str, roster: Roster) -> None:
    """Create the roster's missing users, delete users not on it, make the leader
    an admin. 5xx, 429 and an unreachable hub are temporary errors."""
    wanted = {roster.leader, *roster.participants}
    try:
        async with httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"token {token}"},
            timeout=30.0,
        ) as client:
            existing = await _hub_users(client)
            missing = sorted(wanted - set(existing))
            if missing:
                created = await client.post("/users", json={"usernames": missing})
                # 409: someone created them meanwhile, which is what we want.
                if created.status_code not in (201, 409):
                    _hub_error(created, "create users")
            for user in sorted(set(existing) - wanted):
                gone = await client.delete(f"/users/{quote(user, safe='')}")
                if gone.status_code not in (204, 404):
                    _hub_error(gone, f"delete user {user}")
            if not existing.get(roster.leader, False):
                admin = await client.patch(
                    f"/users/{quote(roster.leader, safe='')}", json={"admin": True}
                )
                if admin.status_code != 200:
                    _hub_error(admin, f"make {roster.leader} admin")
    except httpx.HTTPError as exc:
        raise BackendError(
            f"hub {deployment_id} API unreachable: {type(exc).__name__}", temporary=True
        ) from exc


async def _hub_users(client: httpx.AsyncClient) -> dict[str, bool]:
    """Every user of the hub and whether they are admin (paging through the API)."""
    users: dict[str, bool] = {}
    offset = 0
    while True:
        page = await client.get("/users", params={"offset": offset, "limit": PAGE})
        if page.status_code != 200:
            _hub_error(page, "list users")
        items: list[dict[str, Any]] = page.json()
        for item in items:
            users[str(item["name"])] = bool(item.get("admin", False))
        if len(items) < PAGE:
            return users
        offset += len(items)


def _hub_error(response: httpx.Response, what: str) -> None:
    temporary = response.status_code >= 500 or response.status_code == 429
    raise BackendError(
        f"hub API could not {what}: HTTP {response.status_code} {response.text[:200]}",
        temporary=temporary,
    )
