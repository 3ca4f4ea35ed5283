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
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langserve_logprobs.edge import send_error
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
                await send_error(send, error)
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


_ENDPOINTS = ("/invoke", "/batch", "/stream", "/stream_log", "/stream_events")


class EnvelopeCheck:
    """Checks what LangServe leaves unchecked in a request body before it reads it.

    LangServe accepts ``"config": null`` and then fails on it (a 500), and it takes a
    ``/batch`` body's ``inputs`` as ``Any``: a string is iterated character by character
    (each character an input), and an item that does not match the route's input schema
    raises outside LangServe's own error translation, another 500. Here ``config`` must
    not be null, ``inputs`` must be a list whose every item matches the route's input
    schema (the one its OpenAPI schema publishes), and a ``config`` list needs one entry per
    input; otherwise the answer is a 422 ``invalid_input`` naming the item and the field.
    Bodies that are not JSON objects go on to LangServe unchanged; it rejects them itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inputs: dict[str, TypeAdapter[Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not scope.get("path", "").endswith(_ENDPOINTS)
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        errors = self._problems(scope, body)
        if errors:
            await _invalid_input(errors)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _problems(self, scope: Scope, body: bytes) -> list[dict[str, Any]]:
        try:
            payload = json.loads(body)
        except ValueError:
            return []  # LangServe answers malformed JSON itself
        except RecursionError:
            return [_error((), "is nested too deeply", "too_deep")]
        if (where := _huge_integer(payload)) is not None:
            # LangServe's stream events echo the input through orjson, which fails on them.
            return [_error(where, "integers must fit in 64 bits", "int_too_big")]
        if not isinstance(payload, dict):
            return []
        if "config" in payload and payload["config"] is None:
            return [_error(("config",), "must be an object (or leave it out), not null", "none")]
        if not str(scope.get("path")).endswith("/batch") or "inputs" not in payload:
            return []
        inputs, config = payload["inputs"], payload.get("config")
        if not isinstance(inputs, list):
            kind = type(inputs).__name__
            return [_error(("inputs",), f"must be a list of inputs, not {kind}", "list_type")]
        if isinstance(config, list) and len(config) != len(inputs):
            msg = f"has {len(config)} configs for {len(inputs)} inputs (one per input, or one dict)"
            return [_error(("config",), msg, "config_count")]
        adapter = self._adapter(scope)
        if adapter is None:
            return []
        try:
            adapter.validate_python(inputs)
        except ValidationError as invalid:
            return [
                {**e, "loc": ("body", "inputs", *e.get("loc", ()))}
                for e in invalid.errors(include_url=False, include_input=False)
            ]
        return []

    def _adapter(self, scope: Scope) -> TypeAdapter[Any] | None:
        """The type of ``inputs`` in the route's published batch request schema."""
        for route in getattr(scope.get("app"), "routes", ()):
            field = route.body_field if isinstance(route, APIRoute) else None
            model = field.field_info.annotation if field is not None else None
            if (
                isinstance(model, type)
                and issubclass(model, BaseModel)
                and "inputs" in model.model_fields
                and route.matches(scope)[0] == Match.FULL
            ):
                # Keyed by the route's path template: /c/{config_hash}/ paths are many.
                if route.path not in self._inputs:
                    inputs_type: Any = model.model_fields["inputs"].annotation
                    self._inputs[route.path] = TypeAdapter(inputs_type)
                return self._inputs[route.path]
        return None


def _huge_integer(value: Any) -> tuple[str | int, ...] | None:
    """Where the first integer outside the signed 64-bit range is, if any."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, int) and not -(2**63) <= item < 2**64:
            return where
        if isinstance(item, dict):
            stack.extend(((*where, key), inner) for key, inner in item.items())
        elif isinstance(item, list):
            stack.extend(((*where, i), inner) for i, inner in enumerate(item))
    return None


def _error(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ("body", *loc), "msg": msg, "type": kind}


def _problem(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{loc or 'body'}: {error.get('msg', 'invalid')}"


def _invalid_input(errors: Sequence[Any]) -> JSONResponse:
    """The 422 ``invalid_input`` answer: problems named by field, never the input itself."""
    problems = [_problem(e) for e in errors]
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        if isinstance(e, dict)
        else {"loc": [], "msg": str(e), "type": "invalid"}
        for e in errors
    ]
    error = InvalidInputError("; ".join(problems) or "invalid request")
    return JSONResponse({"error": error.to_dict(), "detail": detail}, status_code=error.status_code)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default echoes the offending input, which may be inf/NaN (not JSON)
    # or a huge prompt: name the field and the problem only.
    return _invalid_input(exc.errors() if isinstance(exc, RequestValidationError) else [])


def install_error_handling(app: FastAPI, secrets: Sequence[str] = ()) -> None:
    """Typed errors for ``app``: the middleware, and a JSON-safe 422 handler.

    Work is also cancelled when a client disconnects (``CancelOnDisconnect``, inside the
    error middleware), and request envelopes are checked where LangServe does not
    (``EnvelopeCheck``, innermost).
    """
    app.add_middleware(EnvelopeCheck)
    app.add_middleware(CancelOnDisconnect)
    app.add_middleware(ErrorMiddleware, secrets=secrets)
    app.add_exception_handler(RequestValidationError, _validation_error)
