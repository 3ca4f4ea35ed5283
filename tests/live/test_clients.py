"""The client examples, run as a user would against the real server: each exits 0 and
prints tokens with their probabilities."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "client_examples"
PROB = re.compile(r"\d+\.\d+%|0\.\d+")


def run(args: list[str], timeout: float, cwd: Path = ROOT) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr}"
    return done.stdout


def test_seed_howto(live_url: str) -> None:
    out = run([sys.executable, str(EXAMPLES / "seed_howto.py"), live_url], timeout=55)
    assert "'logprob': -" in out and "'top_logprobs': [" in out
    # Snippet 1 prints one list of 5 tokens; snippet 2 prints the accumulated list for each
    # of the first 5 chunks that carry logprobs (the first, role-only chunk may not).
    lists = [line for line in out.splitlines() if line.startswith("[{'token'")]
    assert len(lists) >= 3, out[-2000:]
    assert lists[0].count("'bytes'") >= 5
    streamed = [line.count("'bytes'") for line in lists[1:]]
    assert streamed == sorted(streamed) and streamed[-1] > streamed[0]


@pytest.mark.timeout(180)
def test_remote_runnable(live_url: str) -> None:
    out = run([sys.executable, str(EXAMPLES / "remote_runnable.py"), live_url], timeout=170)
    for section in ("invoke", "batch", "stream", "astream", "astream_events"):
        assert f"== /generate {section}" in out
    assert "logprob" in out and "perplexity" in out
    assert PROB.search(out)
    assert re.search(r"events merged into \d+ tokens", out)
    assert "on_chain_start" in out and "on_chain_end" in out
    for route in ("/classify", "/extract"):
        assert f"== {route} invoke" in out


def test_curl_script(live_url: str) -> None:
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    out = run(["bash", str(EXAMPLES / "curl.sh"), live_url], timeout=55)
    assert "== POST /generate/invoke" in out and "== POST /generate/batch" in out
    assert "event: end" in out or out.rstrip().endswith("end")
    assert "logprob" in out and PROB.search(out)


def test_curl_script_without_jq(live_url: str) -> None:
    out = run(["env", "RAW=1", "bash", str(EXAMPLES / "curl.sh"), live_url], timeout=55)
    assert '"logprob":' in out and "event: data" in out and "event: end" in out


@pytest.mark.timeout(300)
def test_js_remote_runnable(live_url: str, tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        if os.environ.get("CI"):
            pytest.fail("node/npm are not installed")  # CI machines have them
        pytest.skip("node/npm are not installed")
    js = tmp_path / "js"
    js.mkdir()
    for name in ("package.json", "package-lock.json", "generate.mjs"):
        if (EXAMPLES / "js" / name).exists():
            shutil.copy(EXAMPLES / "js" / name, js / name)
    install = "ci" if (js / "package-lock.json").exists() else "install"
    run([npm, install, "--no-audit", "--no-fund", "--loglevel=error"], timeout=240, cwd=js)
    out = run([node, "generate.mjs", live_url], timeout=55, cwd=js)
    assert "== invoke /generate" in out and "== stream /generate" in out
    assert "logprob" in out and "alternatives:" in out
    assert PROB.search(out)
