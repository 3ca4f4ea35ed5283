"""Real OpenAI-compatible peer servers, started as subprocesses on free ports.

Like vLLM's ``RemoteOpenAIServer``: the command runs on a free port with the bundled GGUF,
its health URL is polled until it answers 200, and it is killed at the end. A peer that
cannot be started here is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.procs import stop, wait_healthy
from langserve_logprobs.settings import Settings
from tests.servers import free_port

START_TIMEOUT = 120.0
N_CTX = 2048
MAX_TOKENS = 8
"""max_tokens of the /chat and /generate requests."""
JSON_MAX_TOKENS = 64
"""The app's default max_tokens: /extract's answers (/classify has 64 of its own)."""


@dataclass(frozen=True)
class Peer:
    """A backend under test: its kind (as we should detect it) and our app's URL on it."""

    kind: str
    app_url: str
    upstream_url: str


def peer_settings(upstream_url: str, **overrides: object) -> Settings:
    """Our app's settings against a peer at ``upstream_url`` (no ``/v1``)."""
    fields: dict[str, object] = {
        "openai_base_url": upstream_url + "/v1",
        "max_tokens": JSON_MAX_TOKENS,
        "max_retries": 0,
        "request_timeout": 60.0,
        "_env_file": None,
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


def model_path() -> str:
    from local_llm.model_file import default_model_path

    return str(default_model_path())


def unavailable(reason: str) -> None:
    """Skip the peer's tests, or fail them under CI=true (a missing peer is a broken set-up)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"peer unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def llama_server_command(port: int) -> list[str]:
    """llama.cpp's llama-server (LLAMA_SERVER_BIN, set by ``make test``), one thread.

    The GGUF has no chat template of its own: ``--chat-template gemma`` names the built-in
    one, which only the non-Jinja path knows (with Jinja on, the name itself becomes the
    template and every prompt is the word "gemma").
    """
    binary = os.environ.get("LLAMA_SERVER_BIN") or shutil.which("llama-server")
    if not binary or not Path(binary).is_file():
        unavailable("llama-server not built: set LLAMA_SERVER_BIN (make test builds it)")
    return [
        str(binary), "-m", model_path(), "--no-jinja", "--chat-template", "gemma",
        "-t", "1", "-c", str(N_CTX), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def llama_cpp_python_command(port: int) -> list[str]:
    """llama-cpp-python's server (its ``server`` extra), one thread, its default flags.

    By default (``--interrupt_requests True``) it cuts a running stream short as soon as
    another request arrives: our ``Upstream`` sends it one request at a time (its
    ``max_concurrent`` is 1), so batch items wait their turn instead of being lost.
    """
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        unavailable(f"llama-cpp-python's server extra is not installed ({exc})")
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", model_path(),
        "--chat_format", "gemma", "--n_threads", "1", "--n_ctx", str(N_CTX),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


@contextmanager
def peer_server(name: str) -> Iterator[str]:
    """Start peer ``name`` on a free port; yield its base URL (no ``/v1``) once healthy."""
    port = free_port()
    command = {"llama-server": llama_server_command, "llama-cpp-python": llama_cpp_python_command}
    args = command[name](port)
    # llama-server has /health; llama-cpp-python's server has none, its model list will do.
    health = "/health" if name == "llama-server" else "/v1/models"
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(process, url + health, log)
            yield url
        finally:
            stop(process, 10)


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: object) -> None:
    if wait_healthy(url, START_TIMEOUT, alive=lambda: process.poll() is None):
        return
    log.seek(0)  # type: ignore[attr-defined]
    tail = log.read()[-2000:].decode(errors="replace")  # type: ignore[attr-defined]
    pytest.fail(f"peer at {url} did not become healthy:\n{tail}", pytrace=False)
