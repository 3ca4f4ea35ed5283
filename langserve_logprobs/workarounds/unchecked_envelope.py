"""LangServe leaves parts of a request body unchecked and fails on them later with a 500.

Upstream behaviour (langserve 0.3): ``"config": null`` is accepted and then fails (a 500);
a ``/batch`` body's ``inputs`` is typed ``Any``: a string is iterated character by character
(each character an input), and an item that does not match the route's input schema raises
outside LangServe's own error translation, another 500. Integers beyond 64 bits are
accepted and then break its stream events (orjson cannot encode them).

Correction: ``EnvelopeCheck`` reads a LangServe endpoint's body before LangServe does:
``config`` must not be null, ``inputs`` must be a list whose every item matches the route's
input schema (the one its OpenAPI schema publishes), a ``config`` list needs one entry per
input, and integers must fit in 64 bits; otherwise the answer is a 422 ``invalid_input``
naming the item and the field. Bodies that are not JSON objects go on to LangServe
unchanged: it rejects them itself.

Delete when: LangServe rejects these bodies itself (the canary
``test_langserve_takes_a_string_as_batch_inputs`` fails).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langserve_logprobs.edge import matching_routes
from langserve_logprobs.workarounds.input_echo import invalid_input

_ENDPOINTS = ("/invoke", "/batch", "/stream", "/stream_log", "/stream_events")


def is_langserve_call(scope: Scope) -> bool:
    """Whether the request is a POST to one of LangServe's endpoints."""
    return (
        scope["type"] == "http"
        and scope.get("method") == "POST"
        and str(scope.get("path", "")).endswith(_ENDPOINTS)
    )


class EnvelopeCheck:
    """Checks what LangServe leaves unchecked in a request body before it reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inputs: dict[str, TypeAdapter[Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_langserve_call(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        errors = self.problems(scope, body)
        if errors:
            await invalid_input(errors)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def problems(self, scope: Scope, body: bytes) -> list[dict[str, Any]]:
        """What is wrong with ``body`` (FastAPI's error shape); empty when nothing is."""
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
        # LangServe's handler takes the raw request; its documentation twin, registered
        # after it for the same path, declares the batch request model.
        for route in matching_routes(scope):
            field = route.body_field if isinstance(route, APIRoute) else None
            model = field.field_info.annotation if field is not None else None
            if (
                isinstance(route, APIRoute)
                and isinstance(model, type)
                and issubclass(model, BaseModel)
                and "inputs" in model.model_fields
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
