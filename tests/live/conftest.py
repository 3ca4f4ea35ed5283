"""Fixtures shared by the live tests: the embedded OpenAI-compatible app on its own, and a
headless browser (``tests/live/browser.py``) for the pages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from local_llm import LocalEngine, create_local_app
from tests.helpers import LOCAL_N_CTX
from tests.live.browser import ARTIFACTS, Page, find_browser, install_chromium, open_browser
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


@pytest.fixture(scope="session")
def browser_binary() -> str:
    """Path of a Chromium binary, installed with apt when missing (as root)."""
    path = find_browser() or install_chromium()
    if path is None:
        msg = "chromium is not installed and could not be installed with apt-get"
        if os.environ.get("CI"):
            pytest.fail(msg)  # in CI the browser tests must run, not skip
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where screenshots go: ``UI_SCREENSHOT_DIR``, else tests/artifacts/screenshots."""
    path = Path(os.environ.get("UI_SCREENSHOT_DIR") or ARTIFACTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def page(browser_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """A tab of a headless Chromium (1200x900) started for this session."""
    with open_browser(browser_binary, tmp_path_factory.mktemp("chromium-profile")) as tab:
        yield tab
