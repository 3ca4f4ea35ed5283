"""``/chat``: the chat model itself, bound with ``logprobs=True`` and ``top_logprobs``.

Its output is the ``AIMessage``; the logprobs are in
``response_metadata["logprobs"]["content"]`` exactly as OpenAI sends them, so LangChain's
logprobs how-to works verbatim through ``RemoteRunnable(url + "/chat")``. Streamed
chunks each carry their own tokens' logprobs, and ``chunk_a + chunk_b`` concatenates them.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import Runnable

from chains.model import configurable_chat_model
from settings import Settings


def build_chain(settings: Settings) -> Runnable[Any, Any]:
    """The configurable chat model (temperature, max_tokens, top_logprobs, model)."""
    return configurable_chat_model(settings)
