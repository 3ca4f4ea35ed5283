"""Upstream failures become typed, safe errors on invoke, batch and stream."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from langserve_logprobs.settings import Settings
from server import create_app
from tests.helpers import (
    FAKE_KEY,
    HANG_TIMEOUT,
    fake_upstream_settings,
    invoke_body,
    sse_events,
)
from tests.servers import free_port


@pytest.mark.parametrize(
    ("model", "status", "error_type"),
    [
        pytest.param("status:429", 429, "rate_limited", id="rate-limited"),
        pytest.param("status:503", 503, "upstream_unavailable", id="unavailable"),
        pytest.param("status:500", 502, "upstream_error", id="upstream-500"),
        pytest.param("status:401", 502, "upstream_auth", id="auth-refused"),
        pytest.param("context", 400, "context_length_exceeded", id="context-length"),
        pytest.param("status:400", 400, "invalid_request", id="invalid-parameter"),
        pytest.param("garbage", 502, "upstream_error", id="garbage-json"),
    ],
)
def test_invoke_maps_upstream_failure(client: TestClient, model: str, status: int, error_type: str):
    response = client.post("/generate/invoke", json=invoke_body(model))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == error_type
    assert error["status_code"] == status
    assert "Traceback" not in response.text
    assert FAKE_KEY not in response.text


def test_a_hanging_upstream_is_a_504_on_invoke_and_a_typed_event_on_stream(fake_upstream: Any):
    """The one test with a short timeout (``HANG_TIMEOUT``): every other test waits for
    ``UPSTREAM_TIMEOUT``, so that a busy machine cannot turn its expected answer into a 504."""
    settings = fake_upstream_settings(fake_upstream, request_timeout=HANG_TIMEOUT)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        invoked = client.post("/generate/invoke", json=invoke_body("hang"))
        streamed = client.post("/generate/stream", json=invoke_body("hang"))
    assert invoked.status_code == 504
    assert invoked.json()["error"]["type"] == "upstream_timeout"
    assert invoked.json()["error"]["status_code"] == 504
    name, data = sse_events(streamed.text)[-1]
    assert name == "error"
    assert data == {"type": "upstream_timeout", "message": data["message"], "status_code": 504}
    for response in (invoked, streamed):
        assert FAKE_KEY not in response.text and "Traceback" not in response.text
    assert "Internal Server Error" not in streamed.text


def test_rate_limit_passes_retry_after(client: TestClient):
    response = client.post("/generate/invoke", json=invoke_body("status:429"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


def test_auth_error_names_the_key_problem_without_the_key(client: TestClient, caplog):
    with caplog.at_level(logging.DEBUG):
        response = client.post("/generate/invoke", json=invoke_body("status:401"))
    assert response.json()["error"]["message"] == "upstream rejected the API key"
    assert FAKE_KEY not in response.text
    assert FAKE_KEY not in caplog.text
    assert "SECRETKEY" not in caplog.text
    assert "Traceback" not in caplog.text


PLAIN_KEY = "plain-upstream-key-42"  # no sk- prefix: only the known-secret redaction hides it


@pytest.mark.parametrize("route", ["/generate", "/chat"])
def test_a_key_quoted_by_the_upstream_never_reaches_a_batch_item(fake_upstream: Any, route: str):
    settings = fake_upstream_settings(fake_upstream, openai_api_key=PLAIN_KEY)
    item = {"prompt": "hi"} if route == "/generate" else "hi"
    body = {
        "inputs": [item, item],
        "config": [
            {"configurable": {"model": "ok"}},
            {"configurable": {"model": "echo-key"}},
        ],
    }
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        invoked = client.post(f"{route}/invoke", json={**invoke_body("echo-key"), "input": item})
        batch = client.post(f"{route}/batch", json=body)
    assert invoked.status_code == 400 and PLAIN_KEY not in invoked.text
    assert "[redacted]" in invoked.json()["error"]["message"]
    assert batch.status_code == 200, batch.text
    failed = batch.json()["output"][1]["error"]
    assert failed["type"] == "invalid_request"
    assert PLAIN_KEY not in batch.text and "[redacted]" in failed["message"]


def test_unreachable_upstream_is_503():
    settings = Settings(
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        openai_api_key=FAKE_KEY,
        max_retries=0,
        _env_file=None,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post("/generate/invoke", json=invoke_body("ok"))
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "upstream_unavailable"


def test_transient_errors_are_retried(fake_upstream: Any):
    settings = fake_upstream_settings(fake_upstream, max_retries=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post("/generate/invoke", json=invoke_body("flaky:503:2"))
    assert response.status_code == 200
    assert response.json()["output"]["completion"] == "Hello there friend! Bye"
    assert fake_upstream.state.hits["flaky:503:2"] == 3


def test_retries_are_bounded(fake_upstream: Any):
    settings = fake_upstream_settings(fake_upstream, max_retries=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post("/generate/invoke", json=invoke_body("flaky:503:5"))
    assert response.status_code == 503
    assert fake_upstream.state.hits["flaky:503:5"] == 2


@pytest.mark.parametrize(
    ("model", "status", "error_type"),
    [
        pytest.param("status:429", 429, "rate_limited", id="rate-limited"),
        pytest.param("status:401", 502, "upstream_auth", id="auth-refused"),
        pytest.param("drop", 503, "upstream_unavailable", id="dropped-mid-stream"),
    ],
)
def test_stream_ends_with_typed_error_event(
    client: TestClient, model: str, status: int, error_type: str
):
    response = client.post("/generate/stream", json=invoke_body(model))
    events = sse_events(response.text)
    name, data = events[-1]
    assert name == "error"
    assert data == {"type": error_type, "message": data["message"], "status_code": status}
    assert "Internal Server Error" not in response.text
    assert FAKE_KEY not in response.text


def test_dropped_stream_delivers_tokens_before_the_error(client: TestClient):
    events = sse_events(client.post("/generate/stream", json=invoke_body("drop")).text)
    texts = [data["completion"] for name, data in events if name == "data"]
    assert "".join(texts) == "Hello there"


def test_sentinels_and_nan_become_null(client: TestClient):
    response = client.post("/generate/invoke", json=invoke_body("ok"))
    assert response.status_code == 200
    assert "NaN" not in response.text
    assert "Infinity" not in response.text
    output = response.json()["output"]
    logprobs = [t["logprob"] for t in output["tokens"]]
    assert logprobs == [-0.1, None, None, None, -0.7]
    assert output["stats"]["num_unknown"] == 3
    assert output["stats"]["sum_logprob"] == pytest.approx(-0.8)
    assert output["stats"]["perplexity"] == pytest.approx(math.exp(0.4))


def test_batch_item_failure_does_not_fail_the_batch(client: TestClient):
    body = {
        "inputs": [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}],
        "config": [
            {"configurable": {"model": "ok"}},
            {"configurable": {"model": "status:500"}},
            {"configurable": {"model": "ok", "top_logprobs": 99}},
        ],
    }
    response = client.post("/generate/batch", json=body)
    assert response.status_code == 200
    first, second, third = response.json()["output"]
    assert first["completion"] == "Hello there friend! Bye"
    assert second == {
        "error": {
            "type": "upstream_error",
            "message": "the model server failed with status 500: upstream failure 500",
            "status_code": 502,
        }
    }
    assert third["error"]["status_code"] == 400
    assert "top_logprobs" in third["error"]["message"]


def test_output_schema_declares_item_errors(client: TestClient):
    schema = client.get("/generate/output_schema").json()
    text = json.dumps(schema)
    assert "ItemError" in text
    assert "GenerateOutput" in text


def test_server_stays_up_after_errors(client: TestClient):
    for model in ("status:500", "garbage", "drop"):
        client.post("/generate/invoke", json=invoke_body(model))
    assert client.get("/healthz").status_code == 200
    assert client.post("/generate/invoke", json=invoke_body("ok")).status_code == 200
