"""``/chat``: the chat model itself, bound with ``logprobs=True`` and ``top_logprobs``.

Its output is the ``AIMessage``; the logprobs are in
``response_metadata["logprobs"]["content"]`` exactly as OpenAI sends them, so LangChain's
logprobs how-to works verbatim through ``RemoteRunnable(url + "/chat")``. Streamed
chunks each carry their own tokens' logprobs, and ``chunk_a + chunk_b`` concatenates them.
Input: whatever ``ChatOpenAI`` takes: a string, a list of messages (LangChain dicts with
``type``, OpenAI dicts with ``role``, ``(role, text)`` tuples or strings), or a prompt value
as LangServe serialises it: ``{"messages": [...]}`` for a chat prompt, ``{"text": ...}``
for a string prompt (LangChain.js: ``{"value": ...}``). So
``ChatPromptTemplate | RemoteRunnable(url + "/chat") | StrOutputParser()`` works. The
published input schema is the ``{"messages": [...]}`` form: LangServe's chat playground needs
an object with one message-list field; the other forms are accepted all the same.
Input is checked before anything is sent upstream: an unknown message role or a prompt
over ``LOGPROBS_MAX_PROMPT_CHARS`` is a 400 naming the problem.
"""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, WithJsonSchema

from chains.model import configurable_chat_model
from chains.runnable import check_prompt_size
from langserve_logprobs.errors import InvalidRequestError
from langserve_logprobs.knobs import MODEL_KNOBS, knobs_model
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream


class MessageIn(BaseModel):
    """A chat message, LangChain style (``type``) or OpenAI style (``role``)."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(default=None, description="human, ai or system (LangChain).")
    role: str | None = Field(default=None, description="user, assistant or system (OpenAI).")
    content: str | list[Any] = Field(description="The message text, or content parts.")


Message = MessageIn | tuple[str, str] | str


class ChatPromptIn(BaseModel):
    """A chat prompt value as LangServe serialises it: ``{"messages": [...]}``."""

    model_config = ConfigDict(extra="allow")

    messages: list[Message] = Field(description="The conversation so far, oldest first.")


class StringPromptIn(BaseModel):
    """A string prompt value as LangServe serialises it: ``{"text": ...}`` (Python) or
    ``{"value": ...}`` (LangChain.js)."""

    model_config = ConfigDict(extra="allow")

    text: str = Field(
        validation_alias=AliasChoices("text", "value"),
        description="The prompt, sent as one human message.",
    )


# Published as the {"messages": [...]} object: LangServe's chat playground looks for an object
# input with one message-list field; a bare union gives it none.
_PUBLISHED_INPUT: dict[str, Any] = {
    "title": "ChatInput",
    "description": "The conversation: {messages: [...]}. A plain string, a bare list of "
    'messages or (role, text) pairs, and {"text": ...} are accepted too (everything '
    "ChatOpenAI accepts).",
    "type": "object",
    "properties": {
        "messages": {
            "title": "Messages",
            "description": "The conversation so far, oldest first.",
            "type": "array",
            "items": MessageIn.model_json_schema(),
        }
    },
    "required": ["messages"],
}

# Declared input: LangChain's own message union raises TypeError (a 500) on some
# shapes before our check can run; this one validates, then check_messages converts.
ChatInput = Annotated[
    str | list[Message] | ChatPromptIn | StringPromptIn, WithJsonSchema(_PUBLISHED_INPUT)
]


def _plain(item: Any) -> Any:
    if isinstance(item, BaseModel) and not isinstance(item, BaseMessage):
        return item.model_dump(exclude_none=True)
    return item


def check_messages(value: Any, max_chars: int) -> list[BaseMessage]:
    """The input as chat messages; InvalidRequestError for bad roles, shapes or sizes."""
    if isinstance(value, ChatPromptIn):
        value = value.messages
    elif isinstance(value, StringPromptIn):
        value = value.text
    elif isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]  # a chat prompt value
    elif isinstance(value, dict) and isinstance(value.get("text"), str):
        value = value["text"]  # a string prompt value
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
    knobs = knobs_model(settings, "ChatKnobs", MODEL_KNOBS)
    model = configurable_chat_model(settings, upstream, knobs)

    def check(value: Any) -> list[BaseMessage]:
        return check_messages(value, settings.max_prompt_chars)

    async def acheck(value: Any) -> list[BaseMessage]:
        return check(value)  # cheap: no hop to a worker thread per request

    guard: Runnable[Any, list[BaseMessage]] = RunnableLambda(
        check, afunc=acheck, name="check_messages"
    )
    return (guard | model).with_types(input_type=ChatInput)  # type: ignore[arg-type]
