"""The service's limits (langserve_logprobs.limits) and the embedded engine's own copies.

``local_llm`` cannot import ``langserve_logprobs`` (the engine knows nothing of the service,
and an upstream-only install has no llama.cpp to import it with), so it keeps its own
copies of the bounds it enforces. Each pair is pinned here: ``PAIRS`` lists every copy, read
from where the engine enforces it (a constant, a pydantic bound, a signature default).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel

import local_llm.__main__ as local_main
from langserve_logprobs import limits
from langserve_logprobs.knobs import default_knobs
from langserve_logprobs.settings import Settings
from local_llm import LocalEngine, completions_protocol, create_local_app, protocol
from local_llm.model_file import DEFAULT_MODEL_NAME


def _bound(model: type[BaseModel], field: str, kind: type[Any]) -> Any:
    """The ``le``/``ge``... bound of ``model.field`` (e.g. ``annotated_types.Le``)."""
    found = [m for m in model.model_fields[field].metadata if isinstance(m, kind)]
    assert len(found) == 1, (model, field, kind)
    return getattr(found[0], kind.__name__.lower())


def _default(function: Callable[..., Any], parameter: str) -> Any:
    return inspect.signature(function).parameters[parameter].default


def _cli_n_ctx() -> int:
    """``python -m local_llm``'s ``--n-ctx`` default, read by running its ``main``."""
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def engine(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Stop

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_main, "LocalEngine", engine)
        with pytest.raises(Stop):
            local_main.main([])
    return int(seen["n_ctx"])


# (service value, engine copy, where the copy lives)
PAIRS: list[Any] = [
    pytest.param(limits.MODEL_NAME, lambda: DEFAULT_MODEL_NAME, id="model-name"),
    pytest.param(limits.TOP_LOGPROBS_MAX, lambda: protocol.MAX_TOP_LOGPROBS, id="top-logprobs"),
    pytest.param(
        limits.TOP_LOGPROBS_MAX,
        lambda: _bound(protocol.ChatCompletionRequest, "top_logprobs", annotated_types.Le),
        id="top-logprobs-chat-request",
    ),
    pytest.param(
        limits.TOP_LOGPROBS_MAX,
        lambda: completions_protocol.MAX_LOGPROBS,
        id="top-logprobs-completions",
    ),
    pytest.param(
        limits.TOP_LOGPROBS_MAX,
        lambda: _bound(completions_protocol.CompletionRequest, "logprobs", annotated_types.Le),
        id="logprobs-completions-request",
    ),
    pytest.param(
        limits.TOP_LOGPROBS_MAX,
        lambda: _bound(
            completions_protocol.CompletionRequest, "prompt_logprobs", annotated_types.Le
        ),
        id="prompt-logprobs-completions-request",
    ),
    pytest.param(
        limits.TEMPERATURE_MAX,
        lambda: _bound(protocol.ChatCompletionRequest, "temperature", annotated_types.Le),
        id="temperature",
    ),
    pytest.param(limits.N_CTX_DEFAULT, lambda: _default(LocalEngine.__init__, "n_ctx"), id="n-ctx"),
    pytest.param(limits.N_CTX_DEFAULT, lambda: _default(create_local_app, "n_ctx"), id="n-ctx-app"),
    pytest.param(limits.N_CTX_DEFAULT, _cli_n_ctx, id="n-ctx-cli"),
]


@pytest.mark.parametrize(("ours", "engine_copy"), PAIRS)
def test_engine_copy_equals_the_service_limit(ours: Any, engine_copy: Callable[[], Any]) -> None:
    assert engine_copy() == ours


def test_settings_take_their_bounds_and_defaults_from_limits() -> None:
    settings = Settings(_env_file=None)
    assert settings.model_name == limits.MODEL_NAME
    assert settings.local_n_ctx == limits.N_CTX_DEFAULT
    assert _bound(Settings, "top_logprobs", annotated_types.Le) == limits.TOP_LOGPROBS_MAX
    assert _bound(Settings, "temperature", annotated_types.Le) == limits.TEMPERATURE_MAX


def test_knobs_take_their_bounds_from_limits() -> None:
    knobs = default_knobs()
    assert _bound(knobs, "top_logprobs", annotated_types.Le) == limits.TOP_LOGPROBS_MAX
    assert _bound(knobs, "temperature", annotated_types.Le) == limits.TEMPERATURE_MAX
