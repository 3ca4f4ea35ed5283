"""The embedded model over a real socket: uvicorn in a thread, the real Gemma 3 270M model,
the ``openai`` SDK (and raw httpx for disconnects)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.helpers import LOCAL_N_CTX

pytestmark = pytest.mark.live

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Name three colours and say why you like them."}
]
STORY: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a long story about a dragon who bakes bread."}
]


def _check_entries(entries: list[Any], content: str, *, greedy: bool) -> None:
    assert entries, "no logprobs"
    assert b"".join(bytes(e.bytes) for e in entries).decode() == content
    for entry in entries:
        values = [t.logprob for t in entry.top_logprobs]
        assert len(values) == 5
        assert values == sorted(values, reverse=True)
        assert all(math.isfinite(v) and v <= 0 for v in [*values, entry.logprob])
        if greedy:
            assert entry.token == entry.top_logprobs[0].token
            assert entry.bytes == entry.top_logprobs[0].bytes
            assert entry.logprob == entry.top_logprobs[0].logprob


def test_logprobs_non_streaming(local_sdk: openai.OpenAI) -> None:
    reply = local_sdk.chat.completions.create(
        model="any-name",
        messages=QUESTION,
        temperature=0,
        max_tokens=24,
        logprobs=True,
        top_logprobs=5,
    )
    choice = reply.choices[0]
    assert reply.model == "any-name"
    assert choice.message.content
    assert choice.logprobs is not None and choice.logprobs.content is not None
    _check_entries(choice.logprobs.content, choice.message.content, greedy=True)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == len(choice.logprobs.content)


def test_logprobs_streaming(local_sdk: openai.OpenAI) -> None:
    stream = local_sdk.chat.completions.create(
        model="m",
        messages=QUESTION,
        temperature=0,
        max_tokens=24,
        logprobs=True,
        top_logprobs=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    entries: list[Any] = []
    content = ""
    for chunk in chunks[1:-2]:
        logprobs = chunk.choices[0].logprobs
        assert logprobs is not None and logprobs.content is not None
        entries += logprobs.content
        content += chunk.choices[0].delta.content or ""
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(entries)
    _check_entries(entries, content, greedy=True)
    again = local_sdk.chat.completions.create(
        model="m", messages=QUESTION, temperature=0, max_tokens=24
    )
    assert again.choices[0].message.content == content


def test_json_schema_output_follows_schema(local_sdk: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = local_sdk.chat.completions.create(
        model="m",
        temperature=0,
        max_tokens=80,
        messages=[{"role": "user", "content": "Describe a person as JSON with name and age."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    content = reply.choices[0].message.content or ""
    data = json.loads(content)
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str) and isinstance(data["age"], int)
    # The reply ends at the value: no trailing space token with a junk logprob.
    assert content.endswith("}")
    assert reply.choices[0].finish_reason == "stop"


def test_json_object_output_is_an_object(local_sdk: openai.OpenAI) -> None:
    prompt = 'Give a JSON object with one key "n" and the number 7.'
    reply = local_sdk.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=100,
        response_format={"type": "json_object"},
    )
    assert reply.choices[0].finish_reason == "stop"
    assert json.loads(reply.choices[0].message.content or "")["n"] == 7


def test_stop_string_cuts_the_reply(local_sdk: openai.OpenAI) -> None:
    full = (
        local_sdk.chat.completions.create(
            model="m", messages=QUESTION, temperature=0, max_tokens=40
        )
        .choices[0]
        .message.content
        or ""
    )
    words = full.split()
    assert len(words) >= 4, full
    stop = words[3]
    cut = local_sdk.chat.completions.create(
        model="m", messages=QUESTION, temperature=0, max_tokens=40, stop=[stop, "\u2603"]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == full[: full.index(stop)]


def test_seed_makes_sampling_reproducible(local_sdk: openai.OpenAI) -> None:
    def sample() -> str:
        reply = local_sdk.chat.completions.create(
            model="m", messages=STORY, temperature=1.0, seed=1234, max_tokens=24
        )
        return reply.choices[0].message.content or ""

    assert sample() == sample()


def test_first_chunk_arrives_before_generation_ends(local_url: str) -> None:
    body = {
        "messages": STORY,
        "max_tokens": 64,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
    }
    start = time.perf_counter()
    arrivals: list[float] = []
    with httpx.stream("POST", f"{local_url}/v1/chat/completions", json=body, timeout=60) as s:
        for line in s.iter_lines():
            if '"content":' in line and '"role"' not in line:
                arrivals.append(time.perf_counter() - start)
    assert len(arrivals) >= 60
    first, last = arrivals[0], arrivals[-1]
    assert first < last / 4, (first, last)


def _generation(local_url: str, request_id: str) -> dict[str, Any] | None:
    records = httpx.get(f"{local_url}/v1/generations").json()["data"]
    return next((r for r in records if r["id"] == request_id), None)


def _wait_for_record(local_url: str, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while (record := _generation(local_url, request_id)) is None:
        assert time.monotonic() < deadline, "generation was not recorded"
        time.sleep(0.05)
    return record


def test_stream_disconnect_cancels_generation(local_url: str) -> None:
    body = {
        "messages": STORY,
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", f"{local_url}/v1/chat/completions", json=body, timeout=60) as s:
        lines = s.iter_lines()
        events = [next(lines) for _ in range(6)]  # three chunks and their blank separators
    request_id = json.loads(events[0].removeprefix("data: "))["id"]
    record = _wait_for_record(local_url, request_id)
    assert record["finish_reason"] == "cancelled"
    assert record["completion_tokens"] < 60
    start = time.perf_counter()
    quick = {"messages": QUESTION, "max_tokens": 4, "temperature": 0}
    reply = httpx.post(f"{local_url}/v1/chat/completions", json=quick, timeout=30)
    assert reply.status_code == 200
    assert time.perf_counter() - start < 5


def test_non_streaming_disconnect_cancels_generation(local_url: str) -> None:
    before = {r["id"] for r in httpx.get(f"{local_url}/v1/generations").json()["data"]}
    body = {"messages": STORY, "max_tokens": 600, "temperature": 0, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{local_url}/v1/chat/completions", json=body, timeout=1.0)
    deadline = time.monotonic() + 5
    while True:
        records = httpx.get(f"{local_url}/v1/generations").json()["data"]
        new = [r for r in records if r["id"] not in before]
        if new:
            break
        assert time.monotonic() < deadline, "generation was not cancelled"
        time.sleep(0.05)
    assert new[0]["finish_reason"] == "cancelled"
    assert new[0]["completion_tokens"] < 300


def test_prompt_longer_than_context_is_rejected(local_sdk: openai.OpenAI) -> None:
    long_prompt: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "dragon " * (LOCAL_N_CTX + 10)}
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        local_sdk.chat.completions.create(model="m", messages=long_prompt, max_tokens=5)
    assert caught.value.code == "context_length_exceeded"


def test_models_and_health(local_sdk: openai.OpenAI, local_url: str) -> None:
    assert [m.id for m in local_sdk.models.list()] == ["gemma-3-270m"]
    assert httpx.get(f"{local_url}/health").json() == {"status": "ok"}
