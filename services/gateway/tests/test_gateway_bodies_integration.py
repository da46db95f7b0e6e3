"""Bodies the gateway must never accept, generated for every route that takes one.

The routes come from the gateway's own OpenAPI document, valid bodies from
schemathesis' strategies for it, and the damage from hypothesis: other media
types, bytes that are not UTF-8, control characters in text, arbitrary bytes.
Behind the gateway run a real NATS and a real request-svc, on SQLite and on
PostgreSQL; after each test the stored requests and users are as before.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from litestar import Litestar

from jhaas_runtime.service import ServiceRuntime

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, assert_error, bearer, hub_spec, leader_token, token_for

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=40,
    deadline=None,
    # One gateway and its services serve every example; each example sends one request.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SENTINEL = "\ue000sentinel\ue000"
CONTROLS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]] + ["\u2028", "\u2029"]
MULTI_LINE_FIELDS = {"description", "comment", "reason", "message"}  # tab and line breaks allowed
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.+", min_size=1, max_size=10)
OTHER_MEDIA_TYPES = st.sampled_from(
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
        "application/json; charset=iso-8859-1",
        "application/vnd.api+json",
        "",
    ]
) | st.builds("{}/{}".format, TOKEN, TOKEN).filter(lambda media: media != "application/json")
NOT_UTF8 = st.binary(min_size=1, max_size=4).filter(lambda chunk: not _is_utf8(chunk))


def _is_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with the path parameters filled in
    body_type: Any  # what the handler decodes, to tell a valid generated body
    bodies: st.SearchStrategy[Any]


@dataclass
class World:
    """A gateway with a stored request and two users, and its body-taking routes."""

    client: Client
    admin: str
    request_id: str
    routes: list[Route]

    async def snapshot(self) -> Any:
        headers = bearer(self.admin)
        requests = await self.client.get("/api/v1/requests?scope=all", headers=headers)
        users = await self.client.get("/api/v1/users", headers=headers)
        return requests.json(), users.json()

    async def send(self, route: Route, body: bytes, media_type: str | None) -> Any:
        headers = bearer(self.admin)
        if media_type is not None:
            headers["Content-Type"] = media_type
        return await self.client.request(route.method, route.path, content=body, headers=headers)


def _forbid_unknown_fields(node: Any) -> None:
    # The structs refuse unknown fields; say so, so that generated bodies are valid.
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _forbid_unknown_fields(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_unknown_fields(value)


def body_routes(app: Litestar, document: dict[str, Any], ids: dict[str, str]) -> list[Route]:
    _forbid_unknown_fields(document)
    schema = schemathesis.openapi.from_dict(document)
    handlers = {
        (method, route.path_format): handler
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        for method in handler.http_methods
    }
    routes = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.body:
            continue
        method = operation.method.upper()
        data_field = handlers[(method, operation.path)].parsed_data_field
        path = operation.path.format(**ids)
        cases = operation.as_strategy()
        routes.append(Route(method, path, data_field.annotation, cases.map(lambda c: c.body)))
    return routes


@pytest.fixture
async def world(client: Client, request_svc: ServiceRuntime) -> AsyncIterator[World]:
    leader = await leader_token(client)
    admin = await token_for(client, *ADMIN)
    submitted = await client.post("/api/v1/requests", json=hub_spec(), headers=bearer(leader))
    assert submitted.status_code == 201, submitted.text
    me = (await client.get("/api/v1/auth/me", headers=bearer(leader))).json()
    document = (await client.get("/schema/openapi.json")).json()
    ids = {
        "request_id": submitted.json()["request_id"],
        "user_id": me["user_id"],
        "code": "ZZZZZZZZZZ",
        "participation_id": "p-unknown",
        "change_id": "c-unknown",
    }
    routes = body_routes(client.app, document, ids)
    paths = {(route.method, route.path) for route in routes}
    # Every route that takes a body is here, so a new one is covered without a word.
    assert {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/requests")} <= paths
    assert len(routes) >= 9, paths
    world = World(client, admin, ids["request_id"], routes)
    before = await world.snapshot()
    yield world
    # Whatever was sent, nothing was stored and nothing changed.
    assert await world.snapshot() == before


def valid_body(world: World, data: st.DataObject) -> tuple[Route, Any]:
    route = data.draw(st.sampled_from(world.routes), label="route")
    body = data.draw(route.bodies, label="body")
    try:
        msgspec.json.decode(msgspec.json.encode(body), type=route.body_type, strict=True)
    except msgspec.ValidationError:
        assume(False)
    event(f"{route.method} {route.path.split('/')[3]}")  # which routes got valid bodies
    return route, body


def text_leaves(node: Any, path: str = "") -> list[str]:
    """Paths of the strings in a body, spelled as the gateway names them."""
    if isinstance(node, str):
        return [path]
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in text_leaves(v, f"{path}.{k}".lstrip("."))]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in text_leaves(v, f"{path}[{i}]")]
    return []


def replaced(node: Any, path: str, change: Any, here: str = "") -> Any:
    if here == path:
        return change(node)
    if isinstance(node, dict):
        return {k: replaced(v, path, change, f"{here}.{k}".lstrip(".")) for k, v in node.items()}
    if isinstance(node, list):
        return [replaced(v, path, change, f"{here}[{i}]") for i, v in enumerate(node)]
    return node


@FUZZ
@given(data=st.data(), media_type=OTHER_MEDIA_TYPES)
async def test_a_body_in_any_other_media_type_is_415(
    world: World, data: st.DataObject, media_type: str
) -> None:
    route = data.draw(st.sampled_from(world.routes), label="route")
    body = msgspec.json.encode(data.draw(route.bodies, label="body"))
    response = await world.send(route, body, media_type or None)
    assert "application/json" in assert_error(response, 415, "unsupported_media_type")["message"]


@FUZZ
@given(data=st.data(), bad=NOT_UTF8)
async def test_a_body_that_is_not_utf8_is_400(
    world: World, data: st.DataObject, bad: bytes
) -> None:
    route, body = valid_body(world, data)
    leaves = text_leaves(body)
    assume(leaves)
    leaf = data.draw(st.sampled_from(leaves), label="field")
    broken = msgspec.json.encode(replaced(body, leaf, lambda text: text + SENTINEL))
    broken = broken.replace(SENTINEL.encode(), bad)
    response = await world.send(route, broken, "application/json")
    assert "not valid UTF-8" in assert_error(response, 400, "bad_request")["message"]


@FUZZ
@given(data=st.data(), char=st.sampled_from(CONTROLS))
async def test_a_control_character_in_text_is_422_naming_the_field(
    world: World, data: st.DataObject, char: str
) -> None:
    route, body = valid_body(world, data)
    # A password may hold any character: it is only hashed.
    leaves = [leaf for leaf in text_leaves(body) if "password" not in leaf]
    assume(leaves)
    leaf = data.draw(st.sampled_from(leaves), label="field")
    if leaf.rsplit(".", 1)[-1] in MULTI_LINE_FIELDS:
        assume(char not in "\t\n\r")
    position = data.draw(st.integers(0, 64), label="position")
    broken = replaced(body, leaf, lambda text: text[:position] + char + text[position:])
    response = await world.send(route, msgspec.json.encode(broken), "application/json")
    fields = assert_error(response, 422, "invalid")["fields"]
    assert list(fields) == [leaf], (route.path, fields)


@FUZZ
@given(data=st.data(), body=st.binary(max_size=300))
async def test_arbitrary_bytes_never_get_a_500(
    world: World, data: st.DataObject, body: bytes
) -> None:
    route = data.draw(st.sampled_from(world.routes), label="route")
    response = await world.send(route, body, "application/json")
    # 503: a body that happens to be valid reached a service that is not running.
    assert response.status_code < 500 or response.status_code == 503, response.text


@pytest.mark.parametrize("bad_id", ["a%00b", "%0a", "x%1b[31m", "%e2%80%a8"])
async def test_a_control_character_in_a_path_id_is_not_a_500(world: World, bad_id: str) -> None:
    headers = bearer(world.admin)
    for method, path, status in [
        ("GET", f"/api/v1/requests/{bad_id}", 422),
        ("POST", f"/api/v1/requests/{bad_id}/withdraw", 422),
        ("PATCH", f"/api/v1/users/{bad_id}", 404),
    ]:
        body = {"disabled": True} if path.startswith("/api/v1/users") else None
        response = await world.client.request(method, path, headers=headers, json=body)
        assert response.status_code == status, (path, response.text)
