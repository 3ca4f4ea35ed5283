"""Every invalid request gets a 4xx naming the field and the problem; the server stays up."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from langserve_logprobs.settings import Settings
from tests.helpers import sse_events

JSON = {"content-type": "application/json"}


def error_of(response: Any) -> tuple[int, str]:
    """(status, message) of an error: a JSON body, or a stream's last error event."""
    if response.headers["content-type"].startswith("text/event-stream"):
        name, data = sse_events(response.text)[-1]
        assert name == "error"
        return data["status_code"], data["message"]
    return response.status_code, response.json()["error"]["message"]


def body(prompt: Any = "hi", **configurable: Any) -> dict[str, Any]:
    return {
        "input": {"prompt": prompt},
        "config": {"configurable": {"model": "ok", **configurable}},
    }


CONFIG_CASES = [
    pytest.param({"top_logprobs": 21}, "top_logprobs", id="top-logprobs-over-20"),
    pytest.param({"top_logprobs": -1}, "top_logprobs", id="top-logprobs-negative"),
    pytest.param({"max_tokens": 0}, "max_tokens", id="max-tokens-zero"),
    pytest.param({"max_tokens": 2049}, "max_tokens", id="max-tokens-over-cap"),
    pytest.param({"temperature": "hot"}, "temperature", id="temperature-wrong-type"),
    pytest.param({"temperature": 3.0}, "temperature", id="temperature-over-2"),
    pytest.param({"low_prob_threshold": 1.5}, "low_prob_threshold", id="threshold-over-1"),
]


@pytest.mark.parametrize(("configurable", "field"), CONFIG_CASES)
def test_invoke_rejects_bad_config(client: TestClient, configurable: dict[str, Any], field: str):
    status, message = error_of(client.post("/generate/invoke", json=body(**configurable)))
    assert 400 <= status < 500
    assert field in message


@pytest.mark.parametrize(("configurable", "field"), CONFIG_CASES)
def test_stream_rejects_bad_config_with_4xx_event(
    client: TestClient, configurable: dict[str, Any], field: str
):
    status, message = error_of(client.post("/generate/stream", json=body(**configurable)))
    assert 400 <= status < 500
    assert field in message


@pytest.mark.parametrize(
    ("content", "status", "needle"),
    [
        pytest.param(b'{"input": {"prompt": "hi"', 422, "JSON", id="malformed-json"),
        pytest.param(b'{"input": {"prompt": "\xff\xfe"}}', 400, "UTF-8", id="invalid-utf8"),
        pytest.param(b'{"input": {"prompt": 12}}', 422, "prompt", id="prompt-wrong-type"),
        pytest.param(b'{"input": {"system": "x"}}', 422, "prompt", id="prompt-missing"),
        pytest.param(b'{"nothing": 1}', 422, "input", id="input-missing"),
        pytest.param(b'{"input": {"prompt": 1e999}}', 422, "prompt", id="prompt-infinite"),
        pytest.param(
            b'{"input": {"prompt": "a"}, "config": {"configurable": {"temperature": 1e999}}}',
            400,
            "temperature",
            id="temperature-infinite",
        ),
    ],
)
def test_invoke_rejects_bad_body(client: TestClient, content: bytes, status: int, needle: str):
    response = client.post("/generate/invoke", content=content, headers=JSON)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["status_code"] == status
    # One status per type: 422 for bodies the schema rejects, 400 for our own checks.
    assert error["type"] == {422: "invalid_input", 400: "invalid_request"}[status]
    assert needle in error["message"]


def test_prompt_over_the_size_limit(client: TestClient, settings: Settings):
    prompt = "x" * (settings.max_prompt_chars + 1)
    response = client.post("/generate/invoke", json=body(prompt))
    assert response.status_code == 400
    assert "prompt" in response.json()["error"]["message"]
    assert "over the limit" in response.json()["error"]["message"]


