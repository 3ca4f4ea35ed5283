"""Decisions on an upstream that cannot score given text: the first-token approximation.

OpenAI, llama.cpp's server and Ollama return no logprobs for a given prompt, but they do
return the ``top_logprobs`` of a generated token. The question's prompt is sent as one user
message, one token is generated, and each of its top alternatives (up to 20) that starts
exactly one value's answer (after leading spaces; or is that whole value with more after it)
adds its probability to that value. This is exact only for the first token, so every answer
says ``exact: false``; a value outside the top alternatives gets nothing, and ``coverage``
is the mass the alternatives gave the values.

It is only honest when the first token tells the values apart: values whose answers start
with the same character (``neg`` / ``negative``, ``true`` / ``"true"``) get a 400 instead.
When no alternative names any value, nothing honest can be said: the question's answer is a
``refusal`` (``chains.decide_math.finish_answer``), and the request's other questions still
get theirs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import openai

from chains.decide_math import NO_MASS, ValueScores
from chains.teacher_forcing import CannotScoreError, cannot_score
from langserve_logprobs.capabilities import Capabilities, adapt_request
from langserve_logprobs.limits import TOP_LOGPROBS_MAX


def distinct_by_first_character(texts: Sequence[str]) -> bool:
    """True when no two answers start with the same character (leading spaces skipped)."""
    firsts = [t.lstrip()[:1] for t in texts]
    return all(firsts) and len(set(firsts)) == len(firsts)


def value_of(token: str, texts: Sequence[str]) -> int | None:
    """The value an alternative token starts (or writes whole, with more after it)."""
    piece = token.lstrip()
    if not piece:
        return None
    matches = [
        i
        for i, text in enumerate(t.strip() for t in texts)
        if text.startswith(piece) or piece.startswith(text)
    ]
    return matches[0] if len(matches) == 1 else None


def first_token_scores(
    alternatives: Sequence[tuple[str, float]], texts: Sequence[str]
) -> ValueScores:
    """Each value's log-mass among the first token's alternatives (``exact`` false)."""
    mass = [0.0] * len(texts)
    for token, logprob in alternatives:
        index = value_of(token, texts)
        if index is not None and math.isfinite(logprob) and logprob > -1e3:
            mass[index] += math.exp(logprob)
    return ValueScores([math.log(m) if m > 0.0 else NO_MASS for m in mass], exact=False)


def _alternatives(response: Any) -> list[tuple[str, float]]:
    choice = response.choices[0] if response.choices else None
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    if not content:
        raise cannot_score("it returned no top_logprobs either")
    first = content[0]
    pairs = [(str(t.token), float(t.logprob)) for t in first.top_logprobs or []]
    if all(token != first.token for token, _ in pairs):
        pairs.append((str(first.token), float(first.logprob)))
    return pairs


async def approximate(
    client: openai.AsyncOpenAI, caps: Capabilities, model: str, prompt: str, texts: Sequence[str]
) -> ValueScores:
    """Generate one token after ``prompt`` (a user message) and read its alternatives.

    Raises:
        CannotScoreError: the values share a first character, or no top_logprobs came back.
    """
    if not distinct_by_first_character(texts):
        msg = (
            "this backend cannot score given text, and these values start alike, so a "
            "first-token approximation cannot tell them apart; use values that start with "
            "different characters, or the embedded model or vLLM (exact)"
        )
        raise CannotScoreError(msg)
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_completion_tokens": 1,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS_MAX,
    }
    adapt_request(payload, caps)  # the length field it honours, its top_logprobs bound
    try:
        response = await client.chat.completions.create(**payload)
    except openai.BadRequestError as exc:
        raise cannot_score(f"top_logprobs refused: status {exc.status_code}") from None
    return first_token_scores(_alternatives(response), texts)
