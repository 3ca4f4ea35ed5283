"""LangServe hides every failure: a bare 500, or in a stream a generic ``error`` event.

Upstream behaviour (langserve 0.3): an exception in ``/invoke`` or ``/batch`` reaches
Starlette as a plain 500; in ``/stream`` (and ``stream_log``, ``stream_events``) LangServe
sends ``event: error`` with ``{"status_code": 500, "message": "Internal Server Error"}``
and then raises the exception again.

Correction: ``ErrorMiddleware`` sits outside LangServe and maps the exception
(``errors.to_service_error``, secrets redacted): before the response has started it answers
with the error's status and ``{"error": {"type", "message", "status_code"}}``; in an event
stream it holds LangServe's ``error`` frame back and, when the exception follows (it always
does), sends the typed frame instead. No stack trace and no key leaves it.

Delete when: LangServe's stream error event says what failed (the canary
``test_langserve_stream_errors_are_generic`` fails).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langserve_logprobs.edge import is_event_stream, send_error
from langserve_logprobs.errors import ServiceError, redact, to_service_error

logger = logging.getLogger("langserve_logprobs")

_ERROR_FRAME = b"event: error\r\n"


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        inner = [e for e in exc.exceptions if not isinstance(e, GeneratorExit)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


def sse_error_event(error: ServiceError) -> bytes:
    """The ``event: error`` frame for ``error``, in sse-starlette's framing."""
    data = json.dumps(error.to_dict())
    return f"event: error\r\ndata: {data}\r\n\r\n".encode()


class ErrorMiddleware:
    """Maps exceptions to statuses (invoke, batch) and to error events (streams)."""

    def __init__(self, app: ASGIApp, secrets: Sequence[str] = ()) -> None:
        self.app = app
        self.secrets = [s for s in secrets if s]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        sse = False
        held: Message | None = None

        async def guarded_send(message: Message) -> None:
            nonlocal started, sse, held
            if message["type"] == "http.response.start":
                started = True
                sse = is_event_stream(message)
            elif sse and message.get("body", b"").startswith(_ERROR_FRAME):
                held = message  # LangServe's generic frame: the exception comes next
                return
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as raised:
            exc = _unwrap(raised)
            error = to_service_error(exc, self.secrets)
            self._log(scope, error, exc)
            if not started:
                await send_error(send, error)
            elif sse:
                body = sse_error_event(error)
                await send({"type": "http.response.body", "body": body, "more_body": False})
            else:
                raise
            return
        if held is not None:
            await send(held)

    def _log(self, scope: Scope, error: ServiceError, exc: BaseException) -> None:
        detail = redact(f"{type(exc).__name__}: {exc}", self.secrets)[:500]
        logger.warning(
            "%s %s failed: %s %s (%s)",
            scope.get("method"),
            scope.get("path"),
            error.status_code,
            error.type,
            detail,
        )
