"""Logprob records from raw logits, with numpy, in OpenAI's shape.

The logits are the model's raw distribution at a position (temperature 1, before grammar and
top_p), read zero-copy from llama.cpp. Per token this costs one max, one exp-and-sum over the
vocabulary and a top-k over a thresholded candidate set, which is ~10x cheaper than
``argpartition`` over the whole 262k vocabulary (~0.5 ms a token in all). Non-finite values become
OpenAI's -9999.0 sentinel so every float is plain JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from local_llm.protocol import ChatCompletionTokenLogprob, ChatCompletionTopLogprob

SENTINEL_LOGPROB = -9999.0
_FIRST_MARGIN = 8.0  # logits within this of the max usually hold the top 20 (median: 12 of 262k)
_MARGIN_STEP = 4.0  # widen slowly: a wide threshold lets in a large part of the vocabulary
_MAX_WIDENINGS = 8
_EXP_SAFE = 60.0  # exp(60) * 262144 is far below float32's max


def token_string(data: bytes) -> str:
    """Return the token's text, or ``bytes:\\xNN..`` when it is not valid UTF-8 on its own."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in data)


def finite_logprob(value: float) -> float:
    """Clamp to a finite value <= 0, with -9999.0 for zero probability or garbage.

    The server side of the sentinel: it writes -9999.0 where a client reads "unknown".
    """
    if not math.isfinite(value):
        return SENTINEL_LOGPROB
    return max(min(value, 0.0), SENTINEL_LOGPROB)


def log_partition(
    logits: npt.NDArray[np.float32], scratch: npt.NDArray[np.float32]
) -> tuple[float, float, float]:
    """``(max_logit, shift, log_z)`` of one position's logits, ``log_z`` = log sum exp(logits).

    ``scratch`` is left holding ``exp(logits - shift)``: the ``weights`` ``top_indices`` takes.
    """
    max_logit = float(logits.max())
    # exp() without the max shift saves a pass when it cannot overflow or underflow.
    shift = 0.0 if -_EXP_SAFE <= max_logit <= _EXP_SAFE else max_logit
    if shift:
        np.subtract(logits, shift, out=scratch)
        np.exp(scratch, out=scratch)
    else:
        np.exp(logits, out=scratch)
    return max_logit, shift, shift + math.log(float(scratch.sum()))  # float32 pairwise sum


def top_indices(
    logits: npt.NDArray[np.float32],
    k: int,
    max_logit: float,
    *,
    weights: npt.NDArray[np.float32] | None = None,
    shift: float = 0.0,
) -> list[int]:
    """Indices of the k largest logits, best first (ties: lower id first, like greedy).

    Any threshold with at least k logits above it contains the top k, so partition only those.
    ``weights`` (``exp(logits - shift)``, already in cache) may stand in for the threshold test.
    """
    if k <= 0:
        return []
    candidates: npt.NDArray[np.intp] | None = None
    margin = _FIRST_MARGIN
    for _ in range(_MAX_WIDENINGS):
        if weights is not None:
            found = np.flatnonzero(weights >= math.exp(max_logit - margin - shift))
        else:
            found = np.flatnonzero(logits >= max_logit - margin)
        if found.size >= k:
            candidates = found
            break
        margin += _MARGIN_STEP
    if candidates is None:
        candidates = np.arange(logits.size)
    values = logits[candidates]
    if candidates.size > k:
        # Keep everything tied with the k-th best so the id tie-break below is exact.
        kth = np.partition(values, candidates.size - k)[candidates.size - k]
        keep = values >= kth
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((candidates, -values))[:k]
    return [int(i) for i in candidates[order]]


class LogprobBuilder:
    """Build ``ChatCompletionTokenLogprob`` records; reuses one scratch buffer.

    Not thread-safe: one builder per engine, used under the engine's generation lock.
    """

    def __init__(self, n_vocab: int, piece: Callable[[int], bytes]) -> None:
        self._scratch = np.empty(n_vocab, dtype=np.float32)
        self._piece = piece
        self._alt_cache: dict[int, tuple[str, list[int]]] = {}

    def _describe(self, token_id: int) -> tuple[str, list[int]]:
        cached = self._alt_cache.get(token_id)
        if cached is None:
            data = self._piece(token_id)
            cached = (token_string(data), list(data))
            self._alt_cache[token_id] = cached
        return cached

    def build(
        self, logits: npt.NDArray[np.float32], token_id: int, top_k: int
    ) -> ChatCompletionTokenLogprob:
        """Logprob record of ``token_id`` sampled from ``logits``, with ``top_k`` alternatives."""
        scratch = self._scratch
        max_logit, shift, log_z = log_partition(logits, scratch)
        tops = []
        for alt in top_indices(logits, top_k, max_logit, weights=scratch, shift=shift):
            text, data = self._describe(alt)
            value = finite_logprob(float(logits[alt]) - log_z)
            tops.append(
                ChatCompletionTopLogprob.model_construct(token=text, logprob=value, bytes=data)
            )
        text, data = self._describe(token_id)
        return ChatCompletionTokenLogprob.model_construct(
            token=text,
            logprob=finite_logprob(float(logits[token_id]) - log_z),
            bytes=data,
            top_logprobs=tops,
        )
