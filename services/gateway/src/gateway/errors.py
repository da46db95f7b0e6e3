"""One error body for everything: each exception becomes `ErrorBody` with its status.

A client always learns what happened: what it sent wrong gets a 4xx that
names the field; only a defect on our side is a 500, logged with the
correlation id the client also sees.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_405_METHOD_NOT_ALLOWED,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from gateway.context import NotReady, correlation_id_for
from gateway.schemas import PATTERN_RULES, ErrorBody, ErrorKind
from jhaas_runtime.logs import correlation, get_logger
from jhaas_runtime.rpc import RpcFailure
from jhaas_schemas.errors import DomainError
from jhaas_schemas.rpc import ErrorCode

log = get_logger(__name__)

STATUS_OF_CODE: dict[ErrorCode, int] = {
    ErrorCode.INVALID: HTTP_422_UNPROCESSABLE_ENTITY,
    ErrorCode.NOT_FOUND: HTTP_404_NOT_FOUND,
    ErrorCode.FORBIDDEN: HTTP_403_FORBIDDEN,
    ErrorCode.CONFLICT: HTTP_409_CONFLICT,
    ErrorCode.UNAVAILABLE: HTTP_503_SERVICE_UNAVAILABLE,
    ErrorCode.INTERNAL: HTTP_500_INTERNAL_SERVER_ERROR,
}
KIND_OF_STATUS: dict[int, ErrorKind] = {
    HTTP_400_BAD_REQUEST: "bad_request",
    HTTP_401_UNAUTHORIZED: "unauthorized",
    HTTP_403_FORBIDDEN: "forbidden",
    HTTP_404_NOT_FOUND: "not_found",
    HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    HTTP_409_CONFLICT: "conflict",
    HTTP_413_REQUEST_ENTITY_TOO_LARGE: "payload_too_large",
    HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    HTTP_422_UNPROCESSABLE_ENTITY: "invalid",
    HTTP_429_TOO_MANY_REQUESTS: "too_many_requests",
    HTTP_503_SERVICE_UNAVAILABLE: "unavailable",
}


_DESCRIPTIONS = {
    HTTP_400_BAD_REQUEST: "The body is not valid UTF-8 JSON, or the request is malformed",
    HTTP_401_UNAUTHORIZED: "Not signed in, or the token or session has expired",
    HTTP_403_FORBIDDEN: "Not allowed for this user, or the X-CSRF-Token header is missing",
    HTTP_404_NOT_FOUND: "No such resource",
    HTTP_409_CONFLICT: "Conflicts with the current state: a taken name, a stale revision",
    HTTP_413_REQUEST_ENTITY_TOO_LARGE: "The body is larger than the gateway accepts",
    HTTP_415_UNSUPPORTED_MEDIA_TYPE: "The body is not sent as Content-Type: application/json",
    HTTP_422_UNPROCESSABLE_ENTITY: "The input breaks the schema or a rule; `fields` names each",
    HTTP_429_TOO_MANY_REQUESTS: "Too many failed sign-ins; wait Retry-After seconds",
    HTTP_503_SERVICE_UNAVAILABLE: "A service did not answer in time",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can give, all with the one error body."""
    wanted = (
        HTTP_400_BAD_REQUEST,
        HTTP_401_UNAUTHORIZED,
        HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    )
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[status])
        for status in sorted({*wanted, *statuses})
    }


SERVICE_ERRORS = (
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_503_SERVICE_UNAVAILABLE,
)


class ApiError(Exception):
    """An answer the gateway itself gives: status, message, and the fields at fault."""

    status = HTTP_400_BAD_REQUEST

    def __init__(
        self,
        message: str,
        fields: dict[str, str] | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})
        self.status = status or type(self).status
        self.headers = dict(headers or {})


class Unauthorized(ApiError):
    status = HTTP_401_UNAUTHORIZED

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="jhaas"'})


class Forbidden(ApiError):
    status = HTTP_403_FORBIDDEN


class TooManyRequests(ApiError):
    status = HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class InvalidBody(ApiError):
    status = HTTP_422_UNPROCESSABLE_ENTITY


def kind_of(status: int) -> ErrorKind:
    if status in KIND_OF_STATUS:
        return KIND_OF_STATUS[status]
    return "internal" if status >= HTTP_500_INTERNAL_SERVER_ERROR else "bad_request"


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    body = ErrorBody(
        status=status,
        error=kind_of(status),
        message=message,
        fields=fields or {},
        correlation_id=correlation_id_for(request.scope),
    )
    return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    return error_response(request, exc.status, exc.message, exc.fields, exc.headers)


def on_rpc_failure(request: Request[Any, Any, Any], exc: RpcFailure) -> Response[ErrorBody]:
    error = exc.error
    status = STATUS_OF_CODE.get(error.code, HTTP_500_INTERNAL_SERVER_ERROR)
    if status >= HTTP_500_INTERNAL_SERVER_ERROR and status != HTTP_503_SERVICE_UNAVAILABLE:
        _log_failure(request, "a service failed", error.message)
        message = "a service failed on our side; quote the correlation id when reporting it"
        return error_response(request, status, message)
    return error_response(request, status, error.message, error.fields)


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorBody]:
    return error_response(request, STATUS_OF_CODE[exc.code], exc.message, exc.fields)


