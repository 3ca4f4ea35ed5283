"""Bases for chains that wrap the chat model with invoke and streaming of their own.

``ChainRunnable`` subclasses implement ``_ainvoke``/``_invoke`` (one input -> one output) and,
if their stream is more than that one output, ``_astream``/``_stream`` (one input -> events).
This base routes them through langchain-core's ``_acall_with_config`` and
``_atransform_stream_with_config`` so that callbacks, tracing metadata and ``astream_events``
work as for any built-in runnable.
``ModelChain`` adds what every such chain holds: the chat model (whose request-time knobs
it exposes) and the prompt size limit (``check_prompt_size``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import ConfigDict, WithJsonSchema

from langserve_logprobs.errors import InvalidRequestError

# An optional text field whose JSON Schema is plain "string": LangServe's playground
# cannot render the {"type": "null"} branch that pydantic gives ``str | None``.
OptionalText = Annotated[str | None, WithJsonSchema({"type": "string"})]


def check_prompt_size(max_chars: int, *parts: str | None, what: str = "input") -> None:
    """Reject inputs whose text fields together exceed ``max_chars`` characters.

    Raises:
        InvalidRequestError: naming ``what``, the size and the limit.
    """
    size = sum(len(part or "") for part in parts)
    if size > max_chars:
        msg = f"{what}: {size} characters is over the limit of {max_chars}"
        raise InvalidRequestError(msg)


class ChainRunnable(RunnableSerializable[Any, Any]):
    """Base: subclasses define ``_ainvoke``/``_invoke``; a stream is their one output unless
    they define ``_astream``/``_stream`` too."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        raise NotImplementedError

    def _invoke(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        raise NotImplementedError

    async def _astream(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[Any]:
        yield await self._ainvoke(value, run_manager, config)

    def _stream(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Iterator[Any]:
        yield self._invoke(value, run_manager, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._ainvoke, input, ensure_config(config))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, ensure_config(config))

    async def _atransform(
        self,
        inputs: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[Any]:
        values = [value async for value in inputs]
        async for event in self._astream(values[-1], run_manager, config):
            yield event

    def _transform(
        self, inputs: Iterator[Any], run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Iterator[Any]:
        values = list(inputs)
        yield from self._stream(values[-1], run_manager, config)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        async def once() -> AsyncIterator[Any]:
            yield input

        async for event in self._atransform_stream_with_config(
            once(), self._atransform, ensure_config(config)
        ):
            yield event

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        yield from self._transform_stream_with_config(
            iter([input]), self._transform, ensure_config(config)
        )


class ModelChain(ChainRunnable):
    """Base of the chains that call the chat model: its knobs are the chain's knobs."""

    model: Runnable[Any, Any]
    max_prompt_chars: int

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return self.model.config_specs
