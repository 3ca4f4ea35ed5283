"""The Upstream in the app: one request at a time where the upstream takes one, each request
adapted once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import chains.model
from langserve_logprobs import capabilities
from server import create_app
from tests.fake_upstream import Streams
from tests.helpers import fake_upstream_settings, invoke_body

PROMPTS = [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}]
WHOLE = "Hello there friend! Bye"


def test_the_fake_interrupts_a_running_stream_like_llama_cpp_python(fake_upstream: Any) -> None:
    """The fault this guards against, shown on the fake: a second request cuts the first."""
    body = {"model": "interrupting", "messages": [{"role": "user", "content": "hi"}]}
    url = fake_upstream.state.url + "/v1/chat/completions"
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", url, json={**body, "stream": True}) as first:
            lines = first.iter_lines()
            assert next(lines).startswith("data: ")
            with http.stream("POST", url, json={**body, "stream": True}) as second:
                assert second.status_code == 200
                with pytest.raises(httpx.HTTPError):
                    list(lines)


@pytest.mark.parametrize(
    ("kind", "concurrency"),
    [
        pytest.param("llama-cpp-python", None, id="llama-cpp-python-takes-one"),
        pytest.param("generic", 1, id="configured-one"),
    ],
)
def test_a_batch_to_an_upstream_that_takes_one_request_loses_no_item(
    fake_upstream: Any, kind: str, concurrency: int | None
) -> None:
    settings = fake_upstream_settings(
        fake_upstream, upstream_kind=kind, upstream_concurrency=concurrency
    )
    fake_upstream.state.interrupting = Streams()
    body = {"inputs": PROMPTS, "config": {"configurable": {"model": "interrupting"}}}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        batch = client.post("/generate/batch", json=body)
    assert batch.status_code == 200, batch.text
    outputs = batch.json()["output"]
    assert [o.get("completion") for o in outputs] == [WHOLE] * len(PROMPTS), outputs
    assert fake_upstream.state.interrupting.peak == 1


def test_each_request_is_adapted_to_the_upstream_once(
    fake_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def counted(payload: dict[str, Any], caps: Any) -> dict[str, Any]:
        calls.append(payload)
        return adapt(payload, caps)

    adapt = capabilities.adapt_request
    monkeypatch.setattr(chains.model, "adapt_request", counted)
    settings = fake_upstream_settings(fake_upstream, upstream_kind="llama-cpp-python")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        invoked = client.post("/generate/invoke", json=invoke_body("ok", top_logprobs=3))
        assert invoked.status_code == 200 and len(calls) == 1
        # Adapted for llama-cpp-python: the length in max_tokens only.
        assert "max_tokens" in calls[0] and "max_completion_tokens" not in calls[0]
        streamed = client.post("/generate/stream", json=invoke_body("ok"))
        assert streamed.status_code == 200 and len(calls) == 2
