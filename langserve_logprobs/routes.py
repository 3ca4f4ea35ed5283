"""What every route gets on top of its chain: checked config and per-item batch errors.

LangServe does not check ``config.configurable`` values against their declared ranges;
here every call checks them first (``top_logprobs`` 0-20, ``max_tokens`` up to the cap,
finite ``temperature`` ...) and a bad value is a 400 naming the field. The schema they
are checked against is built once, when the route is wrapped.
LangServe runs ``/batch`` all-or-nothing: one failing item fails the request. Here a
failed item comes back in its place as an ``ItemError``
(``{"error": {"type", "message", "status_code"}}``) while the other items carry their
normal output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Annotated, Any

from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import BaseModel, Field, RootModel, model_validator

from langserve_logprobs.errors import InvalidRequestError, ItemError, to_service_error, validated

# bound chain's id -> (the chain, its configurable ids, its config schema). The chain is
# kept so that its id is never reused; routes are few and live as long as the app.
_CONFIG_CHECKS: dict[int, tuple[Runnable[Any, Any], frozenset[str], type[BaseModel]]] = {}


def _config_check(bound: Runnable[Any, Any]) -> tuple[frozenset[str], type[BaseModel]]:
    """The configurable ids of ``bound`` and the schema their values are checked against."""
    entry = _CONFIG_CHECKS.get(id(bound))
    if entry is None or entry[0] is not bound:
        known = frozenset(spec.id for spec in bound.config_specs)
        entry = _CONFIG_CHECKS[id(bound)] = (
            bound,
            known,
            bound.config_schema(include=["configurable"]),
        )
    return entry[1], entry[2]


class RouteRunnable(RunnableBinding[Any, Any]):  # type: ignore[no-redef]
    """Delegates to ``bound`` once the call's config is checked; batches fail per item.

    LangServe calls ``ainvoke``, ``abatch``, ``astream`` (``astream_log`` goes through it)
    and ``astream_events``; the sync methods are checked the same way.
    """

    secrets: list[str] = Field(default_factory=list)
    config_model: type[BaseModel] | None = Field(
        default=None, description="The bound chain's config schema (``configurable`` only)."
    )

    @model_validator(mode="after")
    def _build_config_model(self) -> RouteRunnable:
        # Once per chain: LangServe copies the route (with_config) for every request, and
        # building the schema is a pydantic model class each time.
        if self.config_model is None:
            self.config_model = _config_check(self.bound)[1]
        return self

    def check_config(self, config: RunnableConfig | None) -> None:
        """Raise InvalidRequestError when a configurable value is out of its range."""
        configurable = (config or {}).get("configurable") or {}
        if not configurable:
            return
        known = _config_check(self.bound)[0]
        values = {k: v for k, v in configurable.items() if k in known}
        if values and self.config_model is not None:
            validated(self.config_model, {"configurable": values}, "config")

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        self.check_config(config)
        return super().invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        self.check_config(config)
        return await super().ainvoke(input, config, **kwargs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        self.check_config(config)
        yield from super().stream(input, config, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        self.check_config(config)
        async for chunk in super().astream(input, config, **kwargs):
            yield chunk

    def astream_events(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        self.check_config(config)
        return super().astream_events(input, config, **kwargs)

    def _item_error(self, exc: BaseException) -> dict[str, Any]:
        return ItemError(error=to_service_error(exc, self.secrets).info()).model_dump()

    def _split(
        self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None
    ) -> tuple[list[Any], list[RunnableConfig], dict[int, Exception]]:
        """Check each item's config once: the good items, their configs, the failures."""
        configs = get_config_list(config, len(inputs))
        bad: dict[int, Exception] = {}
        for i, item_config in enumerate(configs):
            try:
                self.check_config(item_config)
            except InvalidRequestError as error:
                bad[i] = error
        good = [i for i in range(len(inputs)) if i not in bad]
        return [inputs[i] for i in good], [configs[i] for i in good], bad

    def _in_place(self, size: int, bad: dict[int, Exception], done: list[Any]) -> list[Any]:
        """Results of the good items and errors of the bad ones, in input order."""
        good = iter(done)
        results = [bad[i] if i in bad else next(good) for i in range(size)]
        return [self._item_error(r) if isinstance(r, Exception) else r for r in results]

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        good, configs, bad = self._split(inputs, config)
        done = await super().abatch(good, configs, return_exceptions=True, **kwargs)
        return self._in_place(len(inputs), bad, done)

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        good, configs, bad = self._split(inputs, config)
        done = super().batch(good, configs, return_exceptions=True, **kwargs)
        return self._in_place(len(inputs), bad, done)


def wrap_route(chain: Runnable[Any, Any], secrets: Sequence[str] = ()) -> RouteRunnable:
    """Wrap a route's chain; its declared output becomes ``chain.OutputType | ItemError``."""
    output = chain.OutputType
    name = getattr(output, "__name__", "Output")
    # LangServe only validates BaseModel output types correctly: wrap the union in one.
    # ItemError first, left to right: LangChain's message union (the /chat output) raises
    # TypeError, not a validation error, on a dict without "type", such as an ItemError.
    either = Annotated[ItemError | output, Field(union_mode="left_to_right")]  # type: ignore[valid-type]
    output_model = type(
        f"{name}OrError",
        (RootModel[either],),
        {"__doc__": f"{name}, or ItemError for a failed item of a batch."},
    )
    return RouteRunnable(
        bound=chain,
        secrets=list(secrets),
        custom_input_type=chain.InputType,
        custom_output_type=output_model,
    )
