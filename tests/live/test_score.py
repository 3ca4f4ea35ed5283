"""/score and /classify's score method on the real embedded model over a real socket."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from langserve import RemoteRunnable

pytestmark = pytest.mark.live

SENTIMENT = ["positive", "negative"]
REVIVED = {"text", "messages", "page_content"}


def _remote(url: str) -> RemoteRunnable[Any, Any]:
    return RemoteRunnable(url)


def _keys(value: Any) -> set[str]:
    """Every dict key at any depth."""
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def _check_scores(out: dict[str, Any], continuations: list[str]) -> None:
    assert not _keys(out) & REVIVED, "LangChain.js would revive these keys"
    scores = out["scores"]
    assert [s["continuation"] for s in scores] == continuations
    for s in scores:
        assert b"".join(bytes(t["bytes"]) for t in s["tokens"]).decode() == s["continuation"]
        values = [t["logprob"] for t in s["tokens"]]
        assert all(v is not None and v <= 0.0 for v in values)
        assert s["num_tokens"] == len(values)
        assert s["sum_logprob"] == pytest.approx(math.fsum(values))
        assert s["mean_logprob_per_token"] == pytest.approx(s["sum_logprob"] / len(values))
        assert s["mean_logprob_per_byte"] == pytest.approx(s["sum_logprob"] / s["num_bytes"])
        assert s["perplexity"] == pytest.approx(math.exp(-s["mean_logprob_per_token"]))
    probs = [s["probability"] for s in scores]
    assert math.fsum(probs) == pytest.approx(1.0)
    sums = [s["sum_logprob"] for s in scores]
    assert [s["rank"] for s in scores] == [1 + sum(o > v for o in sums) for v in sums]
    assert scores[out["best"]]["rank"] == 1
    assert out["coverage"] == pytest.approx(min(1.0, math.fsum(math.exp(v) for v in sums)))
    assert out["model"]


def test_score_invoke_prefers_the_likely_continuation(live_url: str) -> None:
    continuations = [" Paris.", " a banana.", " 🐉☕"]
    out = _remote(live_url + "/score").invoke(
        {"context": "The capital of France is", "continuations": continuations}
    )
    _check_scores(out, continuations)
    assert out["best"] == 0
    first = out["scores"][0]["tokens"][0]
    assert first["top_logprobs"] and len(first["top_logprobs"]) == 5


def test_perplexity_of_a_text_equals_the_echoed_logprobs(live_url: str) -> None:
    text = "The cat sat on the mat. Café ☕"
    out = _remote(live_url + "/score").invoke(
        {"continuations": [text]}, {"configurable": {"top_logprobs": 0}}
    )
    _check_scores(out, [text])
    body = {"prompt": text, "echo": True, "logprobs": 0, "max_tokens": 0}
    echoed = httpx.post(f"{live_url}/local/v1/completions", json=body, timeout=60).json()
    legacy = echoed["choices"][0]["logprobs"]
    # Every token after BOS, with the number the completions endpoint reports for it.
    assert [t["logprob"] for t in out["scores"][0]["tokens"]] == legacy["token_logprobs"][1:]
    assert out["scores"][0]["tokens"][0]["top_logprobs"] == []


def test_score_batch_and_stream(live_url: str) -> None:
    score = _remote(live_url + "/score")
    inputs = [
        {"context": "2 + 2 =", "continuations": [" 4", " 5"]},
        {"context": "", "continuations": ["Hello world."]},
    ]
    outs = score.batch(inputs)
    _check_scores(outs[0], [" 4", " 5"])
    _check_scores(outs[1], ["Hello world."])
    events = list(score.stream(inputs[0]))
    assert len(events) == 1
    assert [s["sum_logprob"] for s in events[0]["scores"]] == pytest.approx(
        [s["sum_logprob"] for s in outs[0]["scores"]], abs=1e-6
    )


def test_score_chat_context_over_plain_http(live_url: str) -> None:
    body = {
        "input": {
            "context": [{"role": "user", "content": "Say hello."}],
            "continuations": ["Hello!", "Goodbye forever."],
        }
    }
    reply = httpx.post(f"{live_url}/score/invoke", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    _check_scores(reply.json()["output"], ["Hello!", "Goodbye forever."])


def test_score_bad_input_is_a_4xx(live_url: str) -> None:
    body: dict[str, Any] = {"input": {"continuations": []}}
    reply = httpx.post(f"{live_url}/score/invoke", json=body, timeout=30)
    assert reply.status_code == 422


def test_classify_defaults_to_score(live_url: str) -> None:
    classify = _remote(live_url + "/classify")
    outs = classify.batch(
        [
            {"text": "What a wonderful, lovely day!", "labels": SENTIMENT},
            {"text": "Horrible. I hate it, a total waste.", "labels": ["neg", "negative", "pos"]},
        ]
    )
    for out, labels in zip(outs, [SENTIMENT, ["neg", "negative", "pos"]], strict=True):
        assert out["method"] == "score" and out["marker"] is None
        assert list(out["distribution"]) == labels
        assert math.fsum(out["distribution"].values()) == pytest.approx(1.0)
        assert 0.0 < out["coverage"] <= 1.0
        assert out["confidence"] == max(out["distribution"].values())
        assert out["label"] == out["answer"]
    # Labels sharing a prefix (neg / negative) are told apart: both get their own mass.
    assert all(p > 0.0 for p in outs[1]["distribution"].values())


def test_classify_score_matches_score_route(live_url: str) -> None:
    """/classify's method score is a view over the decision engine: its distribution is
    /score's whole-answer logprobs after the text, with the content-free input's divided out."""
    from chains.classify import ClassifyInput, classify_question
    from chains.decide_math import contextual_calibration
    from chains.decide_prompt import CONTENT_FREE, ask, input_block

    text = "It broke after one day."
    data = {"text": text, "labels": SENTIMENT, "method": "score"}
    out = _remote(live_url + "/classify").invoke(data)
    assert out["calibrated"] is True
    asked = ask(classify_question(ClassifyInput(**data)), 0)
    sums = []
    for given in (text, CONTENT_FREE):
        scored = _remote(live_url + "/score").invoke(
            {"context": input_block(given) + asked.question, "continuations": asked.answers},
            {"configurable": {"top_logprobs": 0}},
        )
        sums.append([s["sum_logprob"] for s in scored["scores"]])
    expected = contextual_calibration(sums[0], sums[1])
    # Same numbers up to the CPU kernels' batch-shape noise (a different batch layout).
    assert list(out["distribution"].values()) == pytest.approx(expected, abs=0.05)
