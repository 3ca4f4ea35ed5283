"""/score and /classify's score method against upstreams that cannot score given text."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from langserve_logprobs.upstream import Upstream
from server import create_app
from tests.helpers import fake_upstream_settings


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


def test_one_spurious_404_does_not_turn_method_score_off(fake_upstream: Any) -> None:
    """The upstream answers one 404 to a scoring request, then serves normally: the capability
    is re-checked at once (a probe), so that /classify and the next one both use method score;
    nothing is remembered by the chain."""
    settings = fake_upstream_settings(fake_upstream, model_name="scores-404-once")
    body = {"input": {"text": "fine", "labels": ["positive", "negative"]}}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        first = client.post("/classify/invoke", json=body)
        assert first.status_code == 200, first.text
        assert first.json()["output"]["method"] == "score"
        second = client.post("/classify/invoke", json=body)
        assert second.json()["output"]["method"] == "score"
    # the 404, the probe, the retry, then the content-free and the second request's scoring
    assert fake_upstream.state.completions["scores-404-once"] >= 4


def test_an_upstream_that_cannot_score_is_learned_then_rechecked(
    fake_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learned "cannot score" answers the next requests without a scoring request (the
    classify falls back to generating its answer), and is tried again once
    SCORING_RECHECK_SECONDS pass."""
    from langserve_logprobs import capabilities

    settings = fake_upstream_settings(fake_upstream, model_name="ok")
    body = {"input": {"text": "fine", "labels": ["positive", "negative"]}}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        chats = fake_upstream.state.hits["ok"]
        client.post("/classify/invoke", json=body)
        assert fake_upstream.state.hits["ok"] == chats + 1  # fell back to generation
        sent = fake_upstream.state.completions["ok"]
        assert sent >= 1
        client.post("/classify/invoke", json=body)
        assert fake_upstream.state.completions["ok"] == sent  # the cache answered
        assert fake_upstream.state.hits["ok"] == chats + 2
        monkeypatch.setattr(capabilities, "SCORING_RECHECK_SECONDS", 0.0)
        client.post("/classify/invoke", json=body)
        assert fake_upstream.state.completions["ok"] > sent  # re-checked


def test_sync_invoke_is_derived_from_the_async_path(settings: Any) -> None:
    """/score's and /decide's blocking invoke (for in-process Python users) run the async
    implementation: the same numbers as the route."""
    from chains import decide, score

    scoring = settings.model_copy(update={"model_name": "scores"})
    upstream = Upstream.from_settings(scoring)
    out = score.build_chain(scoring, upstream).invoke(
        {"context": "a b", "continuations": [" c", " dd"]}
    )
    assert [s["sum_logprob"] for s in out["scores"]] == pytest.approx([-0.2, -0.3])
    question = {"type": "choice", "instructions": "?", "choices": [{"value": "x"}, {"value": "yy"}]}
    decision = decide.build_chain(scoring, upstream).invoke(
        {"input": "a b", "questions": [question], "calibration": "none"}
    )
    probabilities = [p["probability"] for p in decision["answers"][0]["probabilities"]]
    # " x\n\n" and " yy\n\n": -0.4 and -0.5 (the blank line is its own token: -0.2)
    assert probabilities == pytest.approx([1 / (1 + math.exp(-0.1)), 1 / (1 + math.exp(0.1))])
