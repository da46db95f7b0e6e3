"""NATS request-reply: the server side (services) and the client side (gateway).

Each service subscribes to its subjects with a queue group named after the
service, so any number of replicas share the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from jhaas_runtime.aio import cancel_and_wait
from jhaas_runtime.logs import correlation, get_logger
from jhaas_schemas.errors import DomainError
from jhaas_schemas.model import Principal
from jhaas_schemas.rpc import ErrorCode, RpcCall, RpcError, RpcReply

log = get_logger(__name__)

P = TypeVar("P")
R = TypeVar("R")

CORRELATION_HEADER = "jhaas-correlation-id"
# Where nats-py clients (the gateway, the launcher's health probe) take replies.
CLIENT_INBOX = "_INBOX."

_PATH = re.compile(r"at `\$\.?(?P<path>[^`]*)`")


def validation_error_fields(
    exc: msgspec.ValidationError | msgspec.DecodeError, strip_prefix: str = ""
) -> dict[str, str]:
    """Turn msgspec's "... - at `$.a.b`" into {"a.b": "..."}."""
    text = str(exc)
    match = _PATH.search(text)
    path = match.group("path") if match else ""
    if strip_prefix and path.startswith(strip_prefix):
        path = path[len(strip_prefix) :]
    message = text.split(" - at `")[0]
    return {path or "body": message}


@dataclass(frozen=True)
class CallContext:
    principal: Principal
    correlation_id: str


RpcHandler = Callable[[CallContext, Any], Awaitable[msgspec.Struct]]


@dataclass(frozen=True)
class _Route:
    decoder: msgspec.json.Decoder[Any]
    handler: RpcHandler


class RpcServer:
    def __init__(self, service: str, *, max_in_flight: int = 64) -> None:
        self.service = service
        self._routes: dict[str, _Route] = {}
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(max_in_flight)
        self._encoder = msgspec.json.Encoder()
        self.refused = 0

    def route(
        self,
        subject: str,
        payload_type: type[P],
        handler: Callable[[CallContext, P], Awaitable[msgspec.Struct]],
    ) -> None:
        self._routes[subject] = _Route(msgspec.json.Decoder(RpcCall[payload_type]), handler)  # type: ignore[valid-type]

    async def start(self, nc: NATS) -> None:
        for subject in self._routes:
            self._subs.append(await nc.subscribe(subject, queue=self.service, cb=self._dispatch))
        # Once start() returns, the server knows our subscriptions: a call made
        # right after it is answered instead of finding no responders.
        await nc.flush()

    async def stop(self, grace: float = 10.0) -> list[str]:
        """Take no new calls and let the ones in hand answer for up to `grace`
        seconds; cancel the rest. Returns the names of calls that would not end."""
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self._subs.clear()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        return await cancel_and_wait(tasks, grace)

    async def _dispatch(self, msg: Msg) -> None:
        if not msg.reply.startswith(CLIENT_INBOX):
            # Only a client waiting on its inbox makes a call. JetStream can be
            # told (by anyone allowed to create a push consumer) to deliver
            # stored messages to this subject; those carry a `$JS.ACK` reply or
            # none, and must never act with the principal they might contain.
            self.refused += 1
            log.warning("rpc message without a client inbox ignored", rpc=msg.subject)
            return
        # nats-py runs one callback at a time per subscription: hand each call
        # to its own task so a slow database write does not hold up the rest.
        await self._limit.acquire()
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._limit.release()

    async def _serve(self, msg: Msg) -> None:
        reply = await self.handle(msg.subject, msg.data)
        await msg.respond(reply)

    async def handle(self, subject: str, data: bytes) -> bytes:
        """Decode, call the handler, and encode the reply; never raises."""
        route = self._routes[subject]
        try:
            call = route.decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            fields = validation_error_fields(exc, strip_prefix="payload.")
            error = RpcError(code=ErrorCode.INVALID, message=str(exc), fields=fields)
            return self._encoder.encode(RpcReply[Any](error=error))
        with correlation(call.correlation_id, user_id=call.principal.user_id, rpc=subject):
            ctx = CallContext(call.principal, call.correlation_id)
            try:
                result = await route.handler(ctx, call.payload)
            except DomainError as exc:
                log.info("rpc refused", code=exc.code.value, reason=exc.message)
                error = RpcError(code=exc.code, message=exc.message, fields=exc.fields)
                return self._encoder.encode(RpcReply[Any](error=error))
            except Exception:
                log.exception("rpc handler failed")
                error = RpcError(code=ErrorCode.INTERNAL, message="internal error")
                return self._encoder.encode(RpcReply[Any](error=error))
            return self._encoder.encode(RpcReply[Any](ok=result))


class RpcFailure(Exception):
    def __init__(self, error: RpcError) -> None:
        super().__init__(error.message)
        self.error = error


class RpcClient:
    """Calls a service; raises `RpcFailure` for a refusal or when nobody answers in time."""

    def __init__(self, nc: NATS, *, timeout: float = 5.0) -> None:
        self._nc = nc
        self._timeout = timeout
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

    async def call(
        self,
        subject: str,
        payload: msgspec.Struct,
        result_type: type[R],
        *,
        principal: Principal,
        correlation_id: str,
    ) -> R:
        data = self._encoder.encode(
            RpcCall[Any](principal=principal, correlation_id=correlation_id, payload=payload)
        )
        try:
            msg = await self._nc.request(
                subject, data, timeout=self._timeout, headers={CORRELATION_HEADER: correlation_id}
            )
        except nats.errors.NoRespondersError:
            raise RpcFailure(
                RpcError(code=ErrorCode.UNAVAILABLE, message=f"no service answers {subject}")
            ) from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise RpcFailure(
                RpcError(code=ErrorCode.UNAVAILABLE, message=f"{subject} did not answer in time")
            ) from None
        except nats.errors.Error as exc:  # connection closed or draining, reconnecting
            raise RpcFailure(
                RpcError(code=ErrorCode.UNAVAILABLE, message=f"message bus unavailable: {exc}")
            ) from None
        decoder = self._decoders.get(result_type)
        if decoder is None:
            decoder = self._decoders[result_type] = msgspec.json.Decoder(RpcReply[result_type])  # type: ignore[valid-type]
        reply = decoder.decode(msg.data)
        if reply.error is not None:
            raise RpcFailure(reply.error)
        if reply.ok is None:
            raise RpcFailure(RpcError(code=ErrorCode.INTERNAL, message="empty reply"))
        result: R = reply.ok
        return result
