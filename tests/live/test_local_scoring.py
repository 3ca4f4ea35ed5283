"""Scoring on the embedded model over a real socket: /v1/completions echo (openai SDK and raw
httpx), vLLM's prompt_logprobs on chat and completions, and teacher forcing against generation."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

pytestmark = pytest.mark.live

QUESTION = "Name three colours and say why you like them."


def test_echo_through_the_openai_sdk(local_sdk: openai.OpenAI) -> None:
    text = "The cat sat on the mat. Café ☕ 🐉"
    reply = local_sdk.completions.create(
        model="m", prompt=text, echo=True, logprobs=3, max_tokens=0
    )
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


def _turns(user: str) -> str:
    return f"<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


def test_special_tokens_in_prompts_are_parsed(local_sdk: openai.OpenAI) -> None:
    reply = local_sdk.completions.create(
        model="m", prompt=_turns("Hi"), echo=True, logprobs=0, max_tokens=0
    )
    lp = reply.choices[0].logprobs
    assert lp is not None and lp.tokens is not None
    assert lp.tokens[:2] == ["<bos>", "<start_of_turn>"]  # one BOS, one turn token
    assert lp.tokens.count("<start_of_turn>") == 2


def test_completions_generate_like_chat(local_sdk: openai.OpenAI) -> None:
    chat = local_sdk.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=12,
        logprobs=True,
        top_logprobs=3,
    )
    content = chat.choices[0].logprobs
    assert content is not None and content.content
    reply = local_sdk.completions.create(
        model="m", prompt=_turns(QUESTION), temperature=0, max_tokens=12, logprobs=3
    )
    choice = reply.choices[0]
    assert choice.text == chat.choices[0].message.content
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert lp.tokens == [e.token for e in content.content]
    assert lp.token_logprobs == [e.logprob for e in content.content]
    assert lp.top_logprobs == [
        {t.token: t.logprob for t in e.top_logprobs} for e in content.content
    ]
    assert reply.usage is not None and reply.usage.completion_tokens == len(lp.tokens)
    assert choice.finish_reason == chat.choices[0].finish_reason

    stream = local_sdk.completions.create(
        model="m", prompt=_turns(QUESTION), temperature=0, max_tokens=12, logprobs=3, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    streamed = [
        v
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for v in (c.choices[0].logprobs.token_logprobs or [])
    ]
    assert streamed == lp.token_logprobs
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason


def test_completions_generate_with_echo(local_sdk: openai.OpenAI) -> None:
    prompt = "The capital of France is"
    reply = local_sdk.completions.create(
        model="m", prompt=prompt, echo=True, temperature=0, max_tokens=4, logprobs=1
    )
    choice = reply.choices[0]
    assert choice.text.startswith("<bos>" + prompt) and len(choice.text) > len(prompt) + 5
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.text_offset
    assert lp.token_logprobs[0] is None and all(v is not None for v in lp.token_logprobs[1:])
    assert "".join(lp.tokens) == choice.text
    assert lp.text_offset == sorted(lp.text_offset)


def test_shared_prefix_is_scored_like_separate_requests(local_sdk: openai.OpenAI) -> None:
    context = "Question: is the sky blue? Answer:"
    prompts = [context + " yes", context + " no", context + " maybe not"]
    together = local_sdk.completions.create(
        model="m", prompt=prompts, echo=True, logprobs=0, max_tokens=0
    )
    assert len(together.choices) == 3
    alone = local_sdk.completions.create(
        model="m", prompt=prompts[0], echo=True, logprobs=0, max_tokens=0
    )
    a = together.choices[0].logprobs
    b = alone.choices[0].logprobs
    assert a is not None and b is not None and a.tokens == b.tokens
    assert a.token_logprobs is not None and b.token_logprobs is not None
    # The same text evaluated in other batches: the same numbers (batch-invariant kernels).
    assert a.token_logprobs == b.token_logprobs


def test_teacher_forcing_agrees_with_generation(local_sdk: openai.OpenAI, local_url: str) -> None:
    reply = local_sdk.chat.completions.create(
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
    assert max(diffs) == 0.0, diffs


def test_usage_counts_the_prompt_tokens_read_from_the_cache(local_url: str) -> None:
    context = "Text: the parcel came late and the box was torn.\nQuestion: Is this urgent?\nAnswer:"
    body = {
        "prompt": [context, context + " yes", context + " no"],
        "echo": True,
        "logprobs": 0,
        "max_tokens": 0,
        "score_only_continuation": True,
    }

    def post(data: dict[str, object]) -> dict[str, object]:
        reply = httpx.post(f"{local_url}/v1/completions", json=data, timeout=60)
        reply.raise_for_status()
        return dict(reply.json())

    post({**body, "prompt": ["Something else entirely.", "Something else entirely, too."]})
    cold, warm = post(body), post(body)
    context_tokens = len(cold["choices"][0]["logprobs"]["tokens"])  # type: ignore[index]
    cached = [r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in (cold, warm)]  # type: ignore[index]
    # Cold, only the BOS token is shared with the prompt before; warm, the whole context but
    # its last token, evaluated again for the first answer token's distribution.
    assert cached == [1, context_tokens - 1]
    assert warm["choices"] == cold["choices"]
