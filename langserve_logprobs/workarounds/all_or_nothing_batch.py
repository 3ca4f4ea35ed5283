"""LangServe runs ``/batch`` all-or-nothing: one failing item fails the whole request.

Upstream behaviour (langserve 0.3, ``APIHandler.batch``): ``runnable.abatch(inputs)`` with
``return_exceptions`` left off, so the first item that raises turns the request into an
error and the other items' outputs are lost. Its output validation also takes only a
pydantic model as the declared output type, and LangChain's message union (the ``/chat``
output) raises ``TypeError``, not a validation error, on a dict without ``"type"``.

Correction: ``per_item`` runs the good items with ``return_exceptions=True`` and puts an
``ItemError`` (``{"error": {"type", "message", "status_code"}}``) in the place of each
failed one (an item whose config fails ``check`` never runs); ``output_or_error`` declares
the route's output as one pydantic ``RootModel`` of ``ItemError | output``, ``ItemError``
tried first, so LangServe's validation keeps both.

Delete when: LangServe's batch returns per-item errors itself (the canary
``test_langserve_batch_fails_whole`` fails).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import BaseModel, Field, RootModel

from langserve_logprobs.errors import InvalidRequestError, ItemError, to_service_error

BatchCall = Callable[[list[Any], list[RunnableConfig]], Awaitable[list[Any]]]


async def per_item(
    inputs: list[Any],
    config: RunnableConfig | list[RunnableConfig] | None,
    check: Callable[[RunnableConfig], None],
    run: BatchCall,
    secrets: Sequence[str] = (),
) -> list[Any]:
    """``run`` (a batch with ``return_exceptions=True``) over the items whose config passes
    ``check``; every item's output or ``ItemError`` dict, in input order."""
    configs = get_config_list(config, len(inputs))
    results: list[Any] = [None] * len(inputs)
    good: list[int] = []
    for i, item_config in enumerate(configs):
        try:
            check(item_config)
        except InvalidRequestError as error:
            results[i] = error
        else:
            good.append(i)
    done = await run([inputs[i] for i in good], [configs[i] for i in good])
    for i, result in zip(good, done, strict=True):
        results[i] = result
    return [
        ItemError(error=to_service_error(r, list(secrets)).info()).model_dump()
        if isinstance(r, Exception)
        else r
        for r in results
    ]


def output_or_error(output: Any) -> type[BaseModel]:
    """The declared output of a route whose chain outputs ``output``: it, or ItemError."""
    name = getattr(output, "__name__", "Output")
    either = Annotated[ItemError | output, Field(union_mode="left_to_right")]
    return type(
        f"{name}OrError",
        (RootModel[either],),
        {"__doc__": f"{name}, or ItemError for a failed item of a batch."},
    )
