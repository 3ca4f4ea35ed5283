"""Teacher forcing: the logprob of every token of a given text, on a llama.cpp context of its own.

The scorer owns a second context on the engine's loaded model (the weights are shared), so
scoring never waits for generation and generation never waits for scoring.
``score(prefix, continuations, top_k)`` evaluates the prefix once in sequence 0 and each
continuation after it in sequence 1, which shares the prefix's KV cells
(``llama_memory_seq_cp`` on one unified KV stream).

Numerics. The engine's kernel choices (``batch_invariance.py``) make a position's logits
independent of how many other positions share its batch, so a text's scores do not depend on
how it is cut into batches: scoring the text a greedy generation produced gives back the
logprobs generation reported, one token at a time or in one batch. What still moves numbers is
where a token's KV sits in the cache (attention sums over cells in cell order), so:

* the prefix is evaluated in sequence 0, from cell 0 on, on a grid of ``BLOCK``-token
  blocks aligned on absolute positions: a decode never crosses a block boundary, so the
  positions of a block always attend over the same (padded) number of cells. Every token
  evaluated stays cached, and the next request that starts with the same tokens goes on from
  where they differ, up to the end of that block, then block by block (the cache warm gives
  the numbers of the cache cold; ``tests/live/test_invariance.py``). So the questions about
  one input share all of it, not only its complete blocks;
* each continuation is evaluated on its own, right after the prefix (sequence 1, the prefix's
  cells shared), then removed: its cells never depend on the other continuations, so its
  scores are the same alone or beside others.

Logprobs are the raw distribution (temperature 1, no grammar), like generation's.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from local_llm.errors import ContextLengthError, EngineError
from local_llm.logprobs import finite_logprob, log_partition, top_indices

BLOCK = 32
"""Prefix evaluation grid, in tokens (aligned on absolute positions): no decode crosses it."""
MAX_SEQUENCES = 16
"""Continuations per ``score`` call + 1 (the prefix)."""
_SEQUENCES = 2  # sequence 0 holds the prefix, 1 the continuation being scored
_OUTPUTS_PER_DECODE = 32  # each output row is n_vocab floats (1 MiB for Gemma 3)


@dataclass(frozen=True, slots=True)
class TokenScore:
    """The logprob of one given token, its rank and the most likely tokens at its position."""

    token: int
    logprob: float
    rank: int
    top: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores of a prefix (None where not requested, always at position 0) and continuations."""

    prefix: list[TokenScore | None]
    continuations: list[list[TokenScore]]
    cached: int = 0
    """Prefix tokens read from the cache (evaluated by an earlier call), not evaluated again."""


