"""The llama.cpp build runs on this CPU: portable kernels (no AMX), and a startup self-test
that turns a crash at the first decode into a 503 on /healthz instead of a dead server."""

from __future__ import annotations

import sys

import httpx
import pytest

import local_llm.engine
from langserve_logprobs.settings import Settings
from local_llm.model_file import default_model_path
from local_llm.selftest import run_selftest, selftest_command
from server import create_app
from tests.servers import free_port, run_server

# A child that really dies of SIGSEGV, as a native build does in ggml's AMX matmul.
SEGFAULT = [sys.executable, "-c", "import ctypes; ctypes.string_at(0)"]

pytestmark = pytest.mark.live


def test_installed_build_has_no_amx() -> None:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "AMX" not in info, info
    assert "AVX2 = 1" in info, info


def test_selftest_passes_on_this_build() -> None:
    assert run_selftest(selftest_command(str(default_model_path()), 1)) is None


def test_selftest_names_a_crash() -> None:
    reason = run_selftest(SEGFAULT)
    assert reason is not None
    assert "SIGSEGV" in reason and "portable" in reason


def test_selftest_reports_an_error_exit() -> None:
    reason = run_selftest([sys.executable, "-c", "raise SystemExit('no such model file')"])
    assert reason is not None and "exit 1" in reason and "no such model file" in reason


def test_server_stays_up_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_llm.engine, "selftest_command", lambda *_: SEGFAULT)
    settings = Settings(port=free_port(), host="127.0.0.1", _env_file=None)
    with run_server(create_app(settings), port=settings.port, health="/docs") as url:
        health = httpx.get(url + "/healthz", timeout=5)
        assert health.status_code == 503
        assert health.json()["status"] == "error" and "SIGSEGV" in health.json()["reason"]
        local = httpx.get(url + "/local/health", timeout=5)
        assert local.status_code == 503 and "SIGSEGV" in local.json()["reason"]
        out = httpx.post(url + "/generate/invoke", json={"input": {"prompt": "Hi"}}, timeout=30)
        assert out.status_code == 503, out.text
        assert "self-test" in out.json()["error"]["message"]
        # Still serving after the failed request.
        assert httpx.get(url + "/healthz", timeout=5).status_code == 503
