"""The chat model every chain uses: ChatOpenAI with logprobs on, knobs exposed per request.

The chains never know which backend answers: the embedded model at its own loopback
address (``langserve_logprobs.backend``) or any OpenAI-compatible server (OpenAI, vLLM,
llama.cpp, Ollama) set by ``OPENAI_BASE_URL``. What differs between those servers is
handled here and only here, from the table in ``langserve_logprobs.capabilities``: each
request is adapted to the upstream (length field, structured-output form, top_logprobs
limit), each streamed answer is fixed (missing ``bytes`` rebuilt, extra alternatives
dropped) and cut at ``max_tokens`` if the upstream runs past it. The last chunk carries
``response_metadata["upstream"]``: the kind, whether the answer was ``constrained`` by a
schema, how many ``bytes_rebuilt``, a ``top_logprobs_clamped_to``, ``length_cut``.
``use_responses_api`` stays off: that path drops logprobs.

Every call streams from the upstream, read as plain dicts
(``langserve_logprobs.workarounds.sdk_chunk_models``), so the length guard works whatever
the upstream does. ``ainvoke`` merges those dicts into
one message (no chunk objects, no per-token callbacks) that equals the merged stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models.chat_models import agenerate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import (
    _handle_openai_api_error,
    _handle_openai_bad_request,
)
from pydantic import Field, SkipValidation

from langserve_logprobs.capabilities import Capabilities, adapt_logprobs, adapt_request
from langserve_logprobs.knobs import Knobs
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream
from langserve_logprobs.workarounds.sdk_chunk_models import merge_chunks, raw_chunks
from langserve_logprobs.workarounds.streaming_invoke import listens_to_tokens

_T = TypeVar("_T")


class _Reading:
    """One streamed answer as it is read: tokens counted and fixed, the cut decided."""

    def __init__(
        self, caps: Capabilities, limit: int | None, top_n: int | None, notes: dict[str, Any]
    ) -> None:
        self.caps = caps
        self.limit = limit
        self.top_n = top_n
        self.tokens = 0
        self.seen = False  # the upstream sent anything
        self.cut = False  # we stopped reading at the limit
        self.notes: dict[str, Any] = {"kind": caps.kind, "bytes_rebuilt": 0, **notes}

    def admit(self, chunk: ChatGenerationChunk) -> bool:
        """Fix ``chunk`` in place; False if it runs past the limit (withhold it, stop)."""
        info = chunk.generation_info or {}
        return self.admit_tokens((info.get("logprobs") or {}).get("content"), chunk.text)

    def admit_raw(self, raw: dict[str, Any]) -> bool:
        """``admit`` for an upstream chunk as it came (a dict)."""
        choices = raw.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        return self.admit_tokens(
            (choice.get("logprobs") or {}).get("content"), delta.get("content")
        )

    def admit_tokens(self, content: list[dict[str, Any]] | None, text: Any) -> bool:
        """Count (and fix in place) one chunk's tokens; False past the limit."""
        content = content or []
        self.notes["bytes_rebuilt"] += adapt_logprobs(content, self.top_n)
        self.tokens += len(content) if content else int(bool(text))
        return self.limit is None or self.tokens <= self.limit

    def reached(self) -> bool:
        """True at the limit on an upstream that may not stop there by itself."""
        return self.limit is not None and not self.caps.honours_length and self.tokens >= self.limit

    def step(self, admitted: bool) -> tuple[bool, bool]:
        """After ``admit``: whether to pass the item on, and whether to stop reading after
        it (past the limit: withhold it and stop; at the limit: pass it and stop)."""
        self.seen = True
        self.cut = not admitted or self.reached()
        return admitted, self.cut

    def guarded(self, items: Iterator[_T], admit: Callable[[_T], bool]) -> Iterator[_T]:
        """``items`` up to the limit (``admit`` counts and fixes each); the rest is never read."""
        for item in items:
            keep, stop = self.step(admit(item))
            if keep:
                yield item
            if stop:
                return

    async def aguarded(
        self, items: AsyncIterator[_T], admit: Callable[[_T], bool]
    ) -> AsyncIterator[_T]:
        """``guarded`` for an async stream."""
        async for item in items:
            keep, stop = self.step(admit(item))
            if keep:
                yield item
            if stop:
                return

    def last(self) -> ChatGenerationChunk:
        """The closing chunk: the notes, and finish_reason "length" when we cut."""
        self.notes["length_cut"] = self.cut
        info: dict[str, Any] = {"upstream": self.notes}
        if self.cut:
            info["finish_reason"] = "length"
        return ChatGenerationChunk(message=AIMessageChunk(content=""), generation_info=info)


