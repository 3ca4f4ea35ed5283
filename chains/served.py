"""What every route gets on top of its chain: per-item batch errors.

LangServe runs ``/batch`` all-or-nothing: one failing item fails the request. Here a
failed item comes back in its place as ``{"error": {"type", "message", "status_code"}}``
while the other items carry their normal output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from pydantic import BaseModel, Field, RootModel

from errors import to_service_error


class ErrorInfo(BaseModel):
    """A typed, safe description of what went wrong."""

    type: str = Field(description="Error kind, e.g. invalid_request, upstream_timeout.")
    message: str = Field(description="What went wrong, safe to show to a user.")
    status_code: int = Field(description="The HTTP status this error maps to.")


class ItemError(BaseModel):
    """In a batch, the output of an item that failed (the other items are unaffected)."""

    error: ErrorInfo = Field(description="Why this item failed.")


class ServedRunnable(RunnableBinding[Any, Any]):  # type: ignore[no-redef]
    """Delegates to ``bound``; ``abatch``/``batch`` turn each item's failure into an ItemError."""

    secrets: list[str] = Field(default_factory=list)

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
        results = await super().abatch(inputs, config, return_exceptions=True, **kwargs)
        return [self._item_error(r) if isinstance(r, Exception) else r for r in results]

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        results = super().batch(inputs, config, return_exceptions=True, **kwargs)
        return [self._item_error(r) if isinstance(r, Exception) else r for r in results]


def serve(chain: Runnable[Any, Any], secrets: Sequence[str] = ()) -> ServedRunnable:
    """Wrap a route's chain; its declared output becomes ``chain.OutputType | ItemError``."""
    output = chain.OutputType
    name = getattr(output, "__name__", "Output")
    # LangServe only validates BaseModel output types correctly: wrap the union in one.
    output_model = type(
        f"{name}OrError",
        (RootModel[output | ItemError],),  # type: ignore[misc,valid-type]
        {"__doc__": f"{name}, or ItemError for a failed item of a batch."},
    )
    return ServedRunnable(
        bound=chain,
        secrets=list(secrets),
        custom_input_type=chain.InputType,
        custom_output_type=output_model,
    )
