"""What any HTTP client meets: health, the front page, OpenAPI, unknown routes."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import Client, assert_error

pytestmark = pytest.mark.integration


async def test_health_and_readiness(client: Client) -> None:
    healthz = await client.get("/healthz")
    assert healthz.status_code == 200
    assert healthz.json() == {"status": "ok"}
    readyz = await client.get("/readyz")
    assert readyz.status_code == 200
    assert readyz.json() == {"status": "ready"}


async def test_front_page_links_to_the_api_documentation(client: Client) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "JupyterHub as a Service" in page.text
    assert 'href="/schema/swagger"' in page.text
    swagger = await client.get("/schema/swagger")
    assert swagger.status_code == 200
    assert "swagger" in swagger.text.lower()


async def test_openapi_documents_every_route(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for path, method in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{user_id}", "patch"),
        ("/api/v1/requests", "post"),
        ("/api/v1/requests/{request_id}", "patch"),
        ("/api/v1/requests/{request_id}/withdraw", "post"),
        ("/api/v1/requests/{request_id}/cancel", "post"),
        ("/api/v1/reviews", "get"),
        ("/api/v1/reviews/{request_id}/approve", "post"),
        ("/api/v1/reviews/{request_id}/reject", "post"),
        ("/api/v1/reviews/{request_id}/request-changes", "post"),
        ("/api/v1/policy", "get"),
        ("/api/v1/presets", "get"),
        ("/api/v1/deployments", "get"),
        ("/api/v1/courses", "get"),
        ("/api/v1/courses/{request_id}/join-code/rotate", "post"),
        ("/api/v1/courses/{request_id}/join-code", "put"),
        ("/api/v1/courses/{request_id}/participations", "get"),
        ("/api/v1/courses/{request_id}/participations/accept", "post"),
        ("/api/v1/courses/{request_id}/participations/reject", "post"),
        ("/api/v1/courses/{request_id}/participations/{participation_id}/remove", "post"),
        ("/api/v1/courses/{request_id}/participations/{participation_id}/reopen", "post"),
        ("/api/v1/courses/{request_id}/leave", "post"),
        ("/api/v1/courses/{request_id}/tutors", "post"),
        ("/api/v1/courses/{request_id}/tutors/{user_id}", "delete"),
        ("/api/v1/courses/{request_id}/roster.csv", "get"),
        ("/api/v1/join/{code}", "get"),
        ("/api/v1/join/{code}", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    submit = paths["/api/v1/requests"]["post"]
    assert "requestBody" in submit
    assert "HubSpec" in str(submit["requestBody"])
    list_params = {p["name"] for p in paths["/api/v1/requests"]["get"]["parameters"]}
    assert list_params == {"scope", "status"}
    assert "BearerToken" in document["components"]["securitySchemes"]


async def test_unknown_route_and_wrong_method_use_the_error_body(client: Client) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert "/api/v1/nothing-here" in assert_error(missing, 404, "not_found")["message"]
    wrong = await client.delete("/api/v1/requests")
    assert "DELETE" in assert_error(wrong, 405, "method_not_allowed")["message"]


async def test_correlation_id_is_echoed_when_sane_and_replaced_when_not(client: Client) -> None:
    kept = await client.get("/healthz", headers={"X-Correlation-ID": "trace-42.a_b"})
    assert kept.headers["x-correlation-id"] == "trace-42.a_b"
    replaced = await client.get("/healthz", headers={"X-Correlation-ID": "bad id\twith junk"})
    assert (
        str(uuid.UUID(replaced.headers["x-correlation-id"])) == replaced.headers["x-correlation-id"]
    )
    absent = await client.get("/api/v1/nothing")
    assert absent.json()["correlation_id"] == absent.headers["x-correlation-id"]
    uuid.UUID(absent.json()["correlation_id"])
