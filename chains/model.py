"""The chat model every chain uses: ChatOpenAI with logprobs on, knobs exposed per request.

The chains never know which backend answers: the embedded model at its own loopback
address (``langserve_logprobs.backend``) or any OpenAI-compatible server (OpenAI, vLLM,
llama.cpp, Ollama) set by ``OPENAI_BASE_URL``.
``use_responses_api`` stays off: that path drops logprobs.
"""

from __future__ import annotations

from typing import Annotated, Any

import openai
from langchain_core.runnables import ConfigurableField, Runnable
from langchain_openai import ChatOpenAI
from pydantic import Field, SecretStr

from langserve_logprobs.limits import TOP_LOGPROBS_MAX
from langserve_logprobs.settings import Settings

LOCAL_API_KEY = "local-no-key"


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
    }
    fields.update(overrides)
    return ChatOpenAI(**fields)


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
