"""``/generate``: a completion with every token's logprob, alternatives and summary stats.

Invoke returns ``GenerateOutput``. Streaming yields events as tokens are generated:
each carries the new ``completion`` text and the new ``tokens``; the last one carries
``stats``, ``model``, ``finish_reason`` and ``low_confidence_spans``. Merging events in
order (``completion`` concatenated, ``tokens`` appended, every other key its last non-null
value; ``chains.logprobs.merge_stream_events``) gives exactly the invoke output.

No output object has a ``text``, ``messages`` or ``page_content`` key: LangChain.js's
``RemoteRunnable`` revives objects with those keys (at any depth) into prompt values or
documents and drops every other field.

Caveat: logprobs are the upstream's; sentinels (-9999, -3.4e38) become ``null`` and are
left out of the sums (``stats.num_unknown`` counts them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config
from pydantic import BaseModel, ConfigDict, Field

from chains.logprobs import (
    LogprobStats,
    Span,
    TokenLogprob,
    compute_stats,
    low_confidence_spans,
    merge_stream_events,
    parse_tokens,
)
from chains.model import configurable_chat_model
from chains.runnable import ModelChain, OptionalText, check_prompt_size
from langserve_logprobs.errors import validated
from langserve_logprobs.knobs import MODEL_KNOBS, knobs_model
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream


class GenerateInput(BaseModel):
    """A prompt, and optionally a system message."""

    prompt: str = Field(
        description="What to ask the model. The bundled model (Gemma 3 270M, a base model) "
        "continues text rather than following instructions: start what it should write.",
        examples=["def fibonacci(n):", "import numpy as np\n\ndef softmax(x):"],
    )
    system: OptionalText = Field(
        default=None,
        description="Optional system instructions (a base model reads them as more text).",
    )


class GenerateOutput(BaseModel):
    """The completion with per-token logprobs, alternatives and summary statistics."""

    # Field order is the JSON's key order: what a person reads first (the playground shows
    # the JSON as it comes), the long token list last.
    completion: str = Field(description="The generated text.")
    stats: LogprobStats = Field(description="Summary of the tokens' logprobs.")
    low_confidence_spans: list[Span] = Field(
        description="Words whose weakest token has probability below low_prob_threshold."
    )
    finish_reason: str | None = Field(description="Why generation stopped: stop or length.")
    model: str | None = Field(description="The model that answered, as the upstream named it.")
    tokens: list[TokenLogprob] = Field(description="Every generated token, in order.")


class GenerateChunk(BaseModel):
    """One stream event; merge events in order to get a GenerateOutput."""

    model_config = ConfigDict(extra="forbid")

    completion: str = Field(default="", description="Text generated since the previous event.")
    stats: LogprobStats | None = Field(default=None, description="Last event only.")
    low_confidence_spans: list[Span] | None = Field(default=None, description="Last event only.")
    finish_reason: str | None = Field(default=None, description="Last event only.")
    model: str | None = Field(default=None, description="Last event only.")
    tokens: list[TokenLogprob] = Field(default_factory=list, description="New tokens.")


class GenerateEvent(dict[str, Any]):
    """A stream event that LangChain can add up into the invoke output.

    langchain-core sums a stream's chunks (``total + chunk``) into the run's output, which
    callbacks, tracers (LangSmith) and ``astream_log`` report; plain dicts cannot be added,
    so it kept only the last event. The sum of a /generate stream's events is what
    ``merge_stream_events`` gives: the invoke output. On the wire an event is a plain object.
    """

    def __add__(self, other: Mapping[str, Any]) -> GenerateEvent:
        return GenerateEvent(merge_stream_events([self, other]))


def to_messages(data: GenerateInput, max_chars: int) -> list[BaseMessage]:
    """The chat messages for a generate input; rejects prompts over ``max_chars``."""
    check_prompt_size(max_chars, data.prompt, data.system, what="prompt")
    messages: list[BaseMessage] = []
    if data.system:
        messages.append(SystemMessage(content=data.system))
    messages.append(HumanMessage(content=data.prompt))
    return messages


def _logprob_content(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    logprobs = metadata.get("logprobs") or {}
    return list(logprobs.get("content") or [])


class _Accumulator:
    """Collects streamed chat chunks; yields GenerateChunk events, then the final one."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.tokens: list[TokenLogprob] = []
        self.model: str | None = None
        self.finish: str | None = None

    def take(self, chunk: BaseMessage) -> tuple[str, list[TokenLogprob]]:
        """Add ``chunk``'s tokens; its text and its new tokens."""
        metadata = chunk.response_metadata
        new = parse_tokens(_logprob_content(metadata))
        self.tokens.extend(new)
        self.model = metadata.get("model_name") or self.model
        self.finish = metadata.get("finish_reason") or self.finish
        return (chunk.content if isinstance(chunk.content, str) else chunk.text), new

    def feed(self, chunk: BaseMessage) -> dict[str, Any] | None:
        """``take`` ``chunk``; its stream event, None when it carries nothing."""
        text, new = self.take(chunk)
        if not text and not new:
            return None
        return GenerateEvent(GenerateChunk(completion=text, tokens=new).model_dump())

    def final(self) -> dict[str, Any]:
        return GenerateEvent(
            GenerateChunk(
                stats=compute_stats(self.tokens),
                model=self.model,
                finish_reason=self.finish,
                low_confidence_spans=low_confidence_spans(self.tokens, self.threshold),
            ).model_dump()
        )

    def output(self, message: BaseMessage) -> dict[str, Any]:
        text, _ = self.take(message)  # a whole answer: no event to build
        merged = {**self.final(), "completion": text, "tokens": self.tokens}
        return GenerateOutput.model_validate(merged).model_dump()


class Generate(ModelChain):
    """Calls the chat model and turns its logprobs into a GenerateOutput."""

    def _threshold(self, config: RunnableConfig) -> float:
        return self.knobs.of(config).low_prob_threshold

    def _messages(self, value: Any) -> list[BaseMessage]:
        return to_messages(validated(GenerateInput, value), self.max_prompt_chars)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        messages = self._messages(value)
        child = patch_config(config, callbacks=run_manager.get_child())
        message = await self.model.ainvoke(messages, child)
        return _Accumulator(self._threshold(config)).output(message)

    async def _astream(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[dict[str, Any]]:
        messages = self._messages(value)
        child = patch_config(config, callbacks=run_manager.get_child())
        acc = _Accumulator(self._threshold(config))
        async for chunk in self.model.astream(messages, child):
            if (event := acc.feed(chunk)) is not None:
                yield event
        yield acc.final()


def build_chain(settings: Settings, upstream: Upstream) -> Runnable[Any, Any]:
    """The /generate chain: the model knobs plus ``low_prob_threshold``."""
    knobs = knobs_model(settings, "GenerateKnobs", (*MODEL_KNOBS, "low_prob_threshold"))
    chain = Generate(
        model=configurable_chat_model(settings, upstream, knobs),
        max_prompt_chars=settings.max_prompt_chars,
        knobs=knobs,
    )
    return chain.with_types(input_type=GenerateInput, output_type=GenerateOutput)
