"""Shared fixtures: settings, the real server with the embedded model (``live_url``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from sse_starlette.sse import AppStatus

from langserve_logprobs.settings import Settings
from server import create_app
from tests.servers import free_port, run_server


def pytest_configure(config: pytest.Config) -> None:
    # Apps built by tests keep calibrations in a temp dir, never in the checkout's data/
    # (settings are built at import time too, so this is set before any test module loads).
    if not os.environ.get("LOGPROBS_DATA_DIR"):
        os.environ["LOGPROBS_DATA_DIR"] = tempfile.mkdtemp(prefix="logprobs-test-data-")


@pytest.fixture(autouse=True)
def _reset_sse_exit_event() -> Iterator[None]:
    # sse-starlette 1.x binds a global exit event to the first event loop it sees.
    AppStatus.should_exit_event = None
    yield
    AppStatus.should_exit_event = None


@pytest.fixture(scope="session")
def live_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the real server: embedded model, a free port, a temp data dir."""
    data_dir = str(tmp_path_factory.mktemp("data"))
    return Settings(port=free_port(), host="127.0.0.1", data_dir=data_dir, _env_file=None)


@pytest.fixture(scope="session")
def live_url(live_settings: Settings) -> Iterator[str]:
    """Base URL of a real uvicorn server running the app on the embedded model."""
    with run_server(create_app(live_settings), port=live_settings.port) as url:
        yield url
