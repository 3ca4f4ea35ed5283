"""Recorded OpenAI and vLLM answers (tests/data), replayed by the fake upstream as their
servers stream them, read by our routes; and the model wrapper's length cut."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.helpers import DATA, fake_upstream_settings, invoke_body


def recorded_content(name: str) -> list[dict[str, Any]]:
    completion = json.loads((DATA / name).read_text(encoding="utf-8"))
    content: list[dict[str, Any]] = completion["choices"][0]["logprobs"]["content"]
    return content


@pytest.mark.parametrize(
    ("name", "rebuilt"),
    [
        pytest.param("openai_chat_logprobs.json", 1, id="openai"),  # "<|end|>" has bytes null
        pytest.param("vllm_chat_logprobs.json", 0, id="vllm"),
    ],
)
def test_chat_keeps_the_recorded_logprobs(client: TestClient, name: str, rebuilt: int):
    body = {"input": "Hello!", "config": {"configurable": {"model": f"recorded:{name}"}}}
    response = client.post("/chat/invoke", json=body)
    assert response.status_code == 200, response.text
    metadata = response.json()["output"]["response_metadata"]
    content = metadata["logprobs"]["content"]
    expected = recorded_content(name)
    assert [t["token"] for t in content] == [t["token"] for t in expected]
    assert [t["logprob"] for t in content] == [t["logprob"] for t in expected]
    assert all(isinstance(a["bytes"], list) for t in content for a in [t, *t["top_logprobs"]])
    assert metadata["finish_reason"] == "stop"
    assert metadata["upstream"]["bytes_rebuilt"] == rebuilt


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("openai_chat_logprobs.json", id="openai"),
        pytest.param("vllm_chat_logprobs.json", id="vllm"),
    ],
)
def test_generate_reads_the_recorded_answer(client: TestClient, name: str):
    response = client.post("/generate/invoke", json=invoke_body(f"recorded:{name}"))
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    expected = recorded_content(name)
    tokens = output["tokens"]
    assert len(tokens) == len(expected) == output["stats"]["num_tokens"]
    joined = b"".join(bytes(t["bytes"]) for t in tokens).decode("utf-8")
    completion = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert joined == completion["choices"][0]["message"]["content"]
    for token, raw in zip(tokens, expected, strict=True):
        assert token["prob"] == pytest.approx(math.exp(raw["logprob"]))
        known = [t["logprob"] for t in token["top_logprobs"] if t["logprob"] is not None]
        assert known == sorted(known, reverse=True)
    assert output["finish_reason"] == "stop"


def test_vllm_sentinel_alternative_is_unknown(client: TestClient):
    response = client.post("/generate/invoke", json=invoke_body("recorded:vllm_chat_logprobs.json"))
    second = response.json()["output"]["tokens"][1]  # "!": its " there" is vLLM's -9999.0
    there = [t for t in second["top_logprobs"] if t["token"] == " there"]
    assert there and there[0]["logprob"] is None and there[0]["prob"] is None
    assert second["top_logprobs"][-1]["token"] == " there"  # unknown ones last


@pytest.mark.parametrize(
    ("kind", "max_tokens"),
    [
        pytest.param("openai", 5, id="honours-length-but-runs-on"),
        pytest.param("llama-cpp-python", 5, id="ignores-length"),
    ],
)
def test_runaway_stream_is_cut_and_closed(fake_upstream: Any, kind: str, max_tokens: int):
    """The fake's ``slow`` model streams 500 tokens whatever the limit: we stop at the
    limit, say finish_reason length, and hang up at once."""
    settings = fake_upstream_settings(fake_upstream, upstream_kind=kind, request_timeout=30)
    closed_before = len(fake_upstream.state.closed)
    with TestClient(create_app(settings)) as client:
        start = time.monotonic()
        response = client.post("/generate/invoke", json=invoke_body("slow", max_tokens=max_tokens))
        took = time.monotonic() - start
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert len(output["tokens"]) == max_tokens
    assert output["finish_reason"] == "length"
    assert took < 5  # 500 tokens take 10 s
    deadline = time.monotonic() + 5
    while len(fake_upstream.state.closed) == closed_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_upstream.state.closed) > closed_before  # the upstream saw us hang up


def test_chat_notes_the_cut(fake_upstream: Any):
    settings = fake_upstream_settings(
        fake_upstream, upstream_kind="llama-cpp-python", request_timeout=30
    )
    body = {"input": "hi", "config": {"configurable": {"model": "slow", "max_tokens": 3}}}
    with TestClient(create_app(settings)) as client:
        response = client.post("/chat/invoke", json=body)
    metadata = response.json()["output"]["response_metadata"]
    assert len(metadata["logprobs"]["content"]) == 3
    assert metadata["finish_reason"] == "length"
    assert metadata["upstream"]["length_cut"] is True
    assert metadata["upstream"]["kind"] == "llama-cpp-python"
