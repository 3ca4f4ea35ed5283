"""The edge: its order, and its shared helpers (the path below the root, the matching route,
event streams)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route

from langserve_logprobs.auth import ApiKeyMiddleware
from langserve_logprobs.edge import is_event_stream, matching_routes, route_path
from langserve_logprobs.exposure import edge_middleware, plan_exposure
from langserve_logprobs.metrics import ObserveMiddleware, ServiceMetrics
from langserve_logprobs.quotas import BodySizeLimit, LimitsMiddleware
from langserve_logprobs.settings import Settings
from langserve_logprobs.workarounds.hidden_errors import ErrorMiddleware
from langserve_logprobs.workarounds.unchecked_envelope import EnvelopeCheck
from langserve_logprobs.workarounds.work_after_disconnect import CancelOnDisconnect


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        pytest.param("/healthz", "", "/healthz", id="no-root"),
        pytest.param("/api/healthz", "/api", "/healthz", id="below-root"),
        pytest.param("/api", "/api", "", id="the-root"),
        pytest.param("/apis/x", "/api", "/apis/x", id="root-is-a-prefix-only"),
        pytest.param("/other", "/api", "/other", id="outside-root"),
    ],
)
def test_route_path(path: str, root: str, expected: str) -> None:
    assert route_path({"type": "http", "path": path, "root_path": root}) == expected


def _endpoint(request: Any) -> None:
    raise AssertionError


def test_matching_routes_are_in_the_routers_order() -> None:
    first = Route("/r/batch", _endpoint, methods=["POST"])
    second = Route("/r/batch", _endpoint, methods=["POST"])
    mount = Mount("/local", routes=[])
    app = Starlette(routes=[Route("/other", _endpoint), first, second, mount])
    scope = {"type": "http", "method": "POST", "path": "/r/batch", "root_path": "", "app": app}
    assert list(matching_routes(scope)) == [first, second]
    scope = {**scope, "path": "/local/v1/models", "method": "GET"}
    assert list(matching_routes(scope)) == [mount]
    assert list(matching_routes({**scope, "path": "/nowhere"})) == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([(b"content-type", b"text/event-stream; charset=utf-8")], True, id="sse"),
        pytest.param([(b"content-type", b"application/json")], False, id="json"),
        pytest.param([], False, id="no-type"),
    ],
)
def test_is_event_stream(headers: list[tuple[bytes, bytes]], expected: bool) -> None:
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    assert is_event_stream(start) is expected


def test_the_edge_is_one_ordered_list() -> None:
    settings = Settings(
        _env_file=None,
        openai_base_url="http://127.0.0.1:9/v1",
        api_keys="k1",
        cors_origins="http://a.example",
        max_concurrent=2,
    )
    exposure = plan_exposure(settings, embedded=False)
    stack = edge_middleware(settings, exposure, ServiceMetrics(), secrets=[])
    assert [m.cls for m in stack] == [  # type: ignore[comparison-overlap]
        ObserveMiddleware,
        CORSMiddleware,
        ApiKeyMiddleware,
        LimitsMiddleware,
        BodySizeLimit,
        ErrorMiddleware,
        CancelOnDisconnect,
        EnvelopeCheck,
    ]
    bare = Settings(_env_file=None, openai_base_url="http://127.0.0.1:9/v1")
    plain = edge_middleware(bare, plan_exposure(bare, embedded=False), ServiceMetrics(), [])
    assert [m.cls for m in plain] == [  # type: ignore[comparison-overlap]
        ObserveMiddleware,
        BodySizeLimit,
        ErrorMiddleware,
        CancelOnDisconnect,
        EnvelopeCheck,
    ]
