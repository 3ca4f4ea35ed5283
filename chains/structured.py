"""What /classify and /extract share: asking the model for JSON under a schema.

A chain here sends one request with ``response_format`` json_schema and turns the answer
(its text, tokens and logprobs) into the route's output; streaming yields that output as
one event. The model wrapper (``chains.model``) sends that format in the upstream's own
form, or not at all where it has none: the prompt asks for JSON anyway, the answer is
validated, and ``constrained`` says whether a schema bound the decoding. The answer's
tokens are checked to spell its text byte for byte, so that confidences can be aligned by
bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config
from pydantic import BaseModel

from chains.logprobs import TokenLogprob, joined_bytes, parse_tokens
from chains.runnable import ModelChain
from langserve_logprobs.errors import UpstreamError, validated


def response_format(name: str, schema: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """The OpenAI ``response_format`` asking for JSON that follows ``schema``."""
    spec = {"name": name, "schema": schema, "strict": strict}
    return {"type": "json_schema", "json_schema": spec}


class Answer(NamedTuple):
    """A JSON answer as generated: its tokens, their joined bytes, the model's name and
    whether the upstream decoded it under the schema."""

    tokens: list[TokenLogprob]
    raw: bytes
    model: str | None
    constrained: bool = True


def read_answer(message: BaseMessage) -> Answer:
    """The tokens and bytes of a JSON answer, checked to be complete and aligned.

    Raises:
        UpstreamError: the answer was cut at max_tokens, came without logprobs, or its
            tokens do not spell its text.
    """
    metadata = message.response_metadata
    if metadata.get("finish_reason") == "length":
        msg = "the answer was cut off at max_tokens before its JSON was complete"
        raise UpstreamError(msg)
    tokens = parse_tokens((metadata.get("logprobs") or {}).get("content"))
    if not tokens:
        msg = "the model server sent no logprobs with the answer"
        raise UpstreamError(msg)
    raw = joined_bytes(tokens)
    text = message.content if isinstance(message.content, str) else message.text
    if raw != text.encode("utf-8"):
        msg = "the logprobs' tokens do not spell the model's answer"
        raise UpstreamError(msg)
    # The wrapper's notes; a message from elsewhere (tests) is taken as constrained.
    upstream = metadata.get("upstream") or {}
    constrained = bool(upstream.get("constrained", True))
    return Answer(tokens, raw, metadata.get("model_name"), constrained)


class Prepared(NamedTuple):
    """What one request sends to the model, and how its answer becomes the output."""

    messages: list[BaseMessage]
    response_format: dict[str, Any]
    finish: Callable[[BaseMessage], dict[str, Any]]


class JsonAnswerChain(ModelChain):
    """Base: asks the model for JSON under a schema; streams one final event.

    Subclasses set ``input_model`` and turn its validated instance into a ``Prepared``
    request. The ``response_format`` goes in ``extra_body``: a ``response_format``
    argument would send ChatOpenAI down ``chat.completions.parse``, which raises its own
    error on ``finish_reason == "length"`` and streams through the beta helper.
    """

    input_model: ClassVar[type[BaseModel]]

    def _prepare(self, data: Any) -> Prepared:
        raise NotImplementedError

    def _request(self, value: Any) -> tuple[Runnable[Any, Any], Prepared]:
        prepared = self._prepare(validated(self.input_model, value))
        model = self.model.bind(extra_body={"response_format": prepared.response_format})
        return model, prepared

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        model, prepared = self._request(value)
        child = patch_config(config, callbacks=run_manager.get_child())
        return prepared.finish(await model.ainvoke(prepared.messages, child))

    def _invoke(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        # Nothing calls it (ChainRunnable.invoke runs _ainvoke): kept for Classify._invoke's
        # super() call (chains/classify.py), and goes with it.
        model, prepared = self._request(value)
        child = patch_config(config, callbacks=run_manager.get_child())
        return prepared.finish(model.invoke(prepared.messages, child))
