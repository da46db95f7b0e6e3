"""The error contract on a bare app: strict bodies, one error body, no leaks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, get, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from gateway.context import send_correlation_header
from gateway.errors import EXCEPTION_HANDLERS, reject_invalid_body
from jhaas_schemas.model import HubSpec

pytestmark = pytest.mark.unit

SPEC = {
    "title": "Data Science 101",
    "slug": "ds101",
    "starts_at": "2030-01-07T09:00:00+01:00",
    "ends_at": "2030-04-07T09:00:00+01:00",
    "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
    "resources": {"cpu": "1", "memory": "2Gi", "storage": "5Gi"},
    "expected_participants": 30,
}


@post("/things")
async def make_thing(data: JSONBody[HubSpec]) -> dict[str, str]:
    return {"slug": data.slug}


@get("/boom")
async def boom() -> None:
    raise RuntimeError("a secret detail: password=hunter2")


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    app = Litestar(
        [make_thing, boom],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=reject_invalid_body,
        before_send=[send_correlation_header],
        request_max_body_size=2048,
        logging_config=None,
    )
    with TestClient(app=app) as test_client:
        yield test_client


def error_of(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body


def test_a_valid_body_passes(client: TestClient[Any]) -> None:
    response = client.post("/things", json=SPEC)
    assert response.status_code == 201
    assert response.json() == {"slug": "ds101"}


def test_text_where_a_number_belongs_is_422_not_coerced(client: TestClient[Any]) -> None:
    response = client.post("/things", json={**SPEC, "expected_participants": "30"})
    body = error_of(response, 422, "invalid")
    assert body["fields"] == {"expected_participants": "Expected `int`, got `str`"}


def test_unknown_nested_field_is_named(client: TestClient[Any]) -> None:
    resources = {**SPEC["resources"], "disk": "1Gi"}  # type: ignore[dict-item]
    response = client.post("/things", json={**SPEC, "resources": resources})
    assert error_of(response, 422, "invalid")["fields"] == {"resources.disk": "unknown field"}


def test_not_json_is_400(client: TestClient[Any]) -> None:
    response = client.post("/things", content=b"title=Data", headers={"content-type": "text/plain"})
    assert "not valid JSON" in error_of(response, 400, "bad_request")["message"]


def test_oversized_body_is_413(client: TestClient[Any]) -> None:
    response = client.post("/things", json={**SPEC, "description": "x" * 4096})
    error_of(response, 413, "payload_too_large")


def test_a_defect_is_500_without_its_details(client: TestClient[Any]) -> None:
    response = client.get("/boom", headers={"X-Correlation-ID": "c-boom"})
    body = error_of(response, 500, "internal")
    assert body["correlation_id"] == "c-boom"
    assert "hunter2" not in response.text
