"""Generation on ``POST /v1/completions``: OpenAI's legacy completions, stream or not, logprobs.

What lm-eval-harness's ``generate_until`` and LangChain's ``OpenAI`` LLM send. Each prompt is
one generation on the engine's scheduler (several prompts run side by side, one choice each);
logprobs are generation's own numbers in the legacy shape (``tokens``, ``token_logprobs``,
``top_logprobs``, ``text_offset``, plus ``token_bytes``). With ``echo`` the prompt's text and
its scores (the scorer's, equal to generation's: ``scoring.py``) come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from local_llm.completions_protocol import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionUsage,
    LegacyLogprobs,
)
from local_llm.engine_api import Finished, SamplingParams, TextDelta
from local_llm.errors import BadRequestError, ContextLengthError, EngineError, LocalLLMError
from local_llm.protocol import ChatCompletionTokenLogprob, ErrorDetail, ErrorResponse
from local_llm.serving import SYSTEM_FINGERPRINT

DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for completions."""

Tagged = tuple[int, TextDelta | Finished | BaseException]


def check_generation(request: CompletionRequest) -> None:
    """Refuse what generation on completions does not serve.

    Raises:
        BadRequestError: n other than 1, prompt_logprobs with generation, or no prompt.
    """
    if request.n not in (None, 1):
        msg = f"Invalid 'n': only n=1 is supported, got {request.n}."
        raise BadRequestError(msg, param="n")
    if request.prompt_logprobs is not None:
        msg = (
            "Invalid 'prompt_logprobs': served with max_tokens 0 or 1 (scoring only); "
            "use echo with logprobs to get the prompt's scores with a generation."
        )
        raise BadRequestError(msg, param="prompt_logprobs")
    if not request.prompt:
        msg = "Invalid 'prompt': no prompt given."
        raise BadRequestError(msg, param="prompt")
    if request.echo and request.stream:
        msg = "Invalid 'echo': not available with stream."
        raise BadRequestError(msg, param="echo")


def sampling_params(request: CompletionRequest, prompt_len: int, n_ctx: int) -> SamplingParams:
    """The request's sampling parameters, ``max_tokens`` clipped to the context.

    Raises:
        ContextLengthError: the prompt leaves no room to generate.
    """
    room = n_ctx - prompt_len
    if room < 1:
        msg = (
            f"This model's maximum context length is {n_ctx} tokens; your prompt has "
            f"{prompt_len}. Please reduce the length of the prompt."
        )
        raise ContextLengthError(msg)
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    wanted = DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
    return SamplingParams(
        max_tokens=min(wanted, room),
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        seed=request.seed,
        stop=tuple(s for s in stops if s),
        top_logprobs=request.logprobs,
        ignore_eos=request.ignore_eos,
    )


@dataclass
class _Choice:
    """One prompt's generation as it accumulates."""

    text: list[str] = field(default_factory=list)
    entries: list[ChatCompletionTokenLogprob] = field(default_factory=list)
    finished: Finished | None = None
    offset: int = 0  # characters of text already released (text_offset of the next token)


def legacy_logprobs(entries: list[ChatCompletionTokenLogprob], offset: int) -> LegacyLogprobs:
    """Generation's logprob entries in OpenAI's legacy completions shape.

    ``offset`` is the character offset of the first token in the choice's text; a token that
    ends inside a character (split over tokens) moves the offset only once it is complete.
    """
    offsets = []
    seen = b""
    for entry in entries:
        offsets.append(offset + len(seen.decode("utf-8", errors="ignore")))
        seen += bytes(entry.bytes or [])
    return LegacyLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=[{t.token: t.logprob for t in e.top_logprobs} for e in entries],
        text_offset=offsets,
        token_bytes=[list(e.bytes or []) for e in entries],
    )


