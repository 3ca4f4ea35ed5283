"""The service's limits agree with the embedded engine's own copies (langserve_logprobs.limits)."""

from __future__ import annotations

import inspect

from langserve_logprobs import limits
from langserve_logprobs.settings import Settings
from local_llm import LocalEngine, create_local_app
from local_llm.model_file import DEFAULT_MODEL_NAME
from local_llm.protocol import MAX_TOP_LOGPROBS


def test_model_name_is_the_engines() -> None:
    assert limits.MODEL_NAME == DEFAULT_MODEL_NAME
    assert Settings(_env_file=None).model_name == DEFAULT_MODEL_NAME


def test_top_logprobs_bound_is_the_engines() -> None:
    assert limits.TOP_LOGPROBS_MAX == MAX_TOP_LOGPROBS


def test_context_window_default_is_the_engines() -> None:
    for function in (LocalEngine.__init__, create_local_app):
        default = inspect.signature(function).parameters["n_ctx"].default
        assert default == limits.N_CTX_DEFAULT, function
    assert Settings(_env_file=None).local_n_ctx == limits.N_CTX_DEFAULT
