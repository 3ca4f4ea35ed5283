"""/score and /classify's score method against upstreams that cannot score given text."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("ok", id="echo-ignored"),  # llama.cpp, Ollama: a completion, no logprobs
        pytest.param("status:400", id="refused"),  # OpenAI: echo with logprobs refused
        pytest.param("status:404", id="no-endpoint"),
    ],
)
def test_score_on_an_upstream_that_cannot_is_a_clear_400(
    client: TestClient, fake_upstream: Any, model: str
) -> None:
    body = {
        "input": {"context": "Hi", "continuations": [" there"]},
        "config": {"configurable": {"model": model}},
    }
    reply = client.post("/score/invoke", json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request"
    assert "this backend cannot score given text" in error["message"]
    assert fake_upstream.state.completions[model] >= 1


def test_classify_method_score_on_such_an_upstream_is_a_400(client: TestClient) -> None:
    body = {
        "input": {"text": "fine", "labels": ["positive", "negative"], "method": "score"},
        "config": {"configurable": {"model": "ok"}},
    }
    reply = client.post("/classify/invoke", json=body)
    assert reply.status_code == 400, reply.text
    assert "cannot score given text" in reply.json()["error"]["message"]


def test_score_upstream_outage_keeps_its_status(client: TestClient) -> None:
    body = {
        "input": {"context": "Hi", "continuations": [" there"]},
        "config": {"configurable": {"model": "status:503"}},
    }
    reply = client.post("/score/invoke", json=body)
    assert reply.status_code == 503, reply.text