def test_stream_prompt_over_the_size_limit(client: TestClient, settings: Settings):
    prompt = "x" * (settings.max_prompt_chars + 1)
    name, data = sse_events(client.post("/generate/stream", json=body(prompt)).text)[-1]
    assert (name, data["status_code"], data["type"]) == ("error", 400, "invalid_request")


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        pytest.param([["wizard", "hi"]], "wizard", id="unknown-role"),
        pytest.param([{"role": "robot", "content": "hi"}], "robot", id="unknown-openai-role"),
        pytest.param([], "at least one message", id="no-messages"),
        pytest.param([{"role": "user"}], "content", id="message-without-content"),
    ],
)
def test_chat_rejects_bad_messages(client: TestClient, messages: Any, needle: str):
    response = client.post(
        "/chat/invoke", json={"input": messages, "config": {"configurable": {"model": "ok"}}}
    )
    assert 400 <= response.status_code < 500
    assert needle in response.json()["error"]["message"]


def test_bad_batch_items_fail_alone(client: TestClient):
    payload = {
        "inputs": [{"prompt": "ok"}, {"prompt": "y" * 40_000}],
        "config": {"configurable": {"model": "ok"}},
    }
    response = client.post("/generate/batch", json=payload)
    assert response.status_code == 200
    good, bad = response.json()["output"]
    assert good["completion"]
    assert bad["error"]["status_code"] == 400


def test_server_stays_up(client: TestClient):
    client.post("/generate/invoke", content=b"\xff", headers=JSON)
    client.post("/generate/invoke", json=body(top_logprobs=50))
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("path", "payload", "needle"),
    [
        pytest.param("/generate/batch", {"inputs": "nope"}, "inputs: must be a list", id="str"),
        pytest.param("/generate/batch", {"inputs": {"prompt": "a"}}, "not dict", id="dict"),
        pytest.param("/chat/batch", {"inputs": "hi"}, "inputs: must be a list", id="chat-str"),
        pytest.param("/generate/batch", {"inputs": [{"prompt": "a"}, 1]}, "inputs.1", id="item"),
        pytest.param(
            "/generate/batch", {"inputs": [{"system": "x"}]}, "inputs.0.prompt", id="no-prompt"
        ),
        pytest.param(
            "/classify/batch",
            {"inputs": [{"text": "x", "labels": "ab"}]},
            "inputs.0.labels",
            id="classify-labels",
        ),
        pytest.param(
            "/generate/batch",
            {"inputs": [{"prompt": "a"}], "config": [{}, {}]},
            "2 configs for 1 inputs",
            id="config-count",
        ),
        pytest.param(
            "/generate/invoke", {"input": {"prompt": "a"}, "config": None}, "config", id="null"
        ),
        pytest.param(
            "/chat/stream", {"input": "hi", "config": None}, "config", id="stream-null-config"
        ),
        pytest.param(
            "/score/batch", {"inputs": [{"continuations": []}]}, "continuations", id="score"
        ),
        pytest.param(
            "/extract/stream_events",
            {"input": {"text": "x", "schema": {"type": "object", "maximum": 2**64}}},
            "input.schema.maximum: integers must fit in 64 bits",
            id="integer-over-64-bits",
        ),
        pytest.param(
            "/generate/stream_log",
            {"input": {"prompt": "a"}, "config": {"metadata": {"n": -(2**63) - 1}}},
            "config.metadata.n",
            id="integer-under-64-bits",
        ),
    ],
)
def test_malformed_envelope_is_422(client: TestClient, path: str, payload: Any, needle: str):
    """LangServe leaves these to fail as 500s (issue #8 part 5, found from outside)."""
    response = client.post(path, json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_input"
    assert needle in error["message"]


def test_chat_batch_item_error_stays_in_place(client: TestClient):
    # LangChain's message union raised TypeError (a 500) on the ItemError of a failed item.
    payload = {
        "inputs": ["hi", [{"content": "no role"}]],
        "config": {"configurable": {"model": "ok"}},
    }
    response = client.post("/chat/batch", json=payload)
    assert response.status_code == 200, response.text
    good, bad = response.json()["output"]
    assert good["content"] == "Hello there friend! Bye"
    assert bad["error"]["status_code"] == 400
    assert "role" in bad["error"]["message"]


def test_deeply_nested_body_is_422(client: TestClient):
    content = b'{"input": {"prompt": "a"}, "kwargs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post("/generate/invoke", content=content, headers=JSON)
    assert response.status_code == 422
    assert "nested too deeply" in response.json()["error"]["message"]
