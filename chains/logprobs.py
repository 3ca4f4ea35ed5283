"""Pure functions over OpenAI-shaped token logprobs: parsing, statistics and spans.

The input is ``choices[0].logprobs.content`` of an OpenAI chat completion: a list of
``{"token", "logprob", "bytes", "top_logprobs"}`` dicts. Caveats this module handles:

* Backends mark "unknown" with sentinels: ``-9999`` (OpenAI, vLLM), ``-3.4e38`` (llama.cpp),
  or even ``-inf``/``NaN``. They all become ``None``; no NaN or inf ever reaches an output.
* ``bytes`` may be missing; the UTF-8 of ``token`` is used instead.
* A token may hold part of a multi-byte character (half an emoji), so its ``token`` string
  is not the text it stands for. Offsets are always computed from bytes, never ``len(token)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

SENTINEL_FLOOR: float = -9999.0
"""Logprobs at or below this value are backend sentinels for "unknown"."""

_WORD = re.compile(r"\S+")


def known_logprob(value: float | None) -> float | None:
    """Turn a raw logprob into a finite value or ``None``.

    Args:
        value: The logprob as sent by the backend.

    Returns:
        ``None`` for ``None``, non-finite values and sentinels (``<= SENTINEL_FLOOR``);
        otherwise the value, with positive rounding noise clamped to ``0.0``.
    """
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= SENTINEL_FLOOR:
        return None
    return min(value, 0.0)


def prob_of(logprob: float | None) -> float | None:
    """Return ``exp(logprob)`` of a cleaned logprob, or ``None`` when it is unknown."""
    cleaned = known_logprob(logprob)
    return None if cleaned is None else math.exp(cleaned)


class _Scored(BaseModel):
    """A token with its probability (shared fields of TopLogprob and TokenLogprob)."""

    token: str = Field(description="The token as text (may hold U+FFFD or byte escapes).")
    bytes: list[int] = Field(
        description="UTF-8 bytes of the token; filled from `token` when the backend omits them."
    )
    logprob: float | None = Field(
        default=None, description="Natural-log probability; null when the backend did not know it."
    )
    prob: float | None = Field(default=None, description="exp(logprob) in [0, 1]; null if unknown.")

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        """Fill ``bytes`` from ``token``, clean ``logprob`` and derive ``prob`` from it."""
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        token = out.get("token")
        out["token"] = token = "" if token is None else str(token)
        if out.get("bytes") is None:
            out["bytes"] = list(token.encode("utf-8"))
        out["logprob"] = known_logprob(out.get("logprob"))
        out["prob"] = prob_of(out["logprob"])
        return out


class TopLogprob(_Scored):
    """One alternative the model considered at a position."""


class TokenLogprob(_Scored):
    """One generated token with its probability and the alternatives at that position."""

    top_logprobs: list[TopLogprob] = Field(
        default_factory=list,
        description="Most likely alternatives, best first (unknown ones last). The sampled "
        "token is not always among them.",
    )

    @field_validator("top_logprobs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("top_logprobs")
    @classmethod
    def _best_first(cls, value: list[TopLogprob]) -> list[TopLogprob]:
        return sorted(value, key=lambda t: (t.logprob is None, -(t.logprob or 0.0)))


class LogprobStats(BaseModel):
    """Summary statistics of a token sequence; sums and means skip unknown logprobs."""

    num_tokens: int = Field(description="Number of tokens, known or not.")
    num_unknown: int = Field(description="Tokens whose logprob was missing or a sentinel.")
    sum_logprob: float | None = Field(description="Sum of the known logprobs; null if none.")
    mean_logprob: float | None = Field(description="Mean of the known logprobs; null if none.")
    perplexity: float | None = Field(
        description="exp(-mean_logprob); null if no token is known or if it would overflow a "
        "float (mean_logprob below about -709)."
    )
    min_prob: float | None = Field(description="Lowest probability among the known tokens.")
    min_prob_index: int | None = Field(description="Index of the token holding min_prob.")
    mean_entropy: float | None = Field(
        description="Mean entropy in nats over tokens that have top_logprobs. Each token's "
        "entropy uses only the known top-k probabilities p_i plus the leftover mass "
        "r = max(0, 1 - sum p_i) counted as ONE extra outcome, so it is a lower bound on the "
        "true entropy of the full distribution. Null if no token has top_logprobs."
    )


class Span(BaseModel):
    """A word of the generated text whose least likely token is below a threshold.

    Its text is ``word``, not ``text``: LangChain.js revives any output object with a
    ``text`` key into a StringPromptValue and drops its other fields.
    """

    start: int = Field(description="Character offset of the word in the completion (inclusive).")
    end: int = Field(
        description="Character offset of the word's end in the completion (exclusive)."
    )
    word: str = Field(description="The word, equal to completion[start:end].")
    min_prob: float = Field(description="Lowest probability of a known token overlapping it.")


def parse_token(item: Mapping[str, Any]) -> TokenLogprob:
    """Parse one entry of ``logprobs.content`` (sentinels cleaned, bytes filled, tops sorted)."""
    return TokenLogprob.model_validate(dict(item))


def parse_tokens(content: Sequence[Mapping[str, Any]] | None) -> list[TokenLogprob]:
    """Parse ``logprobs.content``; ``None`` (no logprobs requested) gives an empty list."""
    return [parse_token(item) for item in content or ()]


def _entropy(top: Sequence[TopLogprob]) -> float | None:
    probs = [t.prob for t in top if t.prob is not None]
    if not probs:
        return None
    probs.append(max(0.0, 1.0 - math.fsum(probs)))
    return -math.fsum(p * math.log(p) for p in probs if p > 0.0)


def compute_stats(tokens: Sequence[TokenLogprob]) -> LogprobStats:
    """Summarise a token sequence.

    Args:
        tokens: Parsed tokens (see `parse_tokens`).

    Returns:
        Counts, sum/mean logprob, perplexity, the least likely token and the mean
        truncated entropy; every float is finite or ``None``.
    """
    known = [(i, t.logprob) for i, t in enumerate(tokens) if t.logprob is not None]
    entropies = [e for e in (_entropy(t.top_logprobs) for t in tokens) if e is not None]
    total = math.fsum(lp for _, lp in known) if known else None
    mean = None if total is None else total / len(known)
    try:
        perplexity = None if mean is None else math.exp(-mean)
    except OverflowError:
        perplexity = None
    min_index, min_logprob = min(known, key=lambda pair: pair[1]) if known else (None, None)
    return LogprobStats(
        num_tokens=len(tokens),
        num_unknown=len(tokens) - len(known),
        sum_logprob=total,
        mean_logprob=mean,
        perplexity=perplexity,
        min_prob=prob_of(min_logprob),
        min_prob_index=min_index,
        mean_entropy=math.fsum(entropies) / len(entropies) if entropies else None,
    )


def joined_bytes(tokens: Sequence[TokenLogprob]) -> bytes:
    """Return the tokens' bytes joined: the generated text as UTF-8 (maybe cut mid-character)."""
    return b"".join(bytes(t.bytes) for t in tokens)


