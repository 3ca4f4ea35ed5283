"""``/chat``: the chat model itself, bound with ``logprobs=True`` and ``top_logprobs``.

Its output is the ``AIMessage``; the logprobs are in
``response_metadata["logprobs"]["content"]`` exactly as OpenAI sends them, so LangChain's
logprobs how-to works verbatim through ``RemoteRunnable(url + "/chat")``. Streamed
chunks each carry their own tokens' logprobs, and ``chunk_a + chunk_b`` concatenates them.
Input is checked before anything is sent upstream: an unknown message role or a prompt
over ``LOGPROBS_MAX_PROMPT_CHARS`` is a 400 naming the problem.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, ConfigDict, Field

from chains.model import configurable_chat_model
from chains.runnable import check_prompt_size
from langserve_logprobs.errors import InvalidRequestError
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream


class MessageIn(BaseModel):
    """A chat message, LangChain style (``type``) or OpenAI style (``role``)."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(default=None, description="human, ai or system (LangChain).")
    role: str | None = Field(default=None, description="user, assistant or system (OpenAI).")
    content: str | list[Any] = Field(description="The message text, or content parts.")


# Declared input: LangChain's own message union raises TypeError (a 500) on some
# shapes before our check can run; this one validates, then check_messages converts.
ChatInput = str | list[MessageIn | tuple[str, str] | str]


def _plain(item: Any) -> Any:
    if isinstance(item, BaseModel) and not isinstance(item, BaseMessage):
        return item.model_dump(exclude_none=True)
    return item


def check_messages(value: Any, max_chars: int) -> list[BaseMessage]:
    """The input as chat messages; InvalidRequestError for bad roles, shapes or sizes."""
    if isinstance(value, PromptValue):
        messages = value.to_messages()
    else:
        try:
            items = [value] if isinstance(value, str) else [_plain(v) for v in value]
            messages = convert_to_messages(items)
        except (ValueError, TypeError, NotImplementedError, KeyError) as exc:
            msg = f"input: not a list of chat messages ({str(exc).splitlines()[0][:200]})"
            raise InvalidRequestError(msg) from None
    if not messages:
        msg = "input: at least one message is required"
        raise InvalidRequestError(msg)
    check_prompt_size(max_chars, *(m.text for m in messages))
    return messages


def build_chain(settings: Settings, upstream: Upstream) -> Runnable[Any, Any]:
    """The configurable chat model (temperature, max_tokens, top_logprobs, model)."""
    model = configurable_chat_model(settings, upstream)

    def check(value: Any) -> list[BaseMessage]:
        return check_messages(value, settings.max_prompt_chars)

    async def acheck(value: Any) -> list[BaseMessage]:
        return check(value)  # cheap: no hop to a worker thread per request

    guard: Runnable[Any, list[BaseMessage]] = RunnableLambda(
        check, afunc=acheck, name="check_messages"
    )
    return (guard | model).with_types(input_type=ChatInput)  # type: ignore[arg-type]
