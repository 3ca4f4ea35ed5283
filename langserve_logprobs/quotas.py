"""Per-client limits and the body size cap, at the edge, before any work starts.

* ``ClientLimits``: per key (its id, once ``auth`` let the request in) or, with keys off,
  per client address, at most ``LOGPROBS_MAX_CONCURRENT`` requests in flight and
  ``LOGPROBS_RATE_LIMIT`` per minute (a token bucket: bursts up to the limit, refilled
  evenly over the minute). Beyond either: 429 ``too_many_requests`` with ``Retry-After``,
  before the response (or the stream) starts. Only POSTs count: they are the model work
  (invoke, batch, the streams, ``/local/v1``); pages, schemas and assets are not.
* ``BodySizeLimit``: 413 ``payload_too_large`` for a body over ``LOGPROBS_MAX_BODY_BYTES``,
  from its ``Content-Length`` at once, or while it is read (chunked bodies), so an
  oversized body is never held in memory whole.

Behind a reverse proxy every client has the proxy's address: run uvicorn with
``--proxy-headers --forwarded-allow-ips`` so that the address is the client's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langserve_logprobs.edge import request_info, route_path, send_error
from langserve_logprobs.errors import PayloadTooLargeError, TooManyRequestsError

EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})
_PRUNE_AT = 10_000


@dataclass
class _Client:
    in_flight: int = 0
    tokens: float = 0.0
    updated: float = 0.0


class ClientLimits:
    """Requests in flight and requests per minute, per client identity.

    Args:
        max_concurrent: requests one client may have in flight; None: no limit.
        per_minute: requests one client may start per minute; None: no limit.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        max_concurrent: int | None,
        per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.per_minute = per_minute
        self._clock = clock
        self._clients: dict[str, _Client] = {}

    def acquire(self, ident: str) -> None:
        """Start a request of ``ident``; pair with ``release``.

        Raises:
            ClientLimitError: over either limit (``retry_after`` in whole seconds).
        """
        now = self._clock()
        client = self._clients.get(ident)
        if client is None:
            if len(self._clients) >= _PRUNE_AT:
                self._prune(now)
            client = self._clients[ident] = _Client(tokens=float(self.per_minute or 0), updated=now)
        if self.max_concurrent is not None and client.in_flight >= self.max_concurrent:
            msg = f"too many requests in flight: the limit is {self.max_concurrent} per client"
            raise ClientLimitError(msg, "concurrency", 1)
        if self.per_minute is not None:
            rate = self.per_minute / 60.0
            client.tokens = min(
                float(self.per_minute), client.tokens + (now - client.updated) * rate
            )
            client.updated = now
            if client.tokens < 1.0:
                wait = math.ceil((1.0 - client.tokens) / rate)
                msg = f"too many requests: the limit is {self.per_minute} per minute per client"
                raise ClientLimitError(msg, "rate", wait)
            client.tokens -= 1.0
        client.in_flight += 1

    def release(self, ident: str) -> None:
        """End a request started with ``acquire``."""
        client = self._clients.get(ident)
        if client is not None and client.in_flight > 0:
            client.in_flight -= 1

    def _prune(self, now: float) -> None:
        # Forget idle clients whose bucket has refilled: they are as if new.
        full = float(self.per_minute or 0)
        rate = (self.per_minute or 0) / 60.0
        for ident, client in list(self._clients.items()):
            if client.in_flight == 0 and client.tokens + (now - client.updated) * rate >= full:
                del self._clients[ident]


class ClientLimitError(TooManyRequestsError):
    """Over one of ``ClientLimits``; ``reason`` is ``concurrency`` or ``rate``."""

    def __init__(self, message: str, reason: str, retry_after: int) -> None:
        super().__init__(message, retry_after=str(max(1, retry_after)))
        self.reason = reason


def client_identity(scope: Scope) -> str:
    """Who a request counts against: its key id, else its client address."""
    ident = request_info(scope).key_id
    if ident is not None:
        return f"key:{ident}"
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class LimitsMiddleware:
    """Applies ``ClientLimits`` to every POST; the slot is held until the response ends."""

    def __init__(self, app: ASGIApp, limits: ClientLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or route_path(scope) in EXEMPT_PATHS
        ):
            await self.app(scope, receive, send)
            return
        ident = client_identity(scope)
        try:
            self.limits.acquire(ident)
        except ClientLimitError as error:
            request_info(scope).rejected = error.reason
            await send_error(send, error)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limits.release(ident)


class BodySizeLimit:
    """413 for a request body over ``max_bytes``, checked before and while it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = PayloadTooLargeError(
            f"the request body is over the limit of {self.max_bytes} bytes"
        )
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            request_info(scope).rejected = "payload_too_large"
            await send_error(send, error)
            return
        received = 0
        answered = False

        async def limited_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not answered:
                    # Answer now, before the app can: whatever it does with the error
                    # (FastAPI turns body errors into a 400) is dropped by guarded_send.
                    answered = True
                    request_info(scope).rejected = "payload_too_large"
                    await send_error(send, error)
                    raise error
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not answered:
                raise
