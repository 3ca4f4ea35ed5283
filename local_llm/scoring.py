"""Teacher forcing: the logprob of every token of a given text, on a llama.cpp context of its own.

The scorer owns a second context on the engine's loaded model (the weights are shared), with
several sequences, so scoring never waits for generation and generation never waits for
scoring. ``score(prefix, continuations, top_k)`` evaluates the prefix once in sequence 0,
copies its KV cache to sequences 1..n (``llama_memory_seq_cp``) and evaluates the
continuations there.

Numerics. On this CPU build the logits of a position depend on the shape of the batch it was
computed in (quantized matmul kernels; up to ~0.2 nats measured between a one-token step and
a many-token batch). Generation evaluates its prompt in one batch and then one token per step,
so the scorer does the same where it can:

* the prefix is evaluated in blocks of ``BLOCK`` tokens aligned on absolute positions (a
  context up to ``BLOCK`` tokens is one batch, as in generation's prefill). Complete blocks
  stay cached in sequence 0 and are reused by the next request that starts with the same
  tokens: the KV of a block depends only on the tokens up to its end, so reuse changes no
  number (a few-shot prompt is evaluated once, then only its new tail);
* a lone continuation is evaluated one token per step, like generation: scoring the text a
  greedy generation produced gives back the logprobs generation reported (exact when the
  context fits one block);
* several continuations are evaluated together in a few batches (the fast path): each
  continuation's numbers are as exact as llama.cpp gives, within the batch-shape noise of
  one evaluation order.

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
"""Prefix evaluation and cache granularity, in tokens (aligned on absolute positions)."""
MAX_SEQUENCES = 16
"""Continuations scored together: sequence 0 holds the prefix, 1..15 the continuations."""
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
        own.n_seq_max = MAX_SEQUENCES
        own.kv_unified = True  # sequences share the prefix's cells instead of copying them
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
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, MAX_SEQUENCES)
        self._cached: list[int] = []  # tokens of the complete blocks held in sequence 0
        self._lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        """Tokens the scoring context holds (prefix plus all continuations)."""
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
        total = len(prefix) + sum(len(c) for c in continuations)
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
                for seq in range(1, MAX_SEQUENCES):
                    self._lib.llama_memory_seq_rm(self._mem, seq, -1, -1)

    # --- internals (under the lock) ---------------------------------------------------------

    def _score(
        self, prefix: list[int], conts: list[list[int]], top_k: int, prefix_logprobs: bool
    ) -> ScoreResult:
        n = len(prefix)
        # The last prefix position must be evaluated to give the first continuation token's
        # distribution; scoring the prefix's own tokens needs every position evaluated.
        reuse = 0
        if not prefix_logprobs:
            reuse = common_prefix_length([self._cached, prefix[: n - 1]]) // BLOCK * BLOCK
        self._lib.llama_memory_seq_rm(self._mem, -1, reuse, -1)
        self._cached = prefix[:reuse]
        scores: list[TokenScore | None] = [None] * n
        last: npt.NDArray[np.float32] | None = None
        for start in range(reuse, n, BLOCK):
            block = prefix[start : start + BLOCK]
            outputs = (
                list(range(len(block)))
                if prefix_logprobs
                else [len(block) - 1]
                if start + len(block) == n
                else []
            )
            rows = self._decode([(t, start + i, 0) for i, t in enumerate(block)], outputs)
            for i, row in zip(outputs, rows, strict=True):
                pos = start + i
                if pos + 1 < n:
                    scores[pos + 1] = token_score(row, prefix[pos + 1], top_k, self._scratch)
                else:
                    last = row.copy()
            if len(block) == BLOCK:
                self._cached = prefix[: start + BLOCK]
        assert last is not None
        firsts = [token_score(last, c[0], top_k, self._scratch) if c else None for c in conts]
        results: list[list[TokenScore]] = [[f] if f is not None else [] for f in firsts]
        live = [i for i, c in enumerate(conts) if len(c) > 1]
        for i in live:
            self._lib.llama_memory_seq_cp(self._mem, 0, i + 1, -1, -1)
        if len(live) == 1:
            self._stepwise(n, conts[live[0]], live[0] + 1, results[live[0]], top_k)
        elif live:
            self._together(n, conts, live, results, top_k)
        return ScoreResult(scores, results)

    def _stepwise(
        self, n: int, cont: list[int], seq: int, out: list[TokenScore], top_k: int
    ) -> None:
        for j in range(len(cont) - 1):
            (row,) = self._decode([(cont[j], n + j, seq)], [0])
            out.append(token_score(row, cont[j + 1], top_k, self._scratch))

    def _together(
        self,
        n: int,
        conts: list[list[int]],
        live: list[int],
        results: list[list[TokenScore]],
        top_k: int,
    ) -> None:
        # Every token but the last of each continuation is evaluated; its row scores the next.
        items = [(i, j) for i in live for j in range(len(conts[i]) - 1)]
        for start in range(0, len(items), _OUTPUTS_PER_DECODE):
            chunk = items[start : start + _OUTPUTS_PER_DECODE]
            tokens = [(conts[i][j], n + j, i + 1) for i, j in chunk]
            rows = self._decode(tokens, list(range(len(chunk))))
            for (i, j), row in zip(chunk, rows, strict=True):
                results[i].append(token_score(row, conts[i][j + 1], top_k, self._scratch))

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
