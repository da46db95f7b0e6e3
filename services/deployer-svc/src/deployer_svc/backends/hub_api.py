"""Roster sync through a hub's REST API, the same for every backend: the hub's
users become exactly the roster, each in their group (`hub_roles`).

Written against JupyterHub 5/6: deleting a user whose server runs makes the
hub stop it within the request, but a slow stop answers 400 ("in the process
of stopping") and leaves the user; so a leaver's server is stopped first
(DELETE /users/{name}/server, 202 while it stops), waited for, then the user
is deleted. Every step is idempotent: a sync cut short is finished by the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from deployer_svc.backends.base import BackendError, Roster
from deployer_svc.backends.hub_roles import PARTICIPANT_GROUP, STAFF_GROUP

PAGE = 200
STOP_WAIT_SECONDS = 60.0  # a server's stop, longer than JupyterHub's slow_stop_timeout
STOP_POLL_SECONDS = 0.2
PARALLEL_REMOVALS = 8


@dataclass(frozen=True)
class HubUser:
    groups: frozenset[str]


def _path(user: str) -> str:
    return f"/users/{quote(user, safe='')}"


def wanted_groups(roster: Roster) -> dict[str, frozenset[str]]:
    """Each group's members: staff wins over a participation of the same person."""
    return {
        STAFF_GROUP: roster.staff,
        PARTICIPANT_GROUP: roster.participants - roster.staff,
    }


async def sync_hub_users(deployment_id: str, base_url: str, token: str, roster: Roster) -> None:
    """Remove (servers first) the users not on the roster, create its missing
    ones, set both groups' members. 5xx, 429, a server still stopping and an
    unreachable hub are temporary errors."""
    try:
        async with httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"token {token}"},
            timeout=30.0,
        ) as client:
            existing = await _hub_users(client)
            # Leavers first: their access ends before anything else is done.
            leavers = sorted(set(existing) - roster.everyone)
            limit = asyncio.Semaphore(PARALLEL_REMOVALS)

            async def remove(user: str) -> None:
                async with limit:
                    await _remove_user(client, user)

            await asyncio.gather(*(remove(user) for user in leavers))
            missing = sorted(roster.everyone - set(existing))
            if missing:
                created = await client.post("/users", json={"usernames": missing})
                # 409: someone created them meanwhile, which is what we want.
                if created.status_code not in (201, 409):
                    _hub_error(created, "create users")
            staying = {name: user for name, user in existing.items() if name in roster.everyone}
            await _set_groups(client, staying, wanted_groups(roster))
    except httpx.HTTPError as exc:
        raise BackendError(
            f"hub {deployment_id} API unreachable: {type(exc).__name__}", temporary=True
        ) from exc


async def _set_groups(
    client: httpx.AsyncClient, existing: Mapping[str, HubUser], wanted: dict[str, frozenset[str]]
) -> None:
    for group, members in wanted.items():
        current = {name for name, user in existing.items() if group in user.groups}
        path = f"/groups/{quote(group, safe='')}/users"
        add = sorted(members - current)
        if add:
            added = await client.post(path, json={"users": add})
            if added.status_code != 200:
                _hub_error(added, f"add users to group {group}")
        # (Leavers are deleted already and not in `existing`.)
        drop = sorted(current - members)
        if drop:
            dropped = await client.request("DELETE", path, json={"users": drop})
            if dropped.status_code != 200:
                _hub_error(dropped, f"remove users from group {group}")


async def _remove_user(client: httpx.AsyncClient, user: str) -> None:
    stopped = await client.delete(f"{_path(user)}/server")
    if stopped.status_code == 202:
        await _wait_stopped(client, user)
    elif stopped.status_code not in (204, 404):
        _hub_error(stopped, f"stop the server of {user}")
    gone = await client.delete(_path(user))
    if gone.status_code not in (204, 404):
        _hub_error(gone, f"delete user {user}")


async def _wait_stopped(client: httpx.AsyncClient, user: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_WAIT_SECONDS
    while loop.time() < deadline:
        found = await client.get(_path(user))
        if found.status_code == 404:
            return
        if found.status_code != 200:
            _hub_error(found, f"read user {user}")
        model: dict[str, Any] = found.json()
        if not model.get("server") and not model.get("pending"):
            return
        await asyncio.sleep(STOP_POLL_SECONDS)
    raise BackendError(f"the server of hub user {user} is still stopping", temporary=True)


async def _hub_users(client: httpx.AsyncClient) -> dict[str, HubUser]:
    """Every user of the hub and their groups (paging through the API)."""
    users: dict[str, HubUser] = {}
    offset = 0
    while True:
        page = await client.get("/users", params={"offset": offset, "limit": PAGE})
        if page.status_code != 200:
            _hub_error(page, "list users")
        items: list[dict[str, Any]] = page.json()
        for item in items:
            users[str(item["name"])] = HubUser(groups=frozenset(item.get("groups") or ()))
        if len(items) < PAGE:
            return users
        offset += len(items)


def _hub_error(response: httpx.Response, what: str) -> None:
    # 400 from a user's delete or stop means "still stopping, please wait".
    temporary = response.status_code >= 500 or response.status_code in (400, 429)
    raise BackendError(
        f"hub API could not {what}: HTTP {response.status_code} {response.text[:200]}",
        temporary=temporary,
    )
