"""Validated request -> OpenAI response or SSE chunks, from an engine's scheduler.

Inference never runs on the event loop: ``submit`` queues the generation with the engine's
scheduler thread (or fails at once with 503 when its queue is full, before any header is
sent), which hands events to the loop (``call_soon_threadsafe``); no thread per request.
Every generation has a cancel flag; it is set when the consumer goes away (stream closed or
cancelled, non-streaming client disconnected), and the engine stops within one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import anyio

from local_llm.engine_api import ChatEngine, Finished, GenerationEvent, SamplingParams, TextDelta
from local_llm.errors import ContextLengthError, EngineError, LocalLLMError
from local_llm.grammar import grammar_for
from local_llm.protocol import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionTokenLogprob,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    DeltaMessage,
    ErrorDetail,
    ErrorResponse,
    Usage,
)

logger = logging.getLogger(__name__)

SYSTEM_FINGERPRINT = "fp_local_llama_cpp"
Events = asyncio.Queue[GenerationEvent | BaseException]
_DISCONNECT_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request ready to generate: tokens, sampling parameters and response metadata."""

    request_id: str
    created: int
    model: str
    prompt_tokens: list[int]
    params: SamplingParams
    include_usage: bool


class ChatService:
    """Serve chat completions from one engine."""

    def __init__(self, engine: ChatEngine) -> None:
        self.engine = engine

    async def prepare(self, request: ChatCompletionRequest) -> PreparedRequest:
        """Tokenize, build the grammar and clip max_tokens, off the event loop.

        Raises:
            BadRequestError: bad schema, or ContextLengthError for a too-long prompt.
            ModelNotReadyError: the model is not loaded.
        """
        return await anyio.to_thread.run_sync(self._prepare, request)

    def _prepare(self, request: ChatCompletionRequest) -> PreparedRequest:
        engine = self.engine
        if not engine.is_loaded:
            engine.load()
        grammar = grammar_for(request.response_format)
        if grammar is not None:
            engine.check_grammar(grammar)
        tokens = engine.tokenize_chat([(m.role, m.text()) for m in request.messages])
        if len(tokens) + 1 > engine.n_ctx:
            msg = (
                f"This model's maximum context length is {engine.n_ctx} tokens. However, your "
                f"messages resulted in {len(tokens)} tokens. Please reduce the length of the "
                "messages."
            )
            raise ContextLengthError(msg)
        room = engine.n_ctx - len(tokens)
        wanted = request.max_completion_tokens or request.max_tokens or room
        top_logprobs = (request.top_logprobs or 0) if request.logprobs else None
        params = SamplingParams(
            max_tokens=min(wanted, room),
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
            stop=tuple(request.stop_list()),
            top_logprobs=top_logprobs,
            grammar=grammar,
            ignore_eos=request.ignore_eos,
        )
        options = request.stream_options
        return PreparedRequest(
            request_id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=request.model or engine.model_name,
            prompt_tokens=tokens,
            params=params,
            include_usage=bool(options and options.include_usage),
        )

    def submit(self, prep: PreparedRequest, cancel: threading.Event) -> Events:
        """Queue the generation now (on the event loop); its events arrive on the returned queue.

        Raises:
            ServerBusyError: every slot is busy and the wait queue is full (503, Retry-After).
        """
        loop = asyncio.get_running_loop()
        events: Events = asyncio.Queue()

        def emit(item: GenerationEvent | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        self.engine.submit(prep.request_id, prep.prompt_tokens, prep.params, cancel, emit)
        return events

    async def complete(
        self, prep: PreparedRequest, is_disconnected: Callable[[], Awaitable[bool]]
    ) -> ChatCompletionResponse:
        """Generate the whole reply; cancel the generation if the client disconnects."""
        cancel = threading.Event()
        queue = self.submit(prep, cancel)
        watcher = asyncio.create_task(_watch_disconnect(is_disconnected, cancel))
        texts: list[str] = []
        entries: list[ChatCompletionTokenLogprob] = []
        finished = Finished("error", len(prep.prompt_tokens), 0)
        try:
            async with contextlib.aclosing(_events(queue, cancel)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        texts.append(event.text)
                        entries.extend(event.logprobs)
                    else:
                        finished = event
        finally:
            watcher.cancel()
        want_logprobs = prep.params.top_logprobs is not None
        return ChatCompletionResponse(
            id=prep.request_id,
            created=prep.created,
            model=prep.model,
            choices=[
                Choice(
                    message=AssistantMessage(content="".join(texts)),
                    logprobs=ChoiceLogprobs(content=entries) if want_logprobs else None,
                    finish_reason=finished.finish_reason,
                )
            ],
            usage=_usage(finished),
            system_fingerprint=SYSTEM_FINGERPRINT,
        )

    async def stream(
        self, prep: PreparedRequest, queue: Events, cancel: threading.Event
    ) -> AsyncGenerator[str, None]:
        """Server-sent events: role chunk, a chunk per token, finish chunk, usage, [DONE]."""
        want_logprobs = prep.params.top_logprobs is not None
        yield self._sse(prep, ChunkChoice(delta=DeltaMessage(role="assistant", content="")))
        finished: Finished | None = None
        try:
            async with contextlib.aclosing(_events(queue, cancel)) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        finished = event
                        continue
                    logprobs = ChoiceLogprobs(content=event.logprobs) if want_logprobs else None
                    delta = DeltaMessage(content=event.text)
                    yield self._sse(prep, ChunkChoice(delta=delta, logprobs=logprobs))
        except Exception as exc:  # headers are sent: report in-band, like OpenAI
            if not isinstance(exc, LocalLLMError):
                logger.exception("local chat completion stream failed")
                exc = EngineError("The local model failed to generate a reply.")
            detail = ErrorDetail(message=exc.message, type=exc.error_type, param=exc.param)
            yield f"data: {ErrorResponse(error=detail).model_dump_json()}\n\n"
            return
        if finished is None or finished.finish_reason == "cancelled":
            return
        done = ChunkChoice(delta=DeltaMessage(), finish_reason=finished.finish_reason)
        yield self._sse(prep, done)
        if prep.include_usage:
            yield self._sse(prep, None, usage=_usage(finished))
        yield "data: [DONE]\n\n"

    @staticmethod
    def _sse(prep: PreparedRequest, choice: ChunkChoice | None, usage: Usage | None = None) -> str:
        chunk = ChatCompletionChunk(
            id=prep.request_id,
            created=prep.created,
            model=prep.model,
            choices=[] if choice is None else [choice],
            usage=usage,
            system_fingerprint=SYSTEM_FINGERPRINT,
        )
        return f"data: {chunk.model_dump_json()}\n\n"


async def _events(queue: Events, cancel: threading.Event) -> AsyncGenerator[GenerationEvent, None]:
    """Yield a submitted generation's events until ``Finished``; cancel it if left early."""
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Finished):
                return
    finally:
        cancel.set()


async def _watch_disconnect(
    is_disconnected: Callable[[], Awaitable[bool]], cancel: threading.Event
) -> None:
    while not cancel.is_set():
        await asyncio.sleep(_DISCONNECT_POLL_S)
        if await is_disconnected():
            cancel.set()


def _usage(finished: Finished) -> Usage:
    return Usage(
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        total_tokens=finished.prompt_tokens + finished.completion_tokens,
    )
