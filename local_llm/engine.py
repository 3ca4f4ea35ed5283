"""The llama.cpp model: load, tokenize, generate many requests at once (``scheduler.py``), history.

Generation runs llama.cpp's native samplers (temperature, top_p, seed, grammar; see
``sampling.py``) and, only when logprobs are requested, reads the raw logits of the row each
token was sampled from straight out of the context (zero-copy) for numpy to turn into logprobs.
llama-cpp-python's own logprobs path is avoided: it sorts the vocabulary in Python per token
(~25x slower) and returns no bytes.

The model is loaded with llama.cpp's low-level API (no ``Llama`` object): one context with a KV
stream per slot, owned by the scheduler thread; tokenizing only reads the vocabulary.

Numbers. Flash attention is off (llama.cpp's CPU flash attention accumulates in half precision:
up to 0.35 nats away from the plain path, measured), and the kernels are chosen so that a row's
numbers do not depend on the other rows of its batch (``batch_invariance.py``): a request gets
the same logprobs alone or among others, and the same as llama.cpp's plain path.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from local_llm.batch_invariance import choose_kernels, llamafile_in_build, model_params
from local_llm.engine_api import Emit, Finished, GenerationEvent, SamplingParams
from local_llm.errors import (
    BadRequestError,
    ContextLengthError,
    EngineError,
    EngineStartupError,
    ModelNotReadyError,
)
from local_llm.history import GenerationLog
from local_llm.model_file import DEFAULT_MODEL_NAME, default_model_path
from local_llm.prompt import gemma_segments
from local_llm.protocol import GenerationRecord
from local_llm.scheduler import BatchScheduler, Job
from local_llm.selftest import run_selftest, selftest_command

logger = logging.getLogger(__name__)

DEFAULT_PARALLEL = 8
"""Slots: a step of 8 sequences costs little more than a step of 1 on this CPU (README)."""
DEFAULT_MAX_QUEUE = 32
PREFILL_CHUNK = 32
"""Prompt tokens per step: about one step's time, so running streams barely stall."""
_SCORING_BATCH = 512


def drop_second_bos(tokens: list[int], bos: int) -> list[int]:
    """A prompt written with ``<bos>`` gets no second one (as llama.cpp's server does)."""
    if len(tokens) > 1 and tokens[0] == tokens[1] == bos:
        return tokens[1:]
    return tokens


