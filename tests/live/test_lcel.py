"""LCEL composition with ``RemoteRunnable(url + "/chat")``, as another LangChain app writes it.

``prompt | RemoteRunnable(url + "/chat") | StrOutputParser()``: the prompt value reaches the
server as LangServe serialises it (``{"messages": [...]}``, a string prompt as
``{"text": ...}``), and every input ``ChatOpenAI`` takes works the same way.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import Runnable
from langserve import RemoteRunnable

pytestmark = pytest.mark.live

CONFIG: Any = {"configurable": {"max_tokens": 8, "temperature": 0}}


@pytest.fixture
def chat(live_url: str) -> Runnable[Any, Any]:
    """``RemoteRunnable(url + "/chat")``, short answers."""
    remote: Runnable[Any, Any] = RemoteRunnable(f"{live_url}/chat")
    return remote.with_config(CONFIG)


def _logprobs(message: AIMessage) -> list[dict[str, Any]]:
    return list(message.response_metadata["logprobs"]["content"])


def test_prompt_pipe_chat_pipe_parser(chat: Runnable[Any, Any]) -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "Continue the code."), ("human", "{q}")])
    chain = prompt | chat | StrOutputParser()
    answer = chain.invoke({"q": "def fibonacci(n):"})
    assert isinstance(answer, str) and answer.strip()

    pieces = list(chain.stream({"q": "def fibonacci(n):"}))
    assert len([p for p in pieces if p]) > 1  # streamed, not one piece at the end
    assert "".join(pieces) == answer  # temperature 0: the same answer

    # Without the parser, the message keeps its logprobs.
    message = (prompt | chat).invoke({"q": "def fibonacci(n):"})
    assert isinstance(message, AIMessage)
    tokens = _logprobs(message)
    assert tokens and all(t["logprob"] <= 0.0 and t["top_logprobs"] for t in tokens)


def test_string_prompt_pipe_chat(chat: Runnable[Any, Any]) -> None:
    chain = PromptTemplate.from_template("{q}") | chat | StrOutputParser()
    assert chain.invoke({"q": "def fibonacci(n):"}).strip()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("def fibonacci(n):", id="string"),
        pytest.param(("human", "def fibonacci(n):"), id="tuple"),
        pytest.param([("system", "Code."), ("human", "def fibonacci(n):")], id="tuples"),
        pytest.param(
            [SystemMessage("Code."), HumanMessage("def fibonacci(n):")], id="message-objects"
        ),
        pytest.param([{"role": "user", "content": "def fibonacci(n):"}], id="openai-dicts"),
        pytest.param({"messages": [{"type": "human", "content": "hi"}]}, id="prompt-value-dict"),
    ],
)
def test_every_chat_openai_input(chat: Runnable[Any, Any], value: Any) -> None:
    message = chat.invoke(value)
    assert isinstance(message, AIMessage)
    assert isinstance(message.content, str) and message.content
    assert _logprobs(message)


def test_the_seed_tuple_call_is_unchanged(live_url: str) -> None:
    remote: Runnable[Any, Any] = RemoteRunnable(f"{live_url}/chat")
    message = remote.invoke(
        ("human", "how are you today"), config={"configurable": {"max_tokens": 4}}
    )
    assert isinstance(message, AIMessage) and _logprobs(message)


def test_an_empty_prompt_value_is_a_400(chat: Runnable[Any, Any]) -> None:
    with pytest.raises(httpx.HTTPStatusError) as info:
        chat.invoke({"messages": []})
    assert info.value.response.status_code == 400
    assert "at least one message is required" in str(info.value)