def on_not_ready(request: Request[Any, Any, Any], exc: NotReady) -> Response[ErrorBody]:
    return error_response(request, HTTP_503_SERVICE_UNAVAILABLE, str(exc))


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        _log_failure(request, "request failed", exc.detail)
        return error_response(request, status, "internal error; quote the correlation id")
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        # Litestar's own checks of path and query parameters.
        fields = {
            _parameter_name(request, str(item.get("key") or "request")): str(
                item.get("message", "is not valid")
            )
            for item in exc.extra
            if isinstance(item, dict)
        }
        return error_response(request, HTTP_422_UNPROCESSABLE_ENTITY, _INVALID_PARAMS, fields)
    headers = dict(exc.headers or {})
    if status == HTTP_401_UNAUTHORIZED:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="jhaas"')
    return error_response(request, status, _message_of(request, exc), headers=headers)


_INVALID_PARAMS = "the request's parameters are not valid"


def _parameter_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name the client used (`?scope=`), not the Python name (`scope_`)."""
    field = request.route_handler.parsed_fn_signature.parameters.get(key)
    alias = getattr(getattr(field, "kwarg_definition", None), "name", None)
    return alias if isinstance(alias, str) and alias else key


_MESSAGES = {
    HTTP_404_NOT_FOUND: "no such resource: {method} {path}",
    HTTP_405_METHOD_NOT_ALLOWED: "{method} is not allowed on {path}",
    HTTP_413_REQUEST_ENTITY_TOO_LARGE: "the request body is larger than this API accepts",
}


def _message_of(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    template = _MESSAGES.get(exc.status_code)
    if template is None:
        return exc.detail
    return template.format(method=request.method, path=request.url.path)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    _log_failure(request, "request failed", repr(exc), exc_info=exc)
    message = "internal error; quote the correlation id when reporting it"
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR, message)


def _log_failure(
    request: Request[Any, Any, Any],
    event: str,
    detail: str,
    exc_info: BaseException | None = None,
) -> None:
    with correlation(correlation_id_for(request.scope)):
        log.error(
            event,
            method=request.method,
            path=request.url.path,
            detail=detail,
            exc_info=exc_info,
        )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: on_api_error,
    RpcFailure: on_rpc_failure,
    DomainError: on_domain_error,
    NotReady: on_not_ready,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}


# --- strict bodies ----------------------------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(
    r"^Object (?P<what>contains unknown|missing required) field `(?P<name>[^`]+)`$"
)
# msgspec quotes the regular expression a string failed; a person reads the rule.
_RULE_OF_MESSAGE = {
    f"Expected `str` matching regex {pattern!r}": rule for pattern, rule in PATTERN_RULES.items()
}
JSON_MEDIA_TYPE = "application/json"


def body_error_fields(exc: msgspec.ValidationError) -> dict[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.resources.cpu`" -> {"resources.cpu": ...}."""
    match = _AT.match(str(exc))
    message = match.group("message") if match else str(exc)
    path = (match.group("path") or "").lstrip(".") if match else ""
    named = _NAMED_FIELD.match(message)
    if named:
        path = f"{path}.{named.group('name')}" if path else named.group("name")
        message = "unknown field" if named.group("what").startswith("contains") else "required"
    return {path or "body": _RULE_OF_MESSAGE.get(message, message)}


def media_type_problem(content_types: list[str]) -> str | None:
    """None for exactly one `application/json` (parameters: only charset=utf-8), else why not.

    A cross-site HTML form can send `text/plain` without the browser asking the
    server first; accepting it would let any page sign a visitor in or act in
    their name. `+json` types are refused too: none of them means plain JSON here.
    """
    if len(content_types) != 1:
        return (
            "the request has no Content-Type header"
            if not content_types
            else ("the request has more than one Content-Type header")
        )
    media_type, *parameters = content_types[0].split(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return f"the Content-Type is {media_type.strip()[:100]!r}"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return f"the Content-Type parameter {parameter.strip()[:100]!r} is not charset=utf-8"
    return None


async def reject_invalid_body(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook: check a handler's `data` body strictly before Litestar does.

    The body must be sent as `application/json` (else 415) and be UTF-8 (else
    400). Litestar converts bodies leniently ("30" becomes 30); an API that
    promises types answers a wrong type with 422 instead. A body that is not
    JSON at all is a 400. Litestar then decodes the same bytes again, which
    cannot fail once this check passed.
    """
    data_field = request.route_handler.parsed_data_field
    if data_field is None:
        return
    body = await request.body()
    if not body.strip():
        if data_field.is_optional:
            return
        raise ApiError("the request body is empty; send a JSON object")
    problem = media_type_problem(request.headers.getall("content-type", []))
    if problem is not None:
        raise ApiError(
            f"{problem}; send the body as JSON with Content-Type: {JSON_MEDIA_TYPE}",
            status=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            f"the request body is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        ) from None
    try:
        msgspec.json.decode(body, type=data_field.annotation, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidBody(
            "the request body does not match the schema", body_error_fields(exc)
        ) from None
    except msgspec.DecodeError as exc:
        # Also a lone surrogate escape ("\\ud800"): no database could store it.
        raise ApiError(f"the request body is not valid JSON: {exc}") from None