def token_score(
    logits: npt.NDArray[np.float32], token: int, top_k: int, scratch: npt.NDArray[np.float32]
) -> TokenScore:
    """Score ``token`` under ``logits`` (one position), like generation's logprob records.

    ``rank`` is 1 + the number of tokens strictly more likely (vLLM's convention).
    """
    max_logit, shift, log_z = log_partition(logits, scratch)
    value = float(logits[token])
    rank = 1 + int(np.count_nonzero(logits > value))
    tops = tuple(
        (alt, finite_logprob(float(logits[alt]) - log_z))
        for alt in top_indices(logits, top_k, max_logit, weights=scratch, shift=shift)
    )
    return TokenScore(token, finite_logprob(value - log_z), rank, tops)


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by all prompts (0 for no prompts)."""
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts)
    for i in range(n):
        token = first[i]
        if any(p[i] != token for p in prompts):
            return i
    return n


class Scorer:
    """A scoring context on a loaded model; thread-safe (one scoring at a time).

    Args:
        model: the ``llama_model`` pointer (``LocalEngine.scoring_source()``).
        params: ``llama_context_params`` of the generation context, copied so both contexts
            compute alike; the scorer sets its own sequence count.
    """

    def __init__(self, model: Any, params: Any) -> None:
        import llama_cpp

        self._lib = llama_cpp
        own = llama_cpp.llama_context_params.from_buffer_copy(params)
        own.n_seq_max = _SEQUENCES
        own.kv_unified = True  # the continuation shares the prefix's cells instead of copying
        own.n_outputs_max_per_seq = 0
        self._ctx = llama_cpp.llama_init_from_model(model, own)
        if not self._ctx:
            msg = "llama.cpp could not create the scoring context."
            raise EngineError(msg)
        self._n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self._n_batch = int(llama_cpp.llama_n_batch(self._ctx))
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        vocab = llama_cpp.llama_model_get_vocab(model)
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self._scratch = np.empty(self._n_vocab, dtype=np.float32)
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._cached: list[int] = []  # the prefix tokens held in sequence 0 (cells 0..)
        self._lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        """Tokens the scoring context holds (the prefix plus the longest continuation)."""
        return self._n_ctx

    def close(self) -> None:
        """Free the context (before the model it was made from)."""
        with self._lock:
            if self._ctx:
                self._lib.llama_batch_free(self._batch)
                self._lib.llama_free(self._ctx)
                self._ctx = None

    def score(
        self,
        prefix: Sequence[int],
        continuations: Sequence[Sequence[int]],
        top_k: int,
        *,
        prefix_logprobs: bool = False,
    ) -> ScoreResult:
        """Score the continuations after the prefix (evaluated once), and the prefix itself.

        Args:
            prefix: context tokens (at least one: the BOS token).
            continuations: up to 15 token lists, each scored after the prefix.
            top_k: alternatives per position (0-20).
            prefix_logprobs: also score the prefix's own tokens (from position 1).

        Raises:
            ContextLengthError: the prefix and continuations do not fit the context.
            EngineError: llama.cpp failed.
        """
        if not prefix:
            msg = "Scoring needs at least one context token (the BOS token)."
            raise ContextLengthError(msg)
        if len(continuations) > MAX_SEQUENCES - 1:
            msg = f"At most {MAX_SEQUENCES - 1} continuations are scored at once."
            raise ContextLengthError(msg)
        total = len(prefix) + max((len(c) for c in continuations), default=0)
        if total > self._n_ctx:
            msg = (
                f"The texts to score have {total} tokens; the scoring context holds "
                f"{self._n_ctx}. Please reduce the length of the prompts."
            )
            raise ContextLengthError(msg)
        with self._lock:
            if not self._ctx:
                msg = "The scoring context is closed."
                raise EngineError(msg)
            try:
                conts = [list(c) for c in continuations]
                return self._score(list(prefix), conts, top_k, prefix_logprobs)
            finally:
                self._lib.llama_memory_seq_rm(self._mem, -1, len(self._cached), -1)
                self._lib.llama_memory_seq_rm(self._mem, 1, -1, -1)

    # --- internals (under the lock) ---------------------------------------------------------

    def _score(
        self, prefix: list[int], conts: list[list[int]], top_k: int, prefix_logprobs: bool
    ) -> ScoreResult:
        n = len(prefix)
        # The last prefix position must be evaluated to give the first continuation token's
        # distribution; scoring the prefix's own tokens needs every position evaluated.
        reuse = 0
        if not prefix_logprobs:
            reuse = common_prefix_length([self._cached, prefix[: n - 1]])
        self._lib.llama_memory_seq_rm(self._mem, -1, reuse, -1)
        self._cached = prefix[:reuse]
        scores: list[TokenScore | None] = [None] * n
        last: npt.NDArray[np.float32] | None = None
        start = reuse
        while start < n:
            end = min((start // BLOCK + 1) * BLOCK, n)  # to the grid's next boundary
            block = prefix[start:end]
            outputs = (
                list(range(len(block))) if prefix_logprobs else [len(block) - 1] if end == n else []
            )
            rows = self._decode([(t, start + i, 0) for i, t in enumerate(block)], outputs)
            for i, row in zip(outputs, rows, strict=True):
                pos = start + i
                if pos + 1 < n:
                    scores[pos + 1] = token_score(row, prefix[pos + 1], top_k, self._scratch)
                else:
                    last = row.copy()
            self._cached = prefix[:end]
            start = end
        assert last is not None
        firsts = [token_score(last, c[0], top_k, self._scratch) if c else None for c in conts]
        results: list[list[TokenScore]] = [[f] if f is not None else [] for f in firsts]
        for cont, out in zip(conts, results, strict=True):
            if len(cont) > 1:
                self._continuation(n, cont, out, top_k)
        return ScoreResult(scores, results, reuse)

    def _continuation(self, n: int, cont: list[int], out: list[TokenScore], top_k: int) -> None:
        """Score ``cont[1:]`` after the prefix in sequence 1; every token but the last is
        evaluated and its row scores the next. The sequence is emptied again afterwards."""
        self._lib.llama_memory_seq_cp(self._mem, 0, 1, -1, -1)
        try:
            for start in range(0, len(cont) - 1, _OUTPUTS_PER_DECODE):
                chunk = range(start, min(start + _OUTPUTS_PER_DECODE, len(cont) - 1))
                rows = self._decode([(cont[j], n + j, 1) for j in chunk], list(range(len(chunk))))
                for j, row in zip(chunk, rows, strict=True):
                    out.append(token_score(row, cont[j + 1], top_k, self._scratch))
        finally:
            self._lib.llama_memory_seq_rm(self._mem, 1, -1, -1)

    def _decode(
        self, tokens: list[tuple[int, int, int]], outputs: list[int]
    ) -> list[npt.NDArray[np.float32]]:
        """Decode (token, position, sequence) triples; return the logits rows of ``outputs``.

        The rows are views into llama.cpp's buffer, valid until the next decode.
        """
        lib, batch = self._lib, self._batch
        wanted = set(outputs)
        for i, (token, pos, seq) in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = i in wanted
        batch.n_tokens = len(tokens)
        rc = lib.llama_decode(self._ctx, batch)
        if rc != 0:
            msg = f"llama_decode failed while scoring ({rc})."
            raise EngineError(msg)
        rows = []
        for i in outputs:
            pointer = lib.llama_get_logits_ith(self._ctx, i)
            rows.append(np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)))
        return rows


def piece_bytes(vocab: Any, token: int) -> bytes:
    """Bytes of one token, control tokens rendered (``<end_of_turn>``)."""
    import llama_cpp

    size = 64
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, True)
    if n < 0:
        size = -n
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, True)
    return buf.raw[: max(n, 0)]
