"""Domain errors a service raises; the RPC layer turns them into `RpcError`."""

from __future__ import annotations

from jhaas_schemas.rpc import ErrorCode


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INVALID

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


class InvalidInput(DomainError):
    code = ErrorCode.INVALID


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class Conflict(DomainError):
    code = ErrorCode.CONFLICT