class LocalEngine:
    """One llama.cpp model serving chat generations, several at once.

    ``load`` is explicit (idempotent, thread-safe) so an app that mounts the local server can
    load the model in its own lifespan. Nothing is loaded at construction.

    Args:
        model_path: GGUF file; default: the bundled Gemma 3 270M (``default_model_path()``).
        n_ctx: context window of one request in tokens (prompt + completion).
        n_threads: llama.cpp threads for prompt and generation; default: half the cores.
        model_name: name reported by ``/v1/models``.
        history_size: how many finished generations ``history()`` keeps.
        selftest: before loading, decode a few tokens in a child process
            (``local_llm.selftest``), so a build that crashes on this CPU is reported instead
            of killing the server at the first request.
        selftest_command: the child's argv (default: ``selftest_command(model, threads)``).
        parallel: requests decoded together (slots; each holds ``n_ctx`` tokens of KV).
        max_queue: requests that may wait for a slot; more get 503 with ``Retry-After``.
        deterministic: decode every request on its own (no batching): the same numbers as the
            batched default, slower (``scheduler.py``).
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        model_name: str = DEFAULT_MODEL_NAME,
        history_size: int = 100,
        selftest: bool = True,
        selftest_command: Sequence[str] | None = None,
        parallel: int = DEFAULT_PARALLEL,
        max_queue: int = DEFAULT_MAX_QUEUE,
        deterministic: bool = False,
    ) -> None:
        if parallel < 1 or max_queue < 0:
            msg = f"parallel must be >= 1 and max_queue >= 0, got {parallel} and {max_queue}"
            raise ValueError(msg)
        self._model_path = model_path
        self._n_ctx = n_ctx
        # Half the cores (llama.cpp's default): with every core busy, llama.cpp's spinning
        # thread barrier collapses (measured 4x slower on 2 busy cores) and starves the server.
        self._n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self._model_name = model_name
        self._parallel = parallel
        self._max_queue = max_queue
        self._deterministic = deterministic
        self._model: Any = None  # llama_cpp._internals.LlamaModel
        self._ctx_params: Any = None
        self._scheduler: BatchScheduler | None = None
        self._vocab: ctypes.c_void_p | None = None
        self._loaded_at = 0
        self._load_lock = threading.Lock()
        self._log = GenerationLog(history_size)
        self._pieces: dict[int, bytes] = {}
        self._good_grammars: set[str] = set()
        self._selftest = selftest
        self._selftest_command = list(selftest_command) if selftest_command else None
        self._startup_error: str | None = None
        self._batch_invariant: bool | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """Name reported by /v1/models."""
        return self._model_name

    @property
    def n_ctx(self) -> int:
        """Context window of one request in tokens."""
        return self._n_ctx

    @property
    def parallel(self) -> int:
        """Requests decoded together."""
        return self._parallel

    @property
    def deterministic(self) -> bool:
        """True when every request is decoded on its own."""
        return self._deterministic

    @property
    def batch_invariant(self) -> bool | None:
        """True when every row's numbers are independent of its batch (None before load)."""
        return self._batch_invariant

    @property
    def is_loaded(self) -> bool:
        """True once the model is loaded."""
        return self._scheduler is not None

    @property
    def startup_error(self) -> str | None:
        """Why the model could not be loaded (the self-test's verdict), or None."""
        return self._startup_error

    @property
    def loaded_at(self) -> int:
        """Unix time the model was loaded (0 before)."""
        return self._loaded_at

    def load(self) -> None:
        """Load the model; blocking, idempotent and thread-safe.

        Raises:
            EngineStartupError: the self-test failed (also kept in ``startup_error``).
            EngineError: llama.cpp could not create the context.
        """
        with self._load_lock:
            if self._scheduler is not None:
                return
            if self._startup_error is not None:
                raise EngineStartupError(self._startup_error)
            import llama_cpp
            from llama_cpp._internals import LlamaModel
            from llama_cpp._logger import set_verbose

            # The low-level calls below log every context's layout to stderr unless told not
            # to (``Llama(verbose=False)`` does this; we do not go through ``Llama``).
            set_verbose(False)

            path = self._model_path or default_model_path()
            choose_kernels()  # before the self-test, which inherits the environment
            if self._selftest:
                command = self._selftest_command or selftest_command(path, self._n_threads)
                failure = run_selftest(command)
                if failure is not None:
                    self._startup_error = failure
                    raise EngineStartupError(failure)
            model = LlamaModel(path_model=path, params=model_params(llama_cpp), verbose=False)
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = self._n_ctx * self._parallel
            params.n_batch = params.n_ubatch = self._parallel + PREFILL_CHUNK
            params.n_seq_max = self._parallel
            params.kv_unified = False  # a KV stream per slot: no sequence sees another's cells
            # Sliding-window layers keep only their window per slot: at 8 x 4096 tokens the KV
            # cache is 186 MiB (96 global + 90 sliding-window), plus 40 MiB of compute buffer.
            params.swa_full = False
            # Off: llama.cpp's CPU flash attention sums V in half precision (not the model's
            # plain numbers) and the KV cache is F16 either way (README: KV memory).
            params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
            params.n_threads = params.n_threads_batch = self._n_threads
            params.no_perf = True
            ctx = llama_cpp.llama_init_from_model(model.model, params)
            if not ctx:
                model.close()  # type: ignore[no-untyped-call]
                msg = "llama.cpp could not create the generation context."
                raise EngineError(msg)
            self._vocab = llama_cpp.llama_model_get_vocab(model.model)
            self._batch_invariant = not llamafile_in_build(llama_cpp)
            if not self._batch_invariant:
                logger.warning(
                    "llama.cpp was built with llamafile's sgemm: prompt chunks and scoring "
                    "depend on batch shape (rebuild with scripts/build_llama.sh)."
                )
            self._ctx_params = params
            self._model = model
            self._scheduler = BatchScheduler(
                ctx,
                n_vocab=model.n_vocab(),
                vocab=self._vocab,
                piece=self._piece,
                slots=self._parallel,
                n_ctx=self._n_ctx,
                max_queue=self._max_queue,
                prefill_chunk=PREFILL_CHUNK,
                deterministic=self._deterministic,
                log=self._log,
            )
            self._loaded_at = int(time.time())

    def close(self) -> None:
        """Stop the scheduler (running requests end) and free the model."""
        with self._load_lock:
            scheduler, self._scheduler = self._scheduler, None
            if scheduler is None:
                return
            scheduler.close()
            self._model.close()
            self._model = None

    def _require(self) -> BatchScheduler:
        scheduler = self._scheduler
        if scheduler is None:
            if self._startup_error is not None:
                raise EngineStartupError(self._startup_error)
            msg = "The local model is not loaded."
            raise ModelNotReadyError(msg)
        return scheduler

    # --- request preparation (thread-safe: only the vocabulary is read) ------------------------

    def tokenize_chat(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        """Format messages as Gemma turns and tokenize; message text cannot hold special tokens."""
        self._require()
        tokens: list[int] = []
        for segment in gemma_segments(messages):
            data = segment.text.encode("utf-8")
            tokens += self._model.tokenize(data, add_bos=False, special=segment.special)
        return tokens

    def tokenize_prompt(self, text: str) -> list[int]:
        """Tokenize a completions prompt: BOS first (not twice), special tokens parsed."""
        self._require()
        tokens = self._model.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        return drop_second_bos(list(tokens), self._model.token_bos())

    def check_grammar(self, grammar: str) -> None:
        """Raise ``BadRequestError`` if llama.cpp cannot parse the GBNF grammar."""
        self._require()
        if grammar in self._good_grammars:
            return
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(self._vocab, grammar.encode(), b"root")
        if not sampler:
            msg = "Invalid 'response_format': the schema gives a grammar llama.cpp cannot parse."
            raise BadRequestError(msg, param="response_format")
        llama_cpp.llama_sampler_free(sampler)
        self._good_grammars.add(grammar)

    def _piece(self, token: int) -> bytes:
        """Bytes of one token, control tokens rendered (``<end_of_turn>``); cached."""
        piece = self._pieces.get(token)
        if piece is None:
            import llama_cpp

            size = 64
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, True)
            if n < 0:  # llama-cpp-python's detokenize truncates pieces over 32 bytes here
                size = -n
                buf = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, True)
            piece = buf.raw[: max(n, 0)]
            self._pieces[token] = piece
        return piece

    # --- generation ---------------------------------------------------------------------------

    def submit(
        self,
        request_id: str,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        emit: Emit,
    ) -> None:
        """Queue a generation; ``emit`` gets a ``TextDelta`` per token, then one ``Finished``
        (or an exception), on the scheduler thread. Returns at once.

        Raises:
            ContextLengthError: the prompt is empty or does not fit.
            ServerBusyError: every slot is busy and the wait queue is full.
            ModelNotReadyError: the model is not loaded.
        """
        scheduler = self._require()
        if not 0 < len(prompt_tokens) < self._n_ctx:
            msg = f"The prompt has {len(prompt_tokens)} tokens; the context holds {self._n_ctx}."
            raise ContextLengthError(msg)
        scheduler.submit(Job(request_id, list(prompt_tokens), params, cancel, emit))

    def generate(
        self,
        request_id: str,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event,
    ) -> Iterator[GenerationEvent]:
        """Blocking generator over ``submit``: a ``TextDelta`` per token, then one ``Finished``.

        Closing the generator early cancels the generation.

        Raises:
            ServerBusyError: the wait queue is full.
            EngineError: llama.cpp failed.
        """
        events: queue.SimpleQueue[GenerationEvent | BaseException] = queue.SimpleQueue()
        self.submit(request_id, prompt_tokens, params, cancel, events.put)
        try:
            while True:
                event = events.get()
                if isinstance(event, BaseException):
                    if isinstance(event, EngineError | ModelNotReadyError):
                        raise event
                    msg = "Local inference failed."
                    raise EngineError(msg) from event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            cancel.set()

    def load_info(self) -> tuple[int, int]:
        """Requests running and waiting now."""
        return self._require().load()

    # --- bookkeeping --------------------------------------------------------------------------

    def history(self) -> list[GenerationRecord]:
        """The last finished generations (up to ``history_size``), newest last."""
        return self._log.records()

    def counters(self) -> dict[str, int]:
        """Totals since start: requests, tokens and finishes by reason."""
        return self._log.counters()

    # --- scoring ------------------------------------------------------------------------------

    def scoring_source(self) -> tuple[Any, Any]:
        """The loaded model's ``llama_model`` pointer and ``llama_context_params`` like the
        generation context's (one request's window, same kernels), for a scoring context of
        one's own (``local_llm.scoring``).

        Raises:
            ModelNotReadyError: the model is not loaded.
        """
        import llama_cpp

        self._require()
        params = llama_cpp.llama_context_params.from_buffer_copy(self._ctx_params)
        params.n_ctx = self._n_ctx
        params.n_seq_max = 1
        params.n_batch = params.n_ubatch = _SCORING_BATCH
        params.swa_full = True  # the scorer copies and trims sequences' KV
        return self._model.model, params
