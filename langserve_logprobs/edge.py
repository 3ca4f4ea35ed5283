"""What the edge middlewares share: per-request bookkeeping, a JSON error answer, and what
a request is (its path below the app's root, the route it matches, whether its answer is an
event stream).

``auth``, ``quotas`` and ``metrics`` are plain ASGI middlewares. They talk to each other
through one ``RequestInfo`` kept in the request's ``scope["state"]`` (which Starlette
shares with ``request.state``): the key id set by ``auth``, the reason a request was
refused, the tokens counted by the chains' callback, the time of the first stream event.
``metrics`` reads it once the response is done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import Message, Scope, Send

from langserve_logprobs.errors import ServiceError

_STATE_KEY = "langserve_logprobs.request"


@dataclass
class RequestInfo:
    """What the edge learnt about one request (never the key itself)."""

    key_id: str | None = None
    rejected: str | None = None
    tokens: int | None = None
    first_event: float | None = None

    def add_tokens(self, count: int) -> None:
        """Count ``count`` more generated tokens for this request."""
        self.tokens = (self.tokens or 0) + count


def request_info(scope: Scope) -> RequestInfo:
    """The request's ``RequestInfo``, created on first use."""
    state: dict[str, Any] = scope.setdefault("state", {})
    info = state.get(_STATE_KEY)
    if not isinstance(info, RequestInfo):
        info = state[_STATE_KEY] = RequestInfo()
    return info


async def send_error(
    send: Send, error: ServiceError, headers: dict[str, str] | None = None
) -> None:
    """Answer with ``{"error": {"type", "message", "status_code"}}``, its status and its
    headers (``Retry-After``), plus ``headers``."""
    body = json.dumps({"error": error.to_dict()}).encode()
    await send_body(
        send, error.status_code, body, "application/json", {**error.headers(), **(headers or {})}
    )


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    """A whole response in two ASGI messages."""
    raw = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def route_path(scope: Scope) -> str:
    """The request's path below the app's ``root_path`` (what the app's routes match)."""
    path = str(scope["path"])
    root = str(scope.get("root_path", ""))
    if not root or not path.startswith(root):
        return path
    rest = path[len(root) :]
    return rest if not rest or rest.startswith("/") else path


def matching_routes(scope: Scope) -> Iterator[BaseRoute]:
    """The app's routes that fully match the request, in the order the router tries them
    (so the first is the one that answers). Works before routing has run."""
    for route in getattr(scope.get("app"), "routes", ()):
        if isinstance(route, BaseRoute) and route.matches(scope)[0] == Match.FULL:
            yield route


def is_event_stream(start: Message) -> bool:
    """Whether an ``http.response.start`` message begins a server-sent event stream."""
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).startswith(b"text/event-stream")
    return False
