"""Embedded OpenAI-compatible model server (llama.cpp) with fast, exact token logprobs.

It knows nothing of LangServe: ``create_local_app()`` is a FastAPI app serving ``/v1/...``,
runnable alone (``python -m local_llm``) or mounted inside another app. Importing this package
loads nothing heavy; the model loads in ``LocalEngine.load()``.
"""

from __future__ import annotations

from local_llm.api_router import create_local_app
from local_llm.engine import LocalEngine
from local_llm.engine_api import ChatEngine, SamplingParams
from local_llm.model_file import default_model_path

__all__ = ["ChatEngine", "LocalEngine", "SamplingParams", "create_local_app", "default_model_path"]
