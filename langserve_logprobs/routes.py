"""What every route gets on top of its chain: checked config and per-item batch errors.

LangServe does not check ``config.configurable`` values against their declared ranges;
here every call checks them first (``top_logprobs`` 0-20, ``max_tokens`` up to the cap,
finite ``temperature`` ...) and a bad value is a 400 naming the field. The schema they
are checked against is built once, when the route is wrapped.
LangServe runs ``/batch`` all-or-nothing: here a failed item comes back in its place as an
``ItemError`` while the other items carry their normal output
(``workarounds.all_or_nothing_batch``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from pydantic import BaseModel, Field, model_validator

from langserve_logprobs.errors import validated
from langserve_logprobs.playground_schema import published
from langserve_logprobs.workarounds.all_or_nothing_batch import output_or_error, per_item

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

    LangServe calls only ``ainvoke``, ``abatch``, ``astream`` (``astream_log`` goes through
    it) and ``astream_events``: those are checked; the sync methods are RunnableBinding's.
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

    def config_schema(self, *, include: Sequence[str] | None = None) -> type[BaseModel]:
        """The config schema, published so that the playground accepts its defaults."""
        return published(super().config_schema(include=include))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        self.check_config(config)
        return await super().ainvoke(input, config, **kwargs)

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

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        async def run(items: list[Any], configs: list[RunnableConfig]) -> list[Any]:
            return await super(RouteRunnable, self).abatch(
                items, configs, return_exceptions=True, **kwargs
            )

        return await per_item(inputs, config, self.check_config, run, self.secrets)


def wrap_route(chain: Runnable[Any, Any], secrets: Sequence[str] = ()) -> RouteRunnable:
    """Wrap a route's chain; its declared output becomes ``chain.OutputType | ItemError``."""
    output_model = output_or_error(chain.OutputType)
    return RouteRunnable(
        bound=chain,
        secrets=list(secrets),
        custom_input_type=published(chain.get_input_schema()),
        custom_output_type=published(output_model),
    )
