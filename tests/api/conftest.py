"""In-process app against the fault-injecting fake upstream (no model needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from langserve_logprobs.capabilities import forget_scoring
from langserve_logprobs.settings import Settings
from server import create_app
from tests.fake_upstream import create_fake_upstream
from tests.helpers import fake_upstream_settings
from tests.servers import run_server


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[Any]:
    """The fake upstream app (its ``state.hits`` counts requests) and its URL."""
    app = create_fake_upstream()
    with run_server(app) as url:
        app.state.url = url
        yield app


@pytest.fixture
def settings(fake_upstream: Any) -> Settings:
    """Settings pointing at the fake upstream, no retries, ``UPSTREAM_TIMEOUT``."""
    return fake_upstream_settings(fake_upstream)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app in-process; server errors come back as responses, not exceptions."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _fresh_scoring_capability() -> Iterator[None]:
    # The fake upstream's models behave as different servers on one URL: what one test's
    # scoring requests taught the capability cache must not answer the next test.
    forget_scoring()
    yield
    forget_scoring()
