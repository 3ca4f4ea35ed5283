"""Continuous batching: one thread owns the llama.cpp context and steps every running sequence.

Each request gets a slot: a llama.cpp sequence id with a KV stream of its own (the context is
made with ``n_seq_max`` = slots and ``kv_unified`` off). A step is one ``llama_decode`` holding
the next token of every generating sequence, preceded (in a decode of its own) by at most one
prompt chunk of a joining request. Each row that wants logits is sampled by its sequence's own
sampler chain (grammar included) and turned into logprobs from its own row
(``llama_get_logits_ith``). A request joins at the next step; a finished or cancelled one frees
its slot and KV at once. Waiting requests queue up to ``max_queue``; beyond that ``submit``
raises ``ServerBusyError`` (503).

Numerics. Every row of a step is one token of its own KV stream, and the engine's kernel
choices (``batch_invariance.py``) make a row's logits independent of the other rows: a request
gets bit-identical logprobs alone or among others (tests/live/test_invariance.py). Prompt
chunks are aligned on absolute positions (``prefill_chunk``) and decoded alone.
``deterministic=True`` still gives every sequence decodes of its own (its prompt chunks, then
one token per call): it changes no number any more and only costs the batching speed-up; it
is kept because ``LOCAL_DETERMINISTIC`` exists.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from local_llm.engine_api import Emit, Finished, FinishReason, SamplingParams, TextDelta
from local_llm.errors import EngineError, ServerBusyError
from local_llm.history import GenerationLog
from local_llm.logprobs import LogprobBuilder
from local_llm.protocol import ChatCompletionTokenLogprob
from local_llm.sampling import NativeSampler
from local_llm.textstream import TextAssembler

logger = logging.getLogger(__name__)

_UINT32 = 0xFFFFFFFF
RETRY_AFTER_S = 1


@dataclass(eq=False)
class Job:
    """One request on its way through the scheduler."""

    request_id: str
    prompt: list[int]
    params: SamplingParams
    cancel: threading.Event
    emit: Emit
    slot: int = -1
    n_past: int = 0  # tokens in this slot's KV
    pending: int | None = None  # sampled, not yet evaluated
    completion_tokens: int = 0
    max_tokens: int = 0
    sampler: NativeSampler | None = None
    assembler: TextAssembler[ChatCompletionTokenLogprob] = field(default_factory=TextAssembler)


@dataclass(frozen=True, slots=True)
class _Row:
    job: Job
    token: int
    pos: int
    logits: bool


class BatchScheduler:
    """The thread that owns a multi-sequence llama.cpp context.

    Args:
        ctx: a ``llama_context`` with ``n_seq_max >= slots``, non-unified KV, and a batch size of
            at least ``slots + prefill_chunk``; the scheduler frees it in ``close``.
        n_vocab, vocab: the model's vocabulary size and ``llama_vocab`` pointer.
        piece: bytes of a token.
        slots: sequences decoded together.
        n_ctx: tokens one sequence holds (prompt + completion).
        max_queue: requests that may wait for a slot; more get ``ServerBusyError``.
        prefill_chunk: prompt tokens evaluated per step (chunks aligned on positions).
        deterministic: decode each sequence on its own (results independent of load).
        log: where finished generations are recorded.
    """

    def __init__(
        self,
        ctx: Any,
        *,
        n_vocab: int,
        vocab: Any,
        piece: Callable[[int], bytes],
        slots: int,
        n_ctx: int,
        max_queue: int,
        prefill_chunk: int,
        deterministic: bool,
        log: GenerationLog,
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_vocab = n_vocab
        self._vocab = vocab
        self._piece = piece
        self._builder = LogprobBuilder(n_vocab, piece)
        self._slots = slots
        self._n_ctx = n_ctx
        self._max_queue = max_queue
        self._chunk = prefill_chunk
        self._deterministic = deterministic
        self._log = log
        self._batch = llama_cpp.llama_batch_init(slots + prefill_chunk, 0, 1)
        self._free = list(range(slots))
        self._active: list[Job] = []
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="local-llm-scheduler", daemon=True)
        self._thread.start()

    @property
    def slots(self) -> int:
        """Sequences decoded together."""
        return self._slots

    def load(self) -> tuple[int, int]:
        """Running and waiting requests."""
        with self._cond:
            return len(self._active), len(self._waiting)

    def submit(self, job: Job) -> None:
        """Queue ``job``; it joins the running batch at the next step with a free slot.

        Raises:
            ServerBusyError: every slot is busy and ``max_queue`` requests already wait.
            EngineError: the scheduler has stopped.
        """
        with self._cond:
            if self._stopping:
                msg = "The local model was unloaded."
                raise EngineError(msg)
            if len(self._active) + len(self._waiting) >= self._slots + self._max_queue:
                msg = (
                    f"The local model is busy: {self._slots} requests are running and "
                    f"{len(self._waiting)} are waiting. Retry in a moment."
                )
                raise ServerBusyError(msg, retry_after=RETRY_AFTER_S)
            self._waiting.append(job)
            self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread (running requests end with an error), free the context."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)
        if not self._thread.is_alive() and self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None

    # --- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._active and not self._waiting:
                    self._cond.wait()
                if self._stopping:
                    break
                admitted = self._admit()
            for job in admitted:
                self._start(job)
            try:
                self._step()
            except Exception as exc:  # a llama.cpp failure ends the requests it touched
                logger.exception("local batch step failed")
                for job in list(self._active):
                    self._fail(job, exc)
        msg = "The local model was unloaded."
        with self._cond:
            left = [*self._active, *self._waiting]
            self._waiting.clear()
        for job in left:
            self._fail(job, EngineError(msg))

    def _admit(self) -> list[Job]:
        """Move waiting jobs into free slots (cancelled ones are dropped); lock held."""
        admitted: list[Job] = []
        kept: deque[Job] = deque()
        while self._waiting:
            job = self._waiting.popleft()
            if job.cancel.is_set():
                self._log.started()
                self._end(job, "cancelled", locked=True)
            elif self._free:
                job.slot = self._free.pop(0)
                self._active.append(job)
                admitted.append(job)
            else:
                kept.append(job)
        self._waiting = kept
        return admitted

    def _start(self, job: Job) -> None:
        params = job.params
        self._log.started()
        lib = self._lib
        seed = lib.LLAMA_DEFAULT_SEED if params.seed is None else params.seed % _UINT32
        try:
            job.sampler = NativeSampler(
                self._vocab,
                self._n_vocab,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=seed,
                grammar=params.grammar,
            )
        except Exception as exc:
            self._fail(job, exc)
            return
        job.assembler = TextAssembler(params.stop)
        job.max_tokens = min(params.max_tokens, self._n_ctx - len(job.prompt))
        lib.llama_memory_seq_rm(self._mem, job.slot, -1, -1)

    def _step(self) -> None:
        decoding: list[_Row] = []
        prefill: list[_Row] = []
        for job in list(self._active):
            if job.cancel.is_set():
                self._end(job, "cancelled")
            elif job.pending is not None:
                decoding.append(_Row(job, job.pending, job.n_past, True))
            elif not prefill and job.n_past < len(job.prompt):
                prefill = self._prompt_chunk(job)
        # The prompt chunk goes first, in a decode of its own: the new request's first token
        # comes out one chunk later (not one chunk plus a full step), and its prompt's KV is
        # computed exactly as when it runs alone. The running streams wait about one step.
        groups = [prefill] if prefill else []
        if self._deterministic:
            groups += [[row] for row in decoding]
        elif decoding:
            groups.append(decoding)
        for rows in groups:
            self._decode(rows)

    def _prompt_chunk(self, job: Job) -> list[_Row]:
        start = job.n_past
        end = min(len(job.prompt), (start // self._chunk + 1) * self._chunk)
        last = len(job.prompt) - 1
        return [_Row(job, job.prompt[p], p, p == last) for p in range(start, end)]

    def _decode(self, rows: list[_Row]) -> None:
        lib, batch = self._lib, self._batch
        batch.n_tokens = len(rows)
        for i, row in enumerate(rows):
            batch.token[i] = row.token
            batch.pos[i] = row.pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = row.job.slot
            batch.logits[i] = row.logits
        status = lib.llama_decode(self._ctx, batch)
        if status != 0:
            msg = f"llama_decode returned {status}"
            raise RuntimeError(msg)
        for i, row in enumerate(rows):
            job = row.job
            job.n_past = row.pos + 1
            job.pending = None
            if row.logits and job in self._active:
                try:
                    self._after_logits(job, i)
                except Exception as exc:
                    logger.exception("local generation step failed")
                    self._fail(job, exc)

    def _after_logits(self, job: Job, index: int) -> None:
        """Sample the next token from output row ``index``; emit it; end the job or go on."""
        lib, params = self._lib, job.params
        assert job.sampler is not None
        if job.cancel.is_set():
            self._end(job, "cancelled")
            return
        token = job.sampler.sample(self._ctx, index)
        if not params.ignore_eos and lib.llama_vocab_is_eog(self._vocab, token):
            self._end(job, "stop")
            return
        job.completion_tokens += 1
        entry = None
        if params.top_logprobs is not None:
            pointer = lib.llama_get_logits_ith(self._ctx, index)
            logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
            entry = self._builder.build(logits, token, params.top_logprobs)
        text, entries = job.assembler.push(self._piece(token), entry)
        if text or entries:
            job.emit(TextDelta(text, entries))
        if job.assembler.stopped:
            self._end(job, "stop")
        elif job.completion_tokens >= job.max_tokens:
            self._end(job, "length")
        else:
            job.pending = token

    # --- endings ------------------------------------------------------------------------------

    def _end(self, job: Job, reason: FinishReason, *, locked: bool = False) -> None:
        if reason in ("stop", "length"):
            text, entries = job.assembler.finish()
            if job.assembler.stopped:
                reason = "stop"
            if text or entries:
                job.emit(TextDelta(text, entries))
        self._release(job, locked=locked)
        self._log.finished(job.request_id, len(job.prompt), job.completion_tokens, reason)
        job.emit(Finished(reason, len(job.prompt), job.completion_tokens))

    def _fail(self, job: Job, exc: BaseException) -> None:
        self._release(job)
        self._log.finished(job.request_id, len(job.prompt), job.completion_tokens, "error")
        job.emit(exc)

    def _release(self, job: Job, *, locked: bool = False) -> None:
        if job.sampler is not None:
            job.sampler.close()
            job.sampler = None
        if job.slot < 0:
            return
        if self._ctx:
            self._lib.llama_memory_seq_rm(self._mem, job.slot, -1, -1)
        if locked:
            self._free_slot(job)
        else:
            with self._cond:
                self._free_slot(job)

    def _free_slot(self, job: Job) -> None:
        if job in self._active:
            self._active.remove(job)
        self._free.append(job.slot)
        self._free.sort()
        job.slot = -1