def text_of(tokens: Sequence[TokenLogprob]) -> str:
    """Return the generated text: all token bytes joined, decoded with replacement."""
    return joined_bytes(tokens).decode("utf-8", errors="replace")


def token_byte_offsets(tokens: Sequence[TokenLogprob]) -> list[tuple[int, int]]:
    """Return the byte range ``[start, end)`` of each token in the joined bytes."""
    offsets: list[tuple[int, int]] = []
    pos = 0
    for t in tokens:
        offsets.append((pos, pos + len(t.bytes)))
        pos += len(t.bytes)
    return offsets


def _utf8_length(data: bytes, i: int) -> int:
    """Bytes that ``data.decode("utf-8", "replace")`` turns into one character at ``i``.

    A complete sequence, or else its maximal valid prefix (or one invalid byte), which
    CPython replaces by a single U+FFFD.
    """
    lead = data[i]
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        need, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= lead <= 0xEF:
        need, lo, hi = 3, (0xA0 if lead == 0xE0 else 0x80), (0x9F if lead == 0xED else 0xBF)
    elif 0xF0 <= lead <= 0xF4:
        need, lo, hi = 4, (0x90 if lead == 0xF0 else 0x80), (0x8F if lead == 0xF4 else 0xBF)
    else:
        return 1
    j = i + 1
    while j < min(i + need, len(data)):
        low, high = (lo, hi) if j == i + 1 else (0x80, 0xBF)
        if not low <= data[j] <= high:
            break
        j += 1
    return j - i


