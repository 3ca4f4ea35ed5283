"""In-process app against the fault-injecting fake upstream (no model needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from langserve_logprobs.settings import Settings
from server import create_app
from tests.fake_upstream import create_fake_upstream
from tests.servers import run_server

FAKE_KEY = "sk-test-SECRETKEY0123456789"


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[Any]:
    """The fake upstream app (its ``state.hits`` counts requests) and its URL."""
    app = create_fake_upstream()
    with run_server(app) as url:
        app.state.url = url
        yield app


def make_settings(upstream: Any, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "openai_base_url": upstream.state.url + "/v1",
        "openai_api_key": FAKE_KEY,
        "max_retries": 0,
        "request_timeout": 1.5,
        "_env_file": None,
    }
    fields.update(overrides)
    return Settings(**fields)


@pytest.fixture
def settings(fake_upstream: Any) -> Settings:
    """Settings pointing at the fake upstream, no retries, short timeout."""
    return make_settings(fake_upstream)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app in-process; server errors come back as responses, not exceptions."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def invoke_body(model: str, prompt: str = "hi", **configurable: Any) -> dict[str, Any]:
    return {
        "input": {"prompt": prompt},
        "config": {"configurable": {"model": model, **configurable}},
    }
