"""The embedded model's numbers do not depend on load or on how a text is cut into batches.

Bit-identical (``==``, no tolerance): the same greedy request alone and among 7 concurrent
others; a chat generation and the same text re-scored through completions ``echo``; a
continuation's scores alone and beside three others; a scoring with the prefix cache warm and
cold. And close to llama.cpp's plain path (``plain_path.py``): within 1e-3 nats.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.live.plain_path import plain_path_greedy

pytestmark = pytest.mark.live

QUESTION = "Name three colours and say why you like them."
OTHERS = [
    "Write a long story about a dragon who learns to bake bread.",
    "Explain how a bicycle works to a child, step by step, with many details.",
    "Describe a walk through a city market in the morning.",
    "Tell the history of a small fishing village.",
    "Write a letter from a lighthouse keeper to a friend.",
    "Describe how to plant a vegetable garden.",
    "Explain why the sea is salty.",
]
Entries = list[tuple[str, float, list[tuple[str, float]]]]


def _turns(user: str) -> str:
    return f"<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


def _chat(url: str, content: str, tokens: int = 24) -> tuple[str, Entries]:
    body = {
        "messages": [{"role": "user", "content": content}],
        "max_tokens": tokens,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 5,
    }
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
    reply.raise_for_status()
    choice = reply.json()["choices"][0]
    entries = [
        (e["token"], e["logprob"], [(t["token"], t["logprob"]) for t in e["top_logprobs"]])
        for e in choice["logprobs"]["content"]
    ]
    return choice["message"]["content"], entries


# About 300 tokens of context: the others' KV runs past 256 cells, so the steps the request
# shares with them attend over more (masked) cells than its steps alone.
FILLER = " Please be thorough and use plain words, short sentences and concrete examples." * 14


def _stream_long(url: str, prompt: str, started: threading.Event) -> float:
    """Stream a greedy reply; set ``started`` at its first token; return its end time."""
    body = {
        "messages": [{"role": "user", "content": prompt + FILLER}],
        "max_tokens": 128,  # still running when the last of the 7 has read its prompt
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as s:
        for line in s.iter_lines():
            if '"content":"' in line and '"role"' not in line:
                started.set()
    return time.monotonic()


def _score(url: str, prompt: str | list[str], **extra: Any) -> list[dict[str, Any]]:
    body = {"prompt": prompt, "echo": True, "logprobs": 5, "max_tokens": 0, **extra}
    reply = httpx.post(f"{url}/v1/completions", json=body, timeout=300)
    reply.raise_for_status()
    return [c["logprobs"] for c in reply.json()["choices"]]


@pytest.mark.timeout(240)
def test_same_request_alone_and_among_seven_others(local_url: str) -> None:
    alone = _chat(local_url, QUESTION)
    started = [threading.Event() for _ in OTHERS]
    with ThreadPoolExecutor(len(OTHERS)) as pool:
        ends = [
            pool.submit(_stream_long, local_url, prompt, event)
            for prompt, event in zip(OTHERS, started, strict=True)
        ]
        for event in started:
            assert event.wait(120), "a concurrent stream never started"
        among = _chat(local_url, QUESTION)
        served = time.monotonic()
        last = [end.result() for end in ends]
    assert served < min(last), "the request was not served while the 7 others ran"
    assert among == alone


def test_chat_generation_rescored_through_completions_echo(local_url: str) -> None:
    text, generated = _chat(local_url, QUESTION)
    (scored,) = _score(local_url, _turns(QUESTION) + text)
    n = len(generated)
    rows = zip(scored["tokens"], scored["token_logprobs"], scored["top_logprobs"], strict=True)
    tail = list(rows)[-n:]
    assert [t for t, _, _ in tail] == [g[0] for g in generated]
    assert [v for _, v, _ in tail] == [g[1] for g in generated]
    assert [top for _, _, top in tail] == [dict(g[2]) for g in generated]


def test_generation_matches_the_plain_path(local_url: str) -> None:
    _, generated = _chat(local_url, QUESTION, tokens=8)
    plain = plain_path_greedy(_turns(QUESTION), tokens=8)
    assert [g[0] for g in generated] == [p.token for p in plain]
    worst = 0.0
    for (_, value, top), ref in zip(generated, plain, strict=True):
        worst = max(worst, abs(value - ref.logprob))
        for token, logprob in top:
            worst = max(worst, abs(logprob - ref.top[token]))
    print(f"plain path: max |diff| {worst:.2e} nats over 8 tokens and their top 5")
    assert worst <= 1e-3


def test_continuation_alone_equals_beside_three_others(local_url: str) -> None:
    context = "The capital of France is"
    endings = [" Paris, a city on the Seine.", " Lyon.", " a large city.", " Marseille."]
    (alone,) = _score(local_url, context + endings[0])
    together = _score(local_url, [context + e for e in endings])
    only = _score(local_url, [context + e for e in endings], score_only_continuation=True)
    assert together[0] == alone
    n = len(alone["tokens"])
    first_own = next(i for i, v in enumerate(only[0]["token_logprobs"]) if v is not None)
    assert only[0]["token_logprobs"][first_own:] == alone["token_logprobs"][first_own:n]
    assert only[0]["top_logprobs"][first_own:] == alone["top_logprobs"][first_own:n]


def test_prefix_cache_warm_equals_cold(local_url: str) -> None:
    context = (
        "Question: a farmer has seventeen sheep, and all but nine run away through a hole "
        "in the fence one windy night in early spring. The farmer counts the sheep that "
        "are left in the field the next morning. How many sheep does the farmer have? Answer:"
    )
    prompts = [context + " nine", context + " eight", context + " seventeen"]
    _score(local_url, ["Something else entirely. " + p for p in prompts])  # evict the cache
    cold = _score(local_url, prompts, score_only_continuation=True)
    warm = _score(local_url, prompts, score_only_continuation=True)
    assert warm == cold
    (whole,) = _score(local_url, prompts[0])
    first_own = next(i for i, v in enumerate(cold[0]["token_logprobs"]) if v is not None)
    assert cold[0]["token_logprobs"][first_own:] == whole["token_logprobs"][first_own:]


def test_second_question_on_a_cached_input_equals_it_cold(local_url: str) -> None:
    """The scorer goes on from where a cached input and a new prompt differ (mid-block): a
    question asked after another one about the same input scores as on an empty cache."""
    text = (
        "Text: The invoice lists a charge we never agreed to, for a plan we cancelled in "
        "March, and nobody has answered our two emails about it since last week.\n"
    )
    first = text + "Question: Is this message urgent?\nAnswer:"
    second = text + "Question: Which team should handle it?\nOptions: billing, sales\nAnswer:"
    answers = [" billing\n\n", " sales\n\n"]

    def ask(prompt: str) -> list[dict[str, Any]]:
        return _score(local_url, [prompt + a for a in answers], score_only_continuation=True)

    _score(local_url, "Something else entirely.")  # evict the cache
    cold = ask(second)
    _score(local_url, "Something else entirely.")
    ask(first)  # the input is now cached, and so is the first question
    warm = ask(second)
    assert warm == cold
    # The input does not end on the 32-token grid: its last block is reused part-way.
    tokens = _score(local_url, text)[0]["tokens"]
    assert len(tokens) % 32 != 0