def _char_of_byte(data: bytes) -> list[int]:
    """Map each byte to the index of the decoded character it belongs to."""
    owners: list[int] = []
    i = 0
    while i < len(data):
        n = _utf8_length(data, i)
        owners.extend([owners[-1] + 1 if owners else 0] * n)
        i += n
    return owners


def token_char_offsets(tokens: Sequence[TokenLogprob]) -> list[tuple[int, int]]:
    """Return the character range ``[start, end)`` of each token in `text_of(tokens)`.

    A token holding part of a multi-byte character maps to that whole character, so both
    halves of a split emoji get the same range. A token with no bytes gets an empty range
    at the start of the character at its byte position.
    """
    owners = _char_of_byte(joined_bytes(tokens))
    n_chars = owners[-1] + 1 if owners else 0
    offsets: list[tuple[int, int]] = []
    for start, end in token_byte_offsets(tokens):
        if end > start:
            offsets.append((owners[start], owners[end - 1] + 1))
        else:
            pos = owners[start] if start < len(owners) else n_chars
            offsets.append((pos, pos))
    return offsets


def low_confidence_spans(tokens: Sequence[TokenLogprob], threshold: float) -> list[Span]:
    """Find the words of the text whose least likely token is below ``threshold``.

    Words are maximal runs of non-whitespace characters of `text_of(tokens)`. A word's
    probability is the lowest ``prob`` among the known tokens overlapping its characters;
    words with no known token are never flagged. Adjacent flagged words are not merged.

    Args:
        tokens: Parsed tokens.
        threshold: Probability in [0, 1]; words strictly below it are returned.

    Returns:
        The flagged words in text order, with character offsets into `text_of(tokens)`.
    """
    text = text_of(tokens)
    char_min: list[float | None] = [None] * len(text)
    for t, (start, end) in zip(tokens, token_char_offsets(tokens), strict=True):
        if t.prob is None:
            continue
        for c in range(start, end):
            current = char_min[c]
            char_min[c] = t.prob if current is None else min(current, t.prob)
    spans: list[Span] = []
    for match in _WORD.finditer(text):
        probs = [p for p in char_min[match.start() : match.end()] if p is not None]
        if probs and min(probs) < threshold:
            spans.append(
                Span(start=match.start(), end=match.end(), word=match.group(), min_prob=min(probs))
            )
    return spans


def merge_stream_events(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge ``/generate`` stream events, in order, into one result.

    Rule: ``"completion"`` values are concatenated, ``"tokens"`` lists are appended, and
    every other key takes its last non-``None`` value (``None`` if it was only ever
    ``None``). Keys that never appear are absent from the result.

    Args:
        events: The streamed event payloads, in the order they arrived.

    Returns:
        The merged payload.
    """
    merged: dict[str, Any] = {}
    pieces: list[str] = []
    for event in events:
        for key, value in event.items():
            if key == "completion":
                pieces.append(value or "")
                merged.setdefault("completion", "")
            elif key == "tokens":
                merged.setdefault("tokens", []).extend(value or [])
            elif value is not None or key not in merged:
                merged[key] = value
    if "completion" in merged:
        merged["completion"] = "".join(pieces)
    return merged