class CompletionsGenerator:
    """Generate completions for one request on an engine (``ChatEngine``)."""

    def __init__(
        self,
        engine: Any,
        request: CompletionRequest,
        prompts: list[list[int]],
        echo: list[tuple[str, LegacyLogprobs | None]] | None,
    ) -> None:
        self._engine = engine
        self._request = request
        self._prompts = prompts
        self._echo = echo
        self._id = f"cmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._model = request.model or engine.model_name
        self._cancel = threading.Event()
        self._queue: asyncio.Queue[Tagged] = asyncio.Queue()

    @property
    def cancel(self) -> threading.Event:
        """Set to stop every generation of the request."""
        return self._cancel

    def submit(self) -> None:
        """Queue one generation per prompt (503 at once when the queue is full).

        Raises:
            ContextLengthError: a prompt leaves no room to generate.
            ServerBusyError: the engine's wait queue is full.
        """
        loop = asyncio.get_running_loop()
        n_ctx = self._engine.n_ctx
        params = [sampling_params(self._request, len(p), n_ctx) for p in self._prompts]
        for index, (prompt, param) in enumerate(zip(self._prompts, params, strict=True)):
            self._engine.submit(
                f"{self._id}-{index}", prompt, param, self._cancel, self._emitter(loop, index)
            )

    def _emitter(
        self, loop: asyncio.AbstractEventLoop, index: int
    ) -> Callable[[TextDelta | Finished | BaseException], None]:
        def emit(item: TextDelta | Finished | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, (index, item))
            except RuntimeError:  # the loop is gone: nobody is listening any more
                self._cancel.set()

        return emit

    async def _events(self) -> AsyncGenerator[tuple[int, TextDelta | Finished], None]:
        left = len(self._prompts)
        try:
            while left:
                index, item = await self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Finished):
                    left -= 1
                yield index, item
        finally:
            self._cancel.set()

    async def complete(self) -> CompletionResponse:
        """Wait for every generation; one choice per prompt."""
        choices = [_Choice() for _ in self._prompts]
        async with contextlib.aclosing(self._events()) as events:
            async for index, event in events:
                if isinstance(event, Finished):
                    choices[index].finished = event
                else:
                    choices[index].text.append(event.text)
                    choices[index].entries.extend(event.logprobs)
        out = []
        for index, choice in enumerate(choices):
            prompt_text, prompt_logprobs = self._echo[index] if self._echo else ("", None)
            logprobs = None
            if self._request.logprobs is not None:
                logprobs = legacy_logprobs(choice.entries, len(prompt_text))
                if prompt_logprobs is not None:
                    logprobs = _concat(prompt_logprobs, logprobs)
            finished = choice.finished
            out.append(
                CompletionChoice(
                    index=index,
                    text=prompt_text + "".join(choice.text),
                    logprobs=logprobs,
                    finish_reason=finished.finish_reason if finished else "error",
                )
            )
        return self._response(out, self._usage([c.finished for c in choices]))

    async def stream(self) -> AsyncGenerator[str, None]:
        """Server-sent events: a chunk per token, a finish chunk per prompt, usage, [DONE]."""
        offsets = [0] * len(self._prompts)
        finished: list[Finished | None] = [None] * len(self._prompts)
        try:
            async with contextlib.aclosing(self._events()) as events:
                async for index, event in events:
                    if isinstance(event, Finished):
                        finished[index] = event
                        if event.finish_reason == "cancelled":
                            return
                        choice = CompletionChoice(
                            index=index, text="", logprobs=None, finish_reason=event.finish_reason
                        )
                    else:
                        logprobs = None
                        if self._request.logprobs is not None:
                            logprobs = legacy_logprobs(event.logprobs, offsets[index])
                        offsets[index] += len(event.text)
                        choice = CompletionChoice(
                            index=index, text=event.text, logprobs=logprobs, finish_reason=None
                        )
                    yield _sse(self._response([choice], None))
        except Exception as exc:  # headers are sent: report in-band, like OpenAI
            if not isinstance(exc, LocalLLMError):
                exc = EngineError("The local model failed to generate a completion.")
            detail = ErrorDetail(message=exc.message, type=exc.error_type, param=exc.param)
            yield f"data: {ErrorResponse(error=detail).model_dump_json()}\n\n"
            return
        if (self._request.stream_options or {}).get("include_usage"):
            yield _sse(self._response([], self._usage(finished)))
        yield "data: [DONE]\n\n"

    def _usage(self, finished: list[Finished | None]) -> CompletionUsage:
        prompt = sum(len(p) for p in self._prompts)
        done = sum(f.completion_tokens for f in finished if f is not None)
        return CompletionUsage(
            prompt_tokens=prompt, completion_tokens=done, total_tokens=prompt + done
        )

    def _response(
        self, choices: list[CompletionChoice], usage: CompletionUsage | None
    ) -> CompletionResponse:
        return CompletionResponse(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=choices,
            usage=usage,
            system_fingerprint=SYSTEM_FINGERPRINT,
        )


def _concat(first: LegacyLogprobs, second: LegacyLogprobs) -> LegacyLogprobs:
    return LegacyLogprobs(
        tokens=first.tokens + second.tokens,
        token_logprobs=first.token_logprobs + second.token_logprobs,
        top_logprobs=first.top_logprobs + second.top_logprobs,
        text_offset=first.text_offset + second.text_offset,
        token_bytes=first.token_bytes + second.token_bytes,
    )


def _sse(chunk: CompletionResponse) -> str:
    return f"data: {chunk.model_dump_json(exclude_none=False)}\n\n"


async def prepare_prompts(engine: Any, prompt: Any) -> list[list[int]]:
    """Token lists of the request's prompts (text is tokenized off the event loop)."""

    def work() -> list[list[int]]:
        if not engine.is_loaded:
            engine.load()
        if isinstance(prompt, str):
            return [engine.tokenize_prompt(prompt)]
        if prompt and all(isinstance(p, int) for p in prompt):
            return [list(prompt)]
        return [engine.tokenize_prompt(p) if isinstance(p, str) else list(p) for p in prompt]

    tokens: list[list[int]] = await anyio.to_thread.run_sync(work)
    if any(not t for t in tokens):
        msg = "Invalid 'prompt': a prompt has no tokens."
        raise BadRequestError(msg, param="prompt")
    return tokens
