"""Bases for chains that wrap the chat model with invoke and streaming of their own.

``ChainRunnable`` subclasses implement ``_ainvoke`` (one input -> one output) and, if their
stream is more than that one output, ``_astream`` (one input -> events). This base routes
them through langchain-core's ``_acall_with_config`` and ``_atransform_stream_with_config``
so that callbacks, tracing metadata and ``astream_events`` work as for any built-in
runnable; the sync ``invoke`` and ``stream`` are derived from them, never written twice.
``ModelChain`` adds what every such chain holds: the chat model, the route's request knobs
(``langserve_logprobs.knobs``: its config schema, read typed with ``knobs.of(config)``) and
the prompt size limit (``check_prompt_size``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator
from typing import Annotated, Any, TypeVar

from langchain_core.callbacks import AsyncCallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import ConfigDict, Field, WithJsonSchema

from langserve_logprobs.errors import InvalidRequestError
from langserve_logprobs.knobs import Knobs, default_knobs

# An optional text field whose JSON Schema is plain "string": LangServe's playground
# cannot render the {"type": "null"} branch that pydantic gives ``str | None``.
_T = TypeVar("_T")

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


class _Loop:
    """One event loop on a daemon thread, where the sync entry points run the async ones.

    One loop for every sync call of the process, so that the model's async HTTP client
    (bound to the loop that first used it) is always used from that same loop.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                cls._loop = asyncio.new_event_loop()
                threading.Thread(target=cls._loop.run_forever, daemon=True).start()
            return cls._loop

    @classmethod
    def run(cls, work: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(work, cls.get()).result()

    @classmethod
    def iterate(cls, events: AsyncGenerator[_T, None]) -> Iterator[_T]:
        async def step() -> _T:
            return await anext(events)

        async def close() -> None:
            await events.aclose()

        try:
            while True:
                try:
                    yield cls.run(step())
                except StopAsyncIteration:
                    return
        finally:
            cls.run(close())


class ChainRunnable(RunnableSerializable[Any, Any]):
    """Base: subclasses define ``_ainvoke``; a stream is its one output unless they define
    ``_astream`` too. Async first: ``invoke`` and ``stream`` run ``ainvoke`` and ``astream``
    on one background event loop (LangServe calls only the async methods)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        raise NotImplementedError

    async def _astream(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[Any]:
        yield await self._ainvoke(value, run_manager, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._ainvoke, input, ensure_config(config))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return _Loop.run(self.ainvoke(input, config, **kwargs))

    async def _atransform(
        self,
        inputs: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[Any]:
        values = [value async for value in inputs]
        async for event in self._astream(values[-1], run_manager, config):
            yield event

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
        yield from _Loop.iterate(self.astream(input, config, **kwargs))  # type: ignore[arg-type]


class ModelChain(ChainRunnable):
    """Base of the chains that call the chat model: the route's knobs are the chain's."""

    model: Runnable[Any, Any]
    max_prompt_chars: int
    knobs: type[Knobs] = Field(default_factory=default_knobs)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return self.knobs.specs()
