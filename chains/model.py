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
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import openai
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import ConfigurableField, Runnable
from langchain_openai import ChatOpenAI
from pydantic import Field, SecretStr

from langserve_logprobs.capabilities import (
    Capabilities,
    acapabilities_for,
    adapt_logprobs,
    adapt_request,
    capabilities_for,
)
from langserve_logprobs.limits import TOP_LOGPROBS_MAX
from langserve_logprobs.settings import Settings

LOCAL_API_KEY = "local-no-key"


class _Reading:
    """One streamed answer as it is read: tokens counted and fixed, the cut decided."""

    def __init__(
        self, caps: Capabilities, limit: int | None, top_n: int | None, notes: dict[str, Any]
    ) -> None:
        self.caps = caps
        self.limit = limit
        self.top_n = top_n
        self.tokens = 0
        self.notes: dict[str, Any] = {"kind": caps.kind, "bytes_rebuilt": 0, **notes}

    def admit(self, chunk: ChatGenerationChunk) -> bool:
        """Fix ``chunk`` in place; False if it runs past the limit (withhold it, stop)."""
        info = chunk.generation_info or {}
        content = (info.get("logprobs") or {}).get("content") or []
        self.notes["bytes_rebuilt"] += adapt_logprobs(content, self.top_n)
        self.tokens += len(content) if content else int(bool(chunk.text))
        return self.limit is None or self.tokens <= self.limit

    def reached(self) -> bool:
        """True at the limit on an upstream that may not stop there by itself."""
        return self.limit is not None and not self.caps.honours_length and self.tokens >= self.limit

    def last(self, cut: bool) -> ChatGenerationChunk:
        """The closing chunk: the notes, and finish_reason "length" when we cut."""
        self.notes["length_cut"] = cut
        info: dict[str, Any] = {"upstream": self.notes}
        if cut:
            info["finish_reason"] = "length"
        return ChatGenerationChunk(message=AIMessageChunk(content=""), generation_info=info)


class UpstreamChatOpenAI(ChatOpenAI):
    """ChatOpenAI adapted to the upstream's capabilities (see the module docstring)."""

    upstream_kind: str = Field(default="auto", description="LOGPROBS_UPSTREAM_KIND.")

    def _key(self) -> str | None:
        key = self.openai_api_key
        return key.get_secret_value() if isinstance(key, SecretStr) else None

    def _caps(self) -> Capabilities:
        return capabilities_for(str(self.openai_api_base), self.upstream_kind, self._key())

    async def _acaps(self) -> Capabilities:
        return await acapabilities_for(str(self.openai_api_base), self.upstream_kind, self._key())

    def _get_request_payload(
        self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
        adapt_request(payload, self._caps())
        return payload

    def _reading(self, caps: Capabilities, kwargs: dict[str, Any]) -> _Reading:
        limit = kwargs.get("max_tokens", kwargs.get("max_completion_tokens", self.max_tokens))
        top = kwargs.get("top_logprobs", self.top_logprobs)
        # What adapt_request will change, worked out on a copy, for the answer's notes.
        probe = {"top_logprobs": top, "extra_body": kwargs.get("extra_body", self.extra_body)}
        notes = adapt_request(probe, caps)
        return _Reading(caps, limit, probe["top_logprobs"] if top else None, notes)

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        reading = self._reading(self._caps(), kwargs)
        stream = super()._stream(messages, *args, **kwargs)
        cut = seen = False
        try:
            for chunk in stream:
                seen = True
                if not reading.admit(chunk):
                    cut = True
                    break
                yield chunk
                if reading.reached():
                    cut = True
                    break
        finally:
            stream.close()  # type: ignore[attr-defined]
        if seen:  # an empty stream stays empty: "no generations" is the upstream's error
            yield reading.last(cut)

    async def _astream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        reading = self._reading(await self._acaps(), kwargs)
        stream = super()._astream(messages, *args, **kwargs)
        cut = seen = False
        try:
            async for chunk in stream:
                seen = True
                if not reading.admit(chunk):
                    cut = True
                    break
                yield chunk
                if reading.reached():
                    cut = True
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if seen:  # an empty stream stays empty: "no generations" is the upstream's error
            yield reading.last(cut)


def chat_model(settings: Settings, **overrides: Any) -> ChatOpenAI:
    """A ChatOpenAI bound to the configured upstream with logprobs on.

    Args:
        settings: the service settings.
        **overrides: ChatOpenAI fields that replace the defaults (e.g. ``temperature``).
    """
    key = settings.openai_api_key or SecretStr(LOCAL_API_KEY)
    fields: dict[str, Any] = {
        "model": settings.model_name,
        "base_url": settings.upstream_base_url,
        "api_key": key,
        "logprobs": True,
        "top_logprobs": settings.top_logprobs,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "timeout": settings.request_timeout,
        "max_retries": settings.max_retries,
        "use_responses_api": False,
        "stream_usage": True,
        # configurable_fields rebuilds the model with every field set explicitly, and an
        # explicit streaming=False disables streaming for good: stream always (invoke
        # then aggregates the stream, so invoke and merged stream outputs agree).
        "streaming": True,
        # One client per model: the SDK's shared default client is bound to the first
        # event loop that used it, which breaks apps created again (tests, reloads).
        "http_async_client": openai.DefaultAsyncHttpxClient(),
        "upstream_kind": settings.upstream_kind,
    }
    fields.update(overrides)
    return UpstreamChatOpenAI(**fields)


def configurable_fields(settings: Settings) -> dict[str, ConfigurableField]:
    """The request-time knobs, with ids exactly as documented and validated ranges."""
    return {
        "temperature": ConfigurableField(
            id="temperature",
            name="Temperature",
            description="Sampling temperature, 0 to 2 (0: always the most likely token).",
            annotation=Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)],
        ),
        "max_tokens": ConfigurableField(
            id="max_tokens",
            name="Max tokens",
            description=f"Most tokens to generate, 1 to {settings.max_tokens_cap}.",
            annotation=Annotated[int, Field(ge=1, le=settings.max_tokens_cap)],
        ),
        "top_logprobs": ConfigurableField(
            id="top_logprobs",
            name="Top logprobs",
            description=f"Alternatives returned per token, 0 to {TOP_LOGPROBS_MAX}.",
            annotation=Annotated[int, Field(ge=0, le=TOP_LOGPROBS_MAX)],
        ),
        "model_name": ConfigurableField(
            id="model",
            name="Model",
            description="Model name sent to the upstream server.",
            annotation=Annotated[str, Field(min_length=1, max_length=200)],
        ),
    }


def configurable_chat_model(settings: Settings, **overrides: Any) -> Runnable[Any, Any]:
    """``chat_model`` with temperature, max_tokens, top_logprobs and model set per request."""
    return chat_model(settings, **overrides).configurable_fields(**configurable_fields(settings))
