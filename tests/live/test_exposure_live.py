"""Keys on, the real server and the embedded model: the chains reach the model over its
keyed private port, RemoteRunnable and the OpenAI SDK send the key, /metrics counts the
requests and the tokens the model generated."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.runnables import RunnableConfig
from langserve import RemoteRunnable

from langserve_logprobs.settings import Settings
from server import create_app
from tests.servers import free_port, run_server

pytestmark = pytest.mark.live

KEY = "live-key-0123456789abcdef"
EXAMPLES = Path(__file__).resolve().parents[2] / "client_examples"
HEADERS = {"Authorization": f"Bearer {KEY}"}
CONFIG: RunnableConfig = {"configurable": {"max_tokens": 6, "temperature": 0}}


@pytest.fixture(scope="module")
def keyed_app() -> object:
    return create_app(Settings(api_keys=KEY, port=free_port(), _env_file=None))


@pytest.fixture(scope="module")
def keyed_url(keyed_app: object) -> Iterator[str]:
    with run_server(keyed_app) as url:
        yield url


def sample(text: str, line_start: str) -> float:
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    ]
    return sum(values)


def test_keyed_service_counts_requests_and_tokens(keyed_url: str, keyed_app: object) -> None:
    refused = httpx.post(keyed_url + "/generate/invoke", json={"input": {"prompt": "Hi"}})
    assert refused.status_code == 401
    assert httpx.get(keyed_url + "/healthz").status_code == 200

    remote: RemoteRunnable[Any, Any] = RemoteRunnable(keyed_url + "/generate", headers=HEADERS)
    out = remote.invoke({"prompt": "Name a colour."}, config=CONFIG)
    events = list(remote.stream({"prompt": "Name a fruit."}, config=CONFIG))
    assert out["tokens"] and events

    # the OpenAI SDK at /local/v1 sends the service key as its API key
    with openai.OpenAI(base_url=keyed_url + "/local/v1", api_key=KEY, max_retries=0) as sdk:
        reply = sdk.chat.completions.create(
            model="gemma-3-270m", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
        assert reply.choices[0].message.content is not None
    with openai.OpenAI(base_url=keyed_url + "/local/v1", api_key="wrong", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError):
            sdk.models.list()

    text = httpx.get(keyed_url + "/metrics", headers=HEADERS, timeout=10).text
    invoke_ok = 'logprobs_requests_total{method="POST",route="/generate/invoke",status="200"}'
    assert sample(text, invoke_ok) == 1
    assert (
        sample(text, 'logprobs_requests_total{method="POST",route="/generate/invoke",status="401"}')
        == 1
    )
    assert (
        sample(text, 'logprobs_requests_total{method="POST",route="/local/v1/chat/completions"')
        == 1
    )
    tokens = sample(text, 'logprobs_tokens_generated_total{route="/generate/invoke"}')
    assert tokens == len(out["tokens"])
    assert sample(text, 'logprobs_tokens_generated_total{route="/generate/stream"}') >= 1
    assert sample(text, 'logprobs_time_to_first_event_seconds_count{route="/generate/stream"}') == 1
    # the embedded model's own counters: everything it generated for the three calls
    local = sample(text, "logprobs_local_completion_tokens_total")
    assert local >= tokens + 1 + 1
    assert "logprobs_local_busy_slots 0.0" in text
    assert "logprobs_local_queue_length 0.0" in text
    assert "logprobs_local_tokens_per_second" in text


def test_the_private_port_takes_only_its_own_key(keyed_url: str, keyed_app: object) -> None:
    # The chains reach the model through it (the test above); without the per-process key
    # it refuses, the service's own key included.
    assert httpx.get(keyed_url + "/local/v1/models", headers=HEADERS).status_code == 200
    base = keyed_app.state.backend_url  # type: ignore[attr-defined]
    assert base.startswith("http://127.0.0.1:") and keyed_url not in base
    for headers in ({}, HEADERS, {"Authorization": "Bearer local-no-key"}):
        refused = httpx.get(base + "/models", headers=headers)
        assert refused.status_code == 401, headers


@pytest.mark.timeout(400)
def test_js_remote_runnable_sends_the_key(keyed_url: str, tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        if os.environ.get("CI"):
            pytest.fail("node/npm are not installed")
        pytest.skip("node/npm are not installed")
    for name in ("package.json", "package-lock.json", "generate.mjs"):
        shutil.copy(EXAMPLES / "js" / name, tmp_path / name)
    npm_ci = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(npm_ci, cwd=tmp_path, check=True, capture_output=True, timeout=240)

    def run_example(key: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "LOGPROBS_API_KEY"}
        env.update({"LOGPROBS_API_KEY": key} if key else {})
        cmd = [node, "generate.mjs", keyed_url]
        return subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    refused = run_example(None)
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    done = run_example(KEY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "== invoke /generate" in done.stdout and "%" in done.stdout
    assert KEY not in done.stdout + done.stderr
