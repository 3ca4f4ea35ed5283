"""Scoring on the embedded model over a real socket: /v1/completions echo (openai SDK and raw
httpx), vLLM's prompt_logprobs on chat and completions, and teacher forcing against generation."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

pytestmark = pytest.mark.live

QUESTION = "Name three colours and say why you like them."


def test_echo_through_the_openai_sdk(client: openai.OpenAI) -> None:
    text = "The cat sat on the mat. Café ☕ 🐉"
    reply = client.completions.create(model="m", prompt=text, echo=True, logprobs=3, max_tokens=0)
    choice = reply.choices[0]
    assert choice.text.endswith(text)
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    values = lp.token_logprobs[1:]
    assert all(v is not None and math.isfinite(v) and v <= 0 for v in values)
    # Bytes on every token: the emoji is split over tokens yet the bytes join to the text.
    raw = b"".join(bytes(b) for b in (lp.model_extra or {})["token_bytes"])
    assert raw.decode() == choice.text
    for value, top in zip(values, lp.top_logprobs[1:], strict=True):
        assert top is not None and len(top) == 3
        assert value is not None and value <= max(top.values()) + 1e-6


def test_echo_and_prompt_logprobs_over_raw_http(local_url: str) -> None:
    body = {
        "prompt": "Paris is the capital of France.",
        "echo": True,
        "logprobs": 2,
        "max_tokens": 0,
        "prompt_logprobs": 2,
    }
    reply = httpx.post(f"{local_url}/v1/completions", json=body, timeout=60).json()
    choice = reply["choices"][0]
    vllm, ids = choice["prompt_logprobs"], choice["prompt_token_ids"]
    legacy = choice["logprobs"]
    assert vllm[0] is None and len(vllm) == len(ids) == len(legacy["tokens"])
    for token_id, entry, value in zip(ids[1:], vllm[1:], legacy["token_logprobs"][1:], strict=True):
        given = entry[str(token_id)]
        assert given["logprob"] == pytest.approx(value)
        assert given["rank"] >= 1 and isinstance(given["decoded_token"], str)
        assert {1, 2} <= {e["rank"] for e in entry.values()}


def test_generation_is_a_clear_400(local_url: str) -> None:
    reply = httpx.post(
        f"{local_url}/v1/completions", json={"prompt": "Hi", "max_tokens": 5}, timeout=30
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "max_tokens"


def test_shared_prefix_is_scored_like_separate_requests(client: openai.OpenAI) -> None:
    context = "Question: is the sky blue? Answer:"
    prompts = [context + " yes", context + " no", context + " maybe not"]
    together = client.completions.create(
        model="m", prompt=prompts, echo=True, logprobs=0, max_tokens=0
    )
    assert len(together.choices) == 3
    alone = client.completions.create(
        model="m", prompt=prompts[0], echo=True, logprobs=0, max_tokens=0
    )
    a = together.choices[0].logprobs
    b = alone.choices[0].logprobs
    assert a is not None and b is not None and a.tokens == b.tokens
    assert a.token_logprobs is not None and b.token_logprobs is not None
    # The same text, evaluated in a different batch shape: equal to the kernels' noise.
    for x, y in zip(a.token_logprobs[1:], b.token_logprobs[1:], strict=True):
        assert x == pytest.approx(y, abs=0.3)


def test_teacher_forcing_agrees_with_generation(client: openai.OpenAI, local_url: str) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=24,
        logprobs=True,
        top_logprobs=1,
    )
    generated = reply.choices[0].logprobs
    assert generated is not None and generated.content
    text = reply.choices[0].message.content
    body = {
        "messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": text}],
        "max_tokens": 1,
        "temperature": 0,
        "prompt_logprobs": 1,
        "score_only_continuation": True,
    }
    scored = httpx.post(f"{local_url}/v1/chat/completions", json=body, timeout=120).json()
    ids, entries = scored["prompt_token_ids"], scored["prompt_logprobs"]
    reported = [e[str(t)] for t, e in zip(ids, entries, strict=True) if e is not None]
    # The final turn: the generated tokens, then the template's end of turn.
    n = len(generated.content)
    assert [r["decoded_token"] for r in reported[:n]] == [g.token for g in generated.content]
    diffs = [
        abs(r["logprob"] - g.logprob) for r, g in zip(reported, generated.content, strict=False)
    ]
    print(f"teacher forcing: max |diff| {max(diffs):.2e} over {len(diffs)} tokens")
    assert max(diffs) <= 1e-3, diffs
