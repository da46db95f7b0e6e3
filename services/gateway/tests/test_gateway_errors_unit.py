"""The error contract on a bare app: strict bodies, one error body, no leaks."""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    response = client.post("/things", content=b"title=Data", headers=JSON)
    assert "not valid JSON" in error_of(response, 400, "bad_request")["message"]


JSON = {"content-type": "application/json"}


def fuzz(examples: int) -> Any:
    # The client holds no state between requests, so one per test serves every example.
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


TOKEN = st.text(string.ascii_lowercase + string.digits + "-.+", min_size=1, max_size=12)
MEDIA_TYPES = st.one_of(
    st.sampled_from(
        [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=iso-8859-1",
            "application/json; charset=utf-16",
            "application/json; boundary=x",
            "application/merge-patch+json",
            "application/jsonx",
            "json",
            "",
        ]
    ),
    st.builds(lambda kind, sub: f"{kind}/{sub}", TOKEN, TOKEN).filter(
        lambda media_type: media_type != "application/json"
    ),
)


@fuzz(60)
@given(media_type=MEDIA_TYPES)
def test_a_body_in_any_other_media_type_is_415(client: TestClient[Any], media_type: str) -> None:
    body = msgspec.json.encode(SPEC)
    response = client.post("/things", content=body, headers={"content-type": media_type})
    message = error_of(response, 415, "unsupported_media_type")["message"]
    assert "application/json" in message


def test_without_a_content_type_the_body_is_415(client: TestClient[Any]) -> None:
    response = client.post("/things", content=msgspec.json.encode(SPEC))
    assert "no Content-Type" in error_of(response, 415, "unsupported_media_type")["message"]


@pytest.mark.parametrize(
    "media_type",
    ["application/json", "Application/JSON; charset=UTF-8", 'application/json;charset="utf-8"'],
)
def test_json_with_or_without_charset_utf8_passes(client: TestClient[Any], media_type: str) -> None:
    body = msgspec.json.encode(SPEC)
    assert client.post("/things", content=body, headers={"content-type": media_type}).is_success


# Byte sequences that are never UTF-8: stray continuation bytes, overlong forms,
# encoded surrogates, code points past U+10FFFF, truncated sequences.
NOT_UTF8 = st.sampled_from(
    [
        *(b"\x80", b"\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"),
        *(b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"),
    ]
) | st.binary(min_size=1, max_size=4).filter(lambda chunk: not _is_utf8(chunk))


def _is_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@fuzz(80)
@given(bad=NOT_UTF8, where=st.sampled_from(["title", "description", "slug"]))
def test_a_body_that_is_not_utf8_is_400(client: TestClient[Any], bad: bytes, where: str) -> None:
    body = msgspec.json.encode({**SPEC, where: "Data Science"}).replace(
        b"Data Science", b"Data" + bad + b"Science", 1
    )
    response = client.post("/things", content=body, headers=JSON)
    assert "not valid UTF-8" in error_of(response, 400, "bad_request")["message"]


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\udc00\\ud800", b"\\ud800 x"])
def test_a_lone_surrogate_escape_is_400(client: TestClient[Any], escape: bytes) -> None:
    # Valid JSON syntax, but no text: PostgreSQL could not store it.
    body = msgspec.json.encode(SPEC).replace(b"Science 101", b"Science " + escape, 1)
    response = client.post("/things", content=body, headers=JSON)
    assert "not valid JSON" in error_of(response, 400, "bad_request")["message"]


CONTROLS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]] + ["\u2028", "\u2029"]


@fuzz(80)
@given(
    field=st.sampled_from(["title", "description", "image", "resources.cpu"]),
    char=st.sampled_from(CONTROLS),
)
def test_control_characters_are_422_naming_the_field(
    client: TestClient[Any], field: str, char: str
) -> None:
    if field == "description" and char in "\t\n":
        char = "\x00"  # allowed there; the next test covers it
    spec = msgspec.json.decode(msgspec.json.encode(SPEC))
    target, name = (spec["resources"], "cpu") if field == "resources.cpu" else (spec, field)
    target[name] = f"1{char}2 text"
    response = client.post("/things", json=spec)
    fields = error_of(response, 422, "invalid")["fields"]
    assert list(fields) == [field]
    assert "control characters" in fields[field]
    assert "regex" not in fields[field]


def test_a_description_keeps_tabs_and_line_breaks(client: TestClient[Any]) -> None:
    description = "Week 1:\tbasics\nWeek 2:\tmore\r\n"
    assert client.post("/things", json={**SPEC, "description": description}).is_success


def test_oversized_body_is_413(client: TestClient[Any]) -> None:
    response = client.post("/things", json={**SPEC, "description": "x" * 4096})
    error_of(response, 413, "payload_too_large")


def test_a_defect_is_500_without_its_details(client: TestClient[Any]) -> None:
    response = client.get("/boom", headers={"X-Correlation-ID": "c-boom"})
    body = error_of(response, 500, "internal")
    assert body["correlation_id"] == "c-boom"
    assert "hunter2" not in response.text
