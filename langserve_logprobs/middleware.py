"""ASGI middleware that turns any error raised while serving into a typed, safe answer.

LangServe reports every failure as a bare 500, or, in a stream, as an ``error`` event
with ``{"status_code": 500, "message": "Internal Server Error"}``. This middleware sits
outside LangServe: before the response has started it answers with the mapped status
and ``{"error": {"type", "message", "status_code"}}``; in an event stream it replaces
LangServe's generic error event with the real one. No stack trace and no key leaves it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langserve_logprobs.errors import InvalidInputError, ServiceError, redact, to_service_error

logger = logging.getLogger("langserve_logprobs")

_GENERIC_SSE_ERROR = b'"message": "Internal Server Error"'


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
        is_sse = False
        held: Message | None = None

        async def guarded_send(message: Message) -> None:
            nonlocal started, is_sse, held
            if message["type"] == "http.response.start":
                started = True
                headers = dict(message.get("headers", []))
                is_sse = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif is_sse and _GENERIC_SSE_ERROR in message.get("body", b""):
                held = message
                return
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as raised:
            exc = _unwrap(raised)
            error = to_service_error(exc, self.secrets)
            self._log(scope, error, exc)
            if not started:
                await self._send_json(send, error)
            elif is_sse:
                await send(
                    {
                        "type": "http.response.body",
                        "body": sse_error_event(error),
                        "more_body": False,
                    }
                )
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

    @staticmethod
    async def _send_json(send: Send, error: ServiceError) -> None:
        body = json.dumps({"error": error.to_dict()}).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
        start: dict[str, Any] = {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": headers,
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


class CancelOnDisconnect:
    """Cancels a request's work as soon as its client goes away.

    LangServe (like any Starlette endpoint) keeps computing an ``/invoke`` or ``/batch``
    whose client has disconnected. Here, once the request body has been read, this
    middleware alone listens on the connection; a disconnect before the response is
    complete cancels the app (the upstream request is closed, the embedded model stops).
    The app's own later ``receive()`` calls (sse-starlette listens for disconnects) are
    answered from what this middleware saw.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = anyio.Event()
        disconnected = anyio.Event()
        response_complete = False

        async def app_receive() -> Message:
            if not body_read.is_set():
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_read.set()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                return message
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def app_send(message: Message) -> None:
            nonlocal response_complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_complete = True
            await send(message)

        async with anyio.create_task_group() as tasks:

            async def run_app() -> None:
                await self.app(scope, app_receive, app_send)
                tasks.cancel_scope.cancel()

            async def watch() -> None:
                await body_read.wait()
                if disconnected.is_set():
                    tasks.cancel_scope.cancel()
                    return
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    if not response_complete:
                        method, path = scope.get("method"), scope.get("path")
                        logger.info("%s %s: client went away, work cancelled", method, path)
                        tasks.cancel_scope.cancel()

            tasks.start_soon(run_app)
            tasks.start_soon(watch)


def _problem(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{loc or 'body'}: {error.get('msg', 'invalid')}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default echoes the offending input, which may be inf/NaN (not JSON)
    # or a huge prompt: name the field and the problem only.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = [_problem(e) for e in errors]
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        if isinstance(e, dict)
        else {"loc": [], "msg": str(e), "type": "invalid"}
        for e in errors
    ]
    error = InvalidInputError("; ".join(problems) or "invalid request")
    return JSONResponse({"error": error.to_dict(), "detail": detail}, status_code=error.status_code)


def install_error_handling(app: FastAPI, secrets: Sequence[str] = ()) -> None:
    """Typed errors for ``app``: the middleware, and a JSON-safe 422 handler.

    Work is also cancelled when a client disconnects (``CancelOnDisconnect``, inside the
    error middleware).
    """
    app.add_middleware(CancelOnDisconnect)
    app.add_middleware(ErrorMiddleware, secrets=secrets)
    app.add_exception_handler(RequestValidationError, _validation_error)
