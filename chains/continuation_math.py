"""Pure math of scored continuations (``/score``, the decision engine): per-continuation totals,
the normalised distribution, ranks, and which echoed tokens write a continuation. No I/O.

A continuation's probability is the product of its tokens' probabilities given everything
before them (teacher forcing), so its logprob is their sum. Across continuations of one
context, ``exp(sum)`` normalised is the model's choice among them; the mass they held before
normalising (``coverage``) says how much of the model's probability they cover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Totals:
    """Sum of a continuation's token logprobs, and its means per token and per byte."""

    sum_logprob: float
    mean_per_token: float | None
    mean_per_byte: float | None
    perplexity: float | None


def totals(logprobs: Sequence[float], n_bytes: int) -> Totals:
    """Totals of one continuation's token logprobs; ``n_bytes`` is its UTF-8 length.

    Means (and the perplexity, ``exp(-mean per token)``) are None for an empty continuation.
    """
    total = math.fsum(logprobs)
    per_token = total / len(logprobs) if logprobs else None
    per_byte = total / n_bytes if n_bytes else None
    perplexity = math.exp(min(-per_token, 700.0)) if per_token is not None else None
    return Totals(total, per_token, per_byte, perplexity)


def normalise(logprobs: Sequence[float]) -> tuple[list[float], float]:
    """Probabilities proportional to ``exp(logprob)``, and the log of their total mass.

    Stable for very negative values (log-sum-exp); an empty input gives ``([], -inf)``.
    """
    if not logprobs:
        return [], -math.inf
    top = max(logprobs)
    weights = [math.exp(v - top) for v in logprobs]
    mass = math.fsum(weights)
    return [w / mass for w in weights], top + math.log(mass)


def ranks(values: Sequence[float]) -> list[int]:
    """1-based rank of each value, highest first; ties share the best rank."""
    return [1 + sum(other > v for other in values) for v in values]


def token_bytes_of(token: str) -> bytes:
    """The bytes of a token string; ``bytes:\\xNN..`` (OpenAI's and our escape) is decoded."""
    if token.startswith("bytes:") and len(token) > len("bytes:"):
        rest = token[len("bytes:") :]
        try:
            return bytes(int(rest[i + 2 : i + 4], 16) for i in range(0, len(rest), 4))
        except ValueError:
            pass
    return token.encode("utf-8")


def continuation_tokens(pieces: Sequence[bytes], prompt: bytes, start: int) -> range | None:
    """Indices of the tokens that write ``prompt[start:]``, found in the echoed pieces.

    ``pieces`` are the echoed tokens' bytes: the prompt, possibly after a rendered BOS
    (``<bos>``) and before generated tokens. A token that straddles ``start`` counts for
    the continuation (its probability is then conditioned on a little less context).
    Returns None when the pieces do not spell the prompt (the backend did not echo it).
    """
    joined = b"".join(pieces)
    at = joined.find(prompt)
    if at < 0 or not pieces:
        return None
    begin, end = at + start, at + len(prompt)
    first = last = None
    offset = 0
    for i, piece in enumerate(pieces):
        lo, hi = offset, offset + len(piece)
        offset = hi
        if hi > begin and lo < end:
            first = i if first is None else first
            last = i
    if first is None or last is None:
        return range(0)
    return range(first, last + 1)