class UpstreamChatOpenAI(ChatOpenAI):
    """ChatOpenAI adapted to the upstream's capabilities (see the module docstring)."""

    # SkipValidation: the same object (its turns are shared), not a validated copy.
    upstream: SkipValidation[Upstream] = Field(
        exclude=True, description="The server called: its address, key, kind and turns."
    )

    def _get_request_payload(
        self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        # Only for the requests langchain-openai sends itself (the sync stream, structured
        # output helpers): ours are adapted once, in _stream_payload.
        payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
        adapt_request(payload, self.upstream.capabilities())
        return payload

    def _reading(
        self,
        caps: Capabilities,
        kwargs: dict[str, Any],
        payload: dict[str, Any],
        notes: dict[str, Any],
    ) -> _Reading:
        """How to read the answer to ``payload`` (adapted to ``caps``, with those ``notes``)."""
        limit = kwargs.get("max_tokens", kwargs.get("max_completion_tokens", self.max_tokens))
        top = kwargs.get("top_logprobs", self.top_logprobs)
        return _Reading(caps, limit, payload.get("top_logprobs") if top else None, notes)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with self.upstream.sync_turn() as caps:
            payload, notes, _ = self._stream_payload(messages, stop, kwargs, caps)
            reading = self._reading(caps, kwargs, payload, notes)
            stream = super()._stream(messages, stop, run_manager, **kwargs)
            try:
                yield from reading.guarded(stream, reading.admit)
            finally:
                stream.close()  # type: ignore[attr-defined]
        if reading.seen:  # an empty stream stays empty: "no generations" is the upstream's error
            yield reading.last()

    def _stream_payload(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        caps: Capabilities,
    ) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """The streaming request body as langchain-openai builds it, adapted once to
        ``caps``; what the adaptation changed (the answer's notes); and whether our own
        reader may send it (not for structured output helpers, response headers or the
        LangSmith gateway: only langchain-openai's own reader will do)."""
        kwargs = {**kwargs, "stream": True}
        if self._should_stream_usage(kwargs.pop("stream_usage", None), **kwargs):
            kwargs["stream_options"] = {"include_usage": True}
        payload: dict[str, Any] = super()._get_request_payload(messages, stop=stop, **kwargs)
        notes = adapt_request(payload, caps)
        plain = not (self.include_response_headers or self._uses_gateway)
        return payload, notes, plain and "response_format" not in payload

    async def _raw(self, payload: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The upstream's chunks as dicts, its errors as langchain-openai raises them."""
        try:
            async for raw in raw_chunks(self.async_client, payload, self.stream_chunk_timeout):
                yield raw
        except openai.BadRequestError as e:
            _handle_openai_bad_request(e)
        except openai.APIError as e:
            _handle_openai_api_error(e)

    async def _achunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        payload: dict[str, Any] | None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """What langchain-openai's ``_astream`` yields, without its per-chunk SDK models;
        ``payload`` None: langchain-openai's own reader (``_stream_payload``)."""
        if payload is None:
            async for whole in super()._astream(messages, stop, run_manager, **kwargs):
                yield whole
            return
        chunk_class: type[AIMessageChunk] = AIMessageChunk
        async for raw in self._raw(payload):
            chunk = self._convert_chunk_to_generation_chunk(raw, chunk_class, {})
            if chunk is None:
                continue
            chunk_class = chunk.message.__class__  # type: ignore[assignment]
            if run_manager:
                logprobs = (chunk.generation_info or {}).get("logprobs")
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk, logprobs=logprobs)
            yield chunk

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> bool:
        # ainvoke goes to _agenerate (which streams the upstream itself) unless someone
        # listens to the tokens (astream_events, a streaming callback handler).
        if async_api and not kwargs.get("stream") and not listens_to_tokens(run_manager):
            return False
        return bool(super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """The merged stream, read as dicts: the same message as ``astream`` summed."""
        caps = await self.upstream.acapabilities()
        payload, notes, ours = self._stream_payload(messages, stop, kwargs, caps)
        if not ours:
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        reading = self._reading(caps, kwargs, payload, notes)
        async with self.upstream.turn():
            stream = self._raw(payload)
            try:
                raws = [raw async for raw in reading.aguarded(stream, reading.admit_raw)]
            finally:
                await stream.aclose()
        if not raws:
            return await agenerate_from_stream(_no_chunks())  # its "no generations" error
        merged = merge_chunks(raws)
        parts = [merged] if merged is not None else raws
        chunks = [self._convert_chunk_to_generation_chunk(r, AIMessageChunk, {}) for r in parts]
        total = reading.last()
        for chunk in reversed(chunks):
            if chunk is not None:
                total = chunk + total
        message = message_chunk_to_message(total.message)
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info=total.generation_info)]
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async with self.upstream.turn() as caps:
            payload, notes, ours = self._stream_payload(messages, stop, kwargs, caps)
            reading = self._reading(caps, kwargs, payload, notes)
            stream = self._achunks(messages, stop, run_manager, payload if ours else None, **kwargs)
            try:
                async for chunk in reading.aguarded(stream, reading.admit):
                    yield chunk
            finally:
                await stream.aclose()
        if reading.seen:  # an empty stream stays empty: "no generations" is the upstream's error
            yield reading.last()


async def _no_chunks() -> AsyncIterator[ChatGenerationChunk]:
    return
    yield


def chat_model(settings: Settings, upstream: Upstream, **overrides: Any) -> ChatOpenAI:
    """A ChatOpenAI bound to ``upstream`` with logprobs on.

    Args:
        settings: the service settings (the model's defaults).
        upstream: the server called (address, key, timeout, retries, turns).
        **overrides: ChatOpenAI fields that replace the defaults (e.g. ``temperature``).
    """
    fields: dict[str, Any] = {
        **upstream.client_options(),
        "model": upstream.model,
        "logprobs": True,
        "top_logprobs": settings.top_logprobs,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "use_responses_api": False,
        "stream_usage": True,
        # configurable_fields rebuilds the model with every field set explicitly, and an
        # explicit streaming=False disables streaming for good: stream always (invoke
        # then aggregates the stream, so invoke and merged stream outputs agree).
        "streaming": True,
        # One client per model: the SDK's shared default client is bound to the first
        # event loop that used it, which breaks apps created again (tests, reloads).
        "http_async_client": openai.DefaultAsyncHttpxClient(),
        "upstream": upstream,
    }
    fields.update(overrides)
    return UpstreamChatOpenAI(**fields)


def configurable_chat_model(
    settings: Settings, upstream: Upstream, knobs: type[Knobs]
) -> Runnable[Any, Any]:
    """``chat_model`` with the route's knobs as defaults, each settable per request."""
    model = chat_model(settings, upstream, **knobs.defaults())
    return model.configurable_fields(**knobs.fields())
