"""Fixtures shared by the live tests of the embedded OpenAI-compatible app on its own."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from local_llm import LocalEngine, create_local_app
from tests.helpers import LOCAL_N_CTX
from tests.servers import run_server


@pytest.fixture(scope="module")
def local_url() -> Iterator[str]:
    """Base URL of the local OpenAI-compatible app alone (no LangServe), on a real socket."""
    engine = LocalEngine(n_ctx=LOCAL_N_CTX)
    engine.load()
    try:
        with run_server(create_local_app(engine), health="/health") as url:
            yield url
    finally:
        engine.close()


@pytest.fixture
def local_sdk(local_url: str) -> Iterator[openai.OpenAI]:
    """The ``openai`` SDK pointed at ``local_url``'s /v1, without retries."""
    with openai.OpenAI(base_url=f"{local_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk
