"""The llama.cpp build runs on this CPU: portable kernels (no AMX), and a startup self-test
that turns a crash at the first decode into a 503 on /healthz instead of a dead server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
FLAVOR = Path(__file__).resolve().parents[2] / "scripts" / "llama_flavor.sh"
HASWELL = "fpu sse4_2 avx f16c fma bmi2 avx2"
SAPPHIRE_RAPIDS = (
    "fpu avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512vbmi avx_vnni "
    "avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8"
)


@pytest.mark.parametrize(
    ("flags", "flavor"),
    [
        pytest.param(HASWELL, "portable", id="avx2-only"),
        pytest.param(SAPPHIRE_RAPIDS, "avx512", id="amx-cpu-gets-avx512-not-native"),
        pytest.param(SAPPHIRE_RAPIDS.replace("avx512_bf16 ", ""), "portable", id="no-bf16"),
    ],
)
def test_flavor_follows_the_cpu_flags(tmp_path: Path, flags: str, flavor: str) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    done = subprocess.run([FLAVOR, cpuinfo], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == flavor


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
