"""What every route gets on top of its chain: checked config and per-item batch errors.

LangServe does not check ``config.configurable`` values against their declared ranges;
here every call checks them first (``top_logprobs`` 0-20, ``max_tokens`` up to the cap,
finite ``temperature`` ...) and a bad value is a 400 naming the field.
LangServe runs ``/batch`` all-or-nothing: one failing item fails the request. Here a
failed item comes back in its place as ``{"error": {"type", "message", "status_code"}}``
while the other items carry their normal output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import BaseModel, Field, RootModel, ValidationError

from langserve_logprobs.errors import InvalidRequestError, invalid_input, to_service_error

# config schema per chain (built once; chains live as long as the app)
_CONFIG_MODELS: dict[int, type[BaseModel]] = {}


class ErrorInfo(BaseModel):
    """A typed, safe description of what went wrong."""

    type: str = Field(description="Error kind, e.g. invalid_request, upstream_timeout.")
    message: str = Field(description="What went wrong, safe to show to a user.")
    status_code: int = Field(description="The HTTP status this error maps to.")


class ItemError(BaseModel):
    """In a batch, the output of an item that failed (the other items are unaffected)."""

    error: ErrorInfo = Field(description="Why this item failed.")


class RouteRunnable(RunnableBinding[Any, Any]):  # type: ignore[no-redef]
    """Delegates to ``bound``; ``abatch``/``batch`` turn each item's failure into an ItemError."""

    secrets: list[str] = Field(default_factory=list)

    def _check(self, config: RunnableConfig | None) -> None:
        """Raise InvalidRequestError when a configurable value is out of its range."""
        configurable = (config or {}).get("configurable") or {}
        known = {spec.id for spec in self.bound.config_specs}
        values = {k: v for k, v in configurable.items() if k in known}
        if not values:
            return
        model = _CONFIG_MODELS.get(id(self.bound))
        if model is None:
            model = _CONFIG_MODELS[id(self.bound)] = self.bound.config_schema(
                include=["configurable"]
            )
        try:
            model.model_validate({"configurable": values})
        except ValidationError as exc:
            raise invalid_input(exc, "config") from None

    def _merge_configs(self, *configs: RunnableConfig | None) -> RunnableConfig:
        # Every RunnableBinding method (invoke, stream, stream_events, stream_log, batch)
        # merges the caller's config through here first: the one place to check it.
        for config in configs:
            self._check(config)
        return super()._merge_configs(*configs)

    def _item_error(self, exc: BaseException) -> dict[str, Any]:
        return {"error": to_service_error(exc, self.secrets).to_dict()}

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        configs = get_config_list(config, len(inputs))
        bad: dict[int, Exception] = {}
        for i, item_config in enumerate(configs):
            try:
                self._check(item_config)
            except InvalidRequestError as error:
                bad[i] = error
        good = [i for i in range(len(inputs)) if i not in bad]
        done = await super().abatch(
            [inputs[i] for i in good], [configs[i] for i in good], return_exceptions=True, **kwargs
        )
        results: list[Any] = [None] * len(inputs)
        for i, result in zip(good, done, strict=True):
            results[i] = result
        for i, failure in bad.items():
            results[i] = failure
        return [self._item_error(r) if isinstance(r, Exception) else r for r in results]

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        for item_config in get_config_list(config, len(inputs)):
            self._check(item_config)
        results = super().batch(inputs, config, return_exceptions=True, **kwargs)
        return [self._item_error(r) if isinstance(r, Exception) else r for r in results]


def wrap_route(chain: Runnable[Any, Any], secrets: Sequence[str] = ()) -> RouteRunnable:
    """Wrap a route's chain; its declared output becomes ``chain.OutputType | ItemError``."""
    output = chain.OutputType
    name = getattr(output, "__name__", "Output")
    # LangServe only validates BaseModel output types correctly: wrap the union in one.
    output_model = type(
        f"{name}OrError",
        (RootModel[output | ItemError],),  # type: ignore[valid-type]
        {"__doc__": f"{name}, or ItemError for a failed item of a batch."},
    )
    return RouteRunnable(
        bound=chain,
        secrets=list(secrets),
        custom_input_type=chain.InputType,
        custom_output_type=output_model,
    )
