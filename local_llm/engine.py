"""The llama-cpp-python model wrapper: load, generate one request at a time, logprobs, history.

Generation runs llama.cpp's native samplers (temperature, top_p, seed, grammar; see
``sampling.py``) and, only when logprobs are requested, reads the raw logits of the position each
token was sampled from straight out of the context (zero-copy) for numpy to turn into logprobs.
llama-cpp-python's own logprobs path is avoided: it sorts the vocabulary in Python per token
(~25x slower) and returns no bytes.

Caveats: one model, one generation at a time (a lock; waiting requests can still be cancelled);
a prompt is evaluated in one go, so cancellation takes effect between generated tokens only.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from local_llm.engine_api import Finished, FinishReason, GenerationEvent, SamplingParams, TextDelta
from local_llm.errors import (
    BadRequestError,
    ContextLengthError,
    EngineError,
    EngineStartupError,
    ModelNotReadyError,
)
from local_llm.history import GenerationLog
from local_llm.logprobs import LogprobBuilder
from local_llm.model_file import DEFAULT_MODEL_NAME, default_model_path
from local_llm.prompt import gemma_segments
from local_llm.protocol import ChatCompletionTokenLogprob, GenerationRecord
from local_llm.sampling import NativeSampler, decode
from local_llm.selftest import run_selftest, selftest_command
from local_llm.textstream import TextAssembler

if TYPE_CHECKING:
    from llama_cpp import Llama

_LOCK_POLL_S = 0.05
_CLOSE_TIMEOUT_S = 30.0
_UINT32 = 0xFFFFFFFF


@dataclass
class _RunState:
    completion_tokens: int = 0
    finish: FinishReason = "error"


class LocalEngine:
    """One llama.cpp model serving chat generations in turn.

    ``load`` is explicit (idempotent, thread-safe) so an app that mounts the local server can
    load the model in its own lifespan. Nothing is loaded at construction.

    Args:
        model_path: GGUF file; default: the bundled Gemma 3 270M (``default_model_path()``).
        n_ctx: context window in tokens (prompt + completion).
        n_threads: llama.cpp threads for prompt and generation; default: half the cores.
        model_name: name reported by ``/v1/models``.
        history_size: how many finished generations ``history()`` keeps.
        selftest: before loading, decode a few tokens in a child process
            (``local_llm.selftest``), so a build that crashes on this CPU is reported instead
            of killing the server at the first request.
        selftest_command: the child's argv (default: ``selftest_command(model, threads)``).
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
    ) -> None:
        self._model_path = model_path
        self._n_ctx = n_ctx
        # Half the cores (llama.cpp's default): with every core busy, llama.cpp's spinning
        # thread barrier collapses (measured 4x slower on 2 busy cores) and starves the server.
        self._n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self._model_name = model_name
        self._llm: Llama | None = None
        self._vocab: ctypes.c_void_p | None = None
        self._builder: LogprobBuilder | None = None
        self._loaded_at = 0
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()
        self._log = GenerationLog(history_size)
        self._pieces: dict[int, bytes] = {}
        self._good_grammars: set[str] = set()
        self._selftest = selftest
        self._selftest_command = list(selftest_command) if selftest_command else None
        self._startup_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """Name reported by /v1/models."""
        return self._model_name

    @property
    def n_ctx(self) -> int:
        """Context window in tokens."""
        return self._n_ctx

    @property
    def is_loaded(self) -> bool:
        """True once the model is loaded."""
        return self._llm is not None

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
        """
        with self._load_lock:
            if self._llm is not None:
                return
            if self._startup_error is not None:
                raise EngineStartupError(self._startup_error)
            import llama_cpp

            path = self._model_path or default_model_path()
            if self._selftest:
                command = self._selftest_command or selftest_command(path, self._n_threads)
                failure = run_selftest(command)
                if failure is not None:
                    self._startup_error = failure
                    raise EngineStartupError(failure)
            llm = llama_cpp.Llama(
                model_path=path,
                n_ctx=self._n_ctx,
                n_threads=self._n_threads,
                n_threads_batch=self._n_threads,
                logits_all=False,
                verbose=False,
            )
            self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
            self._builder = LogprobBuilder(llm.n_vocab(), self._piece)
            self._loaded_at = int(time.time())
            self._llm = llm

    def close(self) -> None:
        """Free the model once the running generation (if any) has finished."""
        with self._load_lock:
            llm, self._llm = self._llm, None
            if llm is None:
                return
            got = self._gen_lock.acquire(timeout=_CLOSE_TIMEOUT_S)
            try:
                llm.close()
            finally:
                if got:
                    self._gen_lock.release()

    def _require(self) -> Llama:
        llm = self._llm
        if llm is None:
            if self._startup_error is not None:
                raise EngineStartupError(self._startup_error)
            msg = "The local model is not loaded."
            raise ModelNotReadyError(msg)
        return llm

    # --- request preparation (thread-safe, no lock: only the vocabulary is read) ----------------

    def tokenize_chat(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        """Format messages as Gemma turns and tokenize; message text cannot hold special tokens."""
        llm = self._require()
        tokens: list[int] = []
        for segment in gemma_segments(messages):
            data = segment.text.encode("utf-8")
            tokens += llm.tokenize(data, add_bos=False, special=segment.special)
        return tokens

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

    def generate(
        self,
        request_id: str,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event,
    ) -> Iterator[GenerationEvent]:
        """Blocking generator: a ``TextDelta`` per token, then one ``Finished``.

        Waits for its turn on the model; stops within one token once ``cancel`` is set.

        Raises:
            ModelNotReadyError: the model is not loaded.
            EngineError: llama.cpp failed.
        """
        llm = self._require()
        if not 0 < len(prompt_tokens) < self._n_ctx:
            msg = f"The prompt has {len(prompt_tokens)} tokens; the context holds {self._n_ctx}."
            raise ContextLengthError(msg)
        state = _RunState()
        self._log.started()
        while not self._gen_lock.acquire(timeout=_LOCK_POLL_S):
            if cancel.is_set():
                state.finish = "cancelled"
                self._record(request_id, len(prompt_tokens), state)
                yield Finished("cancelled", len(prompt_tokens), 0)
                return
        try:
            if self._llm is not llm:  # closed while this request waited for its turn
                msg = "The local model was unloaded."
                raise ModelNotReadyError(msg)
            yield from self._run(llm, prompt_tokens, params, cancel, state)
        except GeneratorExit:
            state.finish = "cancelled"
            raise
        except ModelNotReadyError:
            raise
        except Exception as exc:
            state.finish = "error"
            msg = "Local inference failed."
            raise EngineError(msg) from exc
        finally:
            self._gen_lock.release()
            self._record(request_id, len(prompt_tokens), state)
        yield Finished(state.finish, len(prompt_tokens), state.completion_tokens)

    def _run(
        self,
        llm: Llama,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        state: _RunState,
    ) -> Iterator[TextDelta]:
        import llama_cpp

        seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed % _UINT32
        n_vocab, vocab, ctx = llm.n_vocab(), self._vocab, llm.ctx
        sampler = NativeSampler(
            vocab,
            n_vocab,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=seed,
            grammar=params.grammar,
        )
        assembler: TextAssembler[ChatCompletionTokenLogprob] = TextAssembler(params.stop)
        builder = self._builder if params.top_logprobs is not None else None
        top_k = params.top_logprobs or 0
        max_tokens = min(params.max_tokens, self._n_ctx - len(prompt_tokens))
        tokens = decode(llm, prompt_tokens, sampler)
        state.finish = "length"
        try:
            for token in tokens:
                if cancel.is_set():
                    state.finish = "cancelled"
                    return
                if not params.ignore_eos and llama_cpp.llama_vocab_is_eog(vocab, token):
                    state.finish = "stop"
                    break
                state.completion_tokens += 1
                entry = None
                if builder is not None:
                    # The last output row is the distribution this token was sampled from.
                    pointer = llama_cpp.llama_get_logits_ith(ctx, -1)
                    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,))
                    entry = builder.build(logits, token, top_k)
                text, entries = assembler.push(self._piece(token), entry)
                if text or entries:
                    yield TextDelta(text, entries)
                if assembler.stopped:
                    state.finish = "stop"
                    return
                if state.completion_tokens >= max_tokens:
                    break
                if cancel.is_set():
                    state.finish = "cancelled"
                    return
        finally:
            tokens.close()
            sampler.close()
        text, entries = assembler.finish()
        if assembler.stopped:
            state.finish = "stop"
        if text or entries:
            yield TextDelta(text, entries)

    # --- bookkeeping --------------------------------------------------------------------------

    def _record(self, request_id: str, prompt_tokens: int, state: _RunState) -> None:
        self._log.finished(request_id, prompt_tokens, state.completion_tokens, state.finish)

    def history(self) -> list[GenerationRecord]:
        """The last finished generations (up to ``history_size``), newest last."""
        return self._log.records()

    def counters(self) -> dict[str, int]:
        """Totals since start: requests, tokens and finishes by reason."""
        return self._log.counters()

    # --- scoring ------------------------------------------------------------------------------

    def scoring_source(self) -> tuple[Any, Any]:
        """The loaded model's ``llama_model`` pointer and a copy of the generation context's
        ``llama_context_params``, for a scoring context of one's own (``local_llm.scoring``).

        Raises:
            ModelNotReadyError: the model is not loaded.
        """
        import llama_cpp

        llm = self._require()
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        return llm.model, params
