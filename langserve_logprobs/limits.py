"""Limits and defaults that more than one module relies on, each defined once.

The request knobs (``langserve_logprobs.knobs``) take their bounds from here.

The embedded engine (``local_llm``) keeps its own copies: it knows nothing of this
service, and importing it pulls numpy and llama.cpp, which an upstream-only install
does not have. ``tests/unit/test_limits.py`` checks that both sides agree.
"""

from __future__ import annotations

TOP_LOGPROBS_MAX = 20
"""Most alternatives per token a request may ask for (OpenAI's bound; the engine's too)."""

TEMPERATURE_MAX = 2.0
"""Highest sampling temperature a request may ask for (OpenAI's bound; the engine's too)."""

LOW_PROB_THRESHOLD_MAX = 1.0
"""``low_prob_threshold`` is a probability."""

MODEL_NAME_MAX_CHARS = 200
"""Longest model name a request may send upstream."""

N_CTX_DEFAULT = 4096
"""Default context window of the embedded model, in tokens."""

MODEL_NAME = "gemma-3-270m"
"""Name of the embedded model (``local_llm.model_file.DEFAULT_MODEL_NAME``): the default
model name sent upstream and reported by ``/healthz``."""
