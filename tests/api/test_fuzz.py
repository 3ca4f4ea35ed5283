"""Property-based fuzzing of every operation in the app's OpenAPI schema (schemathesis).

Valid and invalid bodies, parameters and headers, generated from the published schema,
go to a real uvicorn server whose upstream is the zero-latency fake: what is under test
is the service's own input handling. Every answer must be below 500, in a stream too (an
``event: error`` carries a status), every 4xx must say what is wrong, and the server must
still be healthy afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode

from langserve_logprobs.settings import Settings
from server import create_app
from tests.helpers import fake_upstream_settings
from tests.servers import run_server

MAX_EXAMPLES = 15
"""Examples per operation and generation mode; about 80 operations."""

# The fake upstream answers every chat request with the same plain sentence. Routes that
# need a JSON answer from the model rightly call that a broken upstream (502
# upstream_error, "the model's answer is not valid JSON / not one of the options"); that
# one answer is allowed, on those routes only. Every other 5xx fails.
JSON_ANSWER_ROUTES = ("/classify/", "/extract/")


@pytest.fixture(scope="module")
def fuzz_url(fake_upstream: Any) -> Iterator[str]:
    """A real server in front of the fake upstream."""
    settings = fake_upstream_settings(fake_upstream, request_timeout=10.0)
    with run_server(create_app(settings)) as url:
        yield url


def app_schema() -> Any:
    """The app's own OpenAPI schema, fuzzed with valid and invalid data.

    It does not depend on the upstream, so it is read from an app built here (nothing is
    loaded or called); the requests go to the real server (``fuzz_url``).
    """
    settings = Settings(openai_base_url="http://127.0.0.1:9/v1", _env_file=None)
    loaded = schemathesis.openapi.from_dict(create_app(settings).openapi())
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
    )
    return loaded


schema = app_schema()


def stream_events(body: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of an event stream, lines split as SSE does: on CR and LF only
    (``str.splitlines`` also splits inside JSON strings, on U+2028 and friends)."""
    events = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", body):
        lines = re.split(r"\r\n|\n|\r", block)
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data") or "null")))
    return events


def allowed_upstream_error(path: str, error: dict[str, Any]) -> bool:
    return (
        path.startswith(JSON_ANSWER_ROUTES)
        and error.get("status_code") == 502
        and error.get("type") == "upstream_error"
        and "the model's answer is not" in str(error.get("message"))
    )


def check_answer(path: str, status: int, content_type: str, body: str) -> None:
    """No 5xx (in the status or in a stream's error event); a 4xx names its problem."""
    if content_type.startswith("text/event-stream"):
        for name, data in stream_events(body):
            if name == "error" and isinstance(data, dict):
                assert data.get("status_code", 500) < 500 or allowed_upstream_error(path, data), (
                    f"{path}: error event {data}"
                )
                assert data.get("message"), f"{path}: error event without a message: {data}"
        return
    if status >= 500:
        error: dict[str, Any] = {}
        if content_type.startswith("application/json"):
            error = json.loads(body).get("error") or {}
        assert allowed_upstream_error(path, {**error, "status_code": status}), (
            f"{path}: {status} {body[:500]}"
        )
    elif status >= 400 and content_type.startswith("application/json"):
        answer = json.loads(body)
        problem = (answer.get("error") or {}).get("message") or answer.get("detail")
        assert problem, f"{path}: {status} without a message: {body[:500]}"


@pytest.mark.timeout(120)
@schema.parametrize()  # type: ignore[untyped-decorator]
def test_no_server_error(case: Any, fuzz_url: str) -> None:
    response = case.call(base_url=fuzz_url, timeout=30)
    check_answer(
        case.formatted_path,
        response.status_code,
        (response.headers.get("content-type") or [""])[0],
        response.text,
    )


def test_server_is_still_up(fuzz_url: str) -> None:
    response = httpx.get(fuzz_url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
