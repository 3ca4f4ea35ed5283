"""Helpers shared by test modules (no fixtures here: those live in the conftest files).

Test modules import helpers from here or from ``tests.servers``, never from each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from langserve_logprobs.settings import Settings

DATA = Path(__file__).resolve().parent / "data"
"""Recorded OpenAI-shaped completions."""

FAKE_KEY = "sk-test-SECRETKEY0123456789"
"""The API key the app sends the fake upstream; it must never reach a client."""

LOCAL_N_CTX = 1024
"""Context size of the embedded app the live tests start alone (``local_url``)."""


UPSTREAM_TIMEOUT = 30.0
"""The app's timeout on the fake upstream. The fake upstream runs in a thread of the test
process: when the machine is busy (another CPU-heavy process, a collection of the suite's
large heap) the process can stall for seconds, and a short timeout turned a 400 that a test
expected into a 504. Only the tests of timeouts use ``HANG_TIMEOUT``."""

HANG_TIMEOUT = 1.5
"""The timeout of the tests that make the fake upstream hang (``model="hang"``) and expect 504."""


def fake_upstream_settings(upstream: Any, **overrides: Any) -> Settings:
    """Settings pointing at the fake upstream app (``upstream.state.url``): no retries,
    ``UPSTREAM_TIMEOUT``; ``overrides`` replace any field."""
    fields: dict[str, Any] = {
        "openai_base_url": upstream.state.url + "/v1",
        "openai_api_key": FAKE_KEY,
        "max_retries": 0,
        "request_timeout": UPSTREAM_TIMEOUT,
        "_env_file": None,
    }
    fields.update(overrides)
    return Settings(**fields)


def invoke_body(model: str, prompt: str = "hi", **configurable: Any) -> dict[str, Any]:
    """A /generate invoke body; ``model`` tells the fake upstream which fault to inject."""
    return {
        "input": {"prompt": prompt},
        "config": {"configurable": {"model": model, **configurable}},
    }


def sse_events(text: str) -> list[tuple[str, Any]]:
    """The ``(event, data)`` pairs of an event-stream body, in order."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            data = lines.get("data")
            events.append((lines["event"], json.loads(data) if data else None))
    return events


def recorded(name: str) -> AIMessage:
    """The AIMessage ChatOpenAI makes of a recorded completion."""
    completion = json.loads((DATA / name).read_text(encoding="utf-8"))
    choice = completion["choices"][0]
    metadata = {
        "logprobs": choice["logprobs"],
        "model_name": completion["model"],
        "finish_reason": choice["finish_reason"],
    }
    return AIMessage(content=choice["message"]["content"], response_metadata=metadata)


class RecordedChat(BaseChatModel):
    """A chat model that answers with one recorded message and records its calls."""

    message: AIMessage
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recorded"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls.append({"messages": messages, **kw})
        return ChatResult(generations=[ChatGeneration(message=self.message)])
