"""/chat and /generate against the real embedded model over a real uvicorn server."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from langchain_core.runnables import RunnableConfig
from langserve import RemoteRunnable

from chains.logprobs import merge_stream_events
from langserve_logprobs.settings import Settings
from server import create_app
from tests.servers import free_port, run_server, stream_then_drop

pytestmark = pytest.mark.live

GREEDY: RunnableConfig = {"configurable": {"temperature": 0.0, "max_tokens": 24, "top_logprobs": 3}}


def _check_entry(entry: dict[str, Any]) -> None:
    assert set(entry) >= {"token", "logprob", "bytes", "top_logprobs"}
    assert isinstance(entry["logprob"], float)
    assert entry["logprob"] <= 0.0
    assert bytes(entry["bytes"]).decode("utf-8", "replace")


def test_howto_invoke_through_remote_runnable(live_url: str):
    llm: RemoteRunnable[Any, Any] = RemoteRunnable(live_url + "/chat")
    msg = llm.invoke(("human", "how are you today"))
    content = msg.response_metadata["logprobs"]["content"][:5]
    assert len(content) == 5
    for entry in content:
        _check_entry(entry)


def test_howto_stream_chunks_sum_their_logprobs(live_url: str):
    llm: RemoteRunnable[Any, Any] = RemoteRunnable(live_url + "/chat")
    ct = 0
    full = None
    lengths = []
    for chunk in llm.stream(("human", "how are you today")):
        if ct < 5:
            full = chunk if full is None else full + chunk
            if "logprobs" in full.response_metadata:
                lengths.append(len(full.response_metadata["logprobs"]["content"]))
        else:
            break
        ct += 1
    assert lengths
    assert lengths == sorted(lengths)
    assert lengths[-1] >= 3


def test_generate_invoke_is_consistent(live_url: str):
    remote: RemoteRunnable[Any, Any] = RemoteRunnable(live_url + "/generate")
    out = remote.invoke({"prompt": "Name a color."}, GREEDY)
    tokens = out["tokens"]
    assert tokens
    assert b"".join(bytes(t["bytes"]) for t in tokens).decode() == out["completion"]
    for token in tokens:
        assert token["top_logprobs"][0]["token"] == token["token"]  # greedy: argmax chosen
        assert token["top_logprobs"][0]["logprob"] == pytest.approx(token["logprob"])
        assert [a["logprob"] for a in token["top_logprobs"]] == sorted(
            (a["logprob"] for a in token["top_logprobs"]), reverse=True
        )
    stats = out["stats"]
    assert stats["num_tokens"] == len(tokens)
    assert stats["sum_logprob"] == pytest.approx(sum(t["logprob"] for t in tokens))
    assert out["finish_reason"] in ("stop", "length")
    assert out["model"]


def test_generate_stream_merges_to_invoke(live_url: str):
    runnable: RemoteRunnable[Any, Any] = RemoteRunnable(live_url + "/generate")
    invoked = runnable.invoke({"prompt": "Write one short sentence about the sea."}, GREEDY)
    events = list(runnable.stream({"prompt": "Write one short sentence about the sea."}, GREEDY))
    assert len(events) > 2
    assert events[-1]["stats"] is not None
    assert all(e["stats"] is None for e in events[:-1])
    assert merge_stream_events(events) == invoked


def test_generate_batch(live_url: str):
    remote: RemoteRunnable[Any, Any] = RemoteRunnable(live_url + "/generate")
    outs = remote.batch([{"prompt": "Say yes."}, {"prompt": "Say no."}], GREEDY)
    assert len(outs) == 2
    assert all(o["tokens"] and o["stats"]["num_tokens"] == len(o["tokens"]) for o in outs)


def test_batch_item_past_the_context_window_fails_alone(live_url: str):
    huge = "word " * 6000  # about 6000 tokens, past the 4096-token window
    response = httpx.post(
        live_url + "/generate/batch",
        json={
            "inputs": [{"prompt": "Say yes."}, {"prompt": huge}, {"prompt": "Say no."}],
            "config": GREEDY,
        },
        timeout=120,
    )
    assert response.status_code == 200
    first, bad, last = response.json()["output"]
    assert first["tokens"] and last["tokens"]
    assert bad["error"]["status_code"] == 400
    assert bad["error"]["type"] == "context_length_exceeded"


async def test_astream_and_astream_events(live_url: str):
    runnable: RemoteRunnable[Any, Any] = RemoteRunnable(live_url + "/generate")
    events = [e async for e in runnable.astream({"prompt": "Count to three."}, GREEDY)]
    assert merge_stream_events(events)["stats"]["num_tokens"] > 0
    kinds = []
    async for event in runnable.astream_events({"prompt": "Count to three."}, GREEDY, version="v2"):
        kinds.append(event["event"])
    assert "on_chat_model_stream" in kinds
    assert "on_chain_end" in kinds


def test_first_event_arrives_before_generation_ends(live_url: str):
    body = {
        "input": {"prompt": "Tell a long story about a dragon."},
        "config": {"configurable": {"temperature": 0.0, "max_tokens": 64}},
    }
    start = time.monotonic()
    stamps = []
    with httpx.stream("POST", live_url + "/generate/stream", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"tokens"' in line:
                stamps.append(time.monotonic() - start)
    assert len(stamps) > 10
    assert stamps[0] < 0.5 * stamps[-1]


def test_openai_sdk_against_local_mount(live_url: str):
    client = openai.OpenAI(base_url=live_url + "/local/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "Hi!"}],
        max_tokens=8,
        logprobs=True,
        top_logprobs=2,
        temperature=0,
    )
    assert completion.choices[0].logprobs is not None
    content = completion.choices[0].logprobs.content
    assert content is not None
    assert content and all(len(c.top_logprobs) == 2 for c in content)
    text = b"".join(bytes(c.bytes or []) for c in content).decode()
    assert text == completion.choices[0].message.content
    stream = client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "Hi!"}],
        max_tokens=8,
        logprobs=True,
        top_logprobs=2,
        temperature=0,
        stream=True,
    )
    streamed = [
        c.choices[0].logprobs.content for c in stream if c.choices and c.choices[0].logprobs
    ]
    assert sum(len(c or []) for c in streamed) == len(content)


def cancelled_generations(url: str) -> list[dict[str, Any]]:
    """The embedded model's generations that ended ``cancelled``, oldest first."""
    history = httpx.get(url + "/local/v1/generations", timeout=10).json()["data"]
    return [g for g in history if g["finish_reason"] == "cancelled"]


def assert_model_freed(url: str, left_at: float, before: list[Any], max_tokens: int) -> None:
    """After a client left at ``left_at``: a short request answers within 5 s, and the
    model reports one more cancelled generation, of fewer than ``max_tokens`` tokens."""
    quick = httpx.post(
        url + "/generate/invoke",
        json={
            "input": {"prompt": "Say hi."},
            "config": {"configurable": {"temperature": 0.0, "max_tokens": 4}},
        },
        timeout=60,
    )
    assert quick.status_code == 200
    assert time.monotonic() - left_at < 5.0
    seen = {g["id"] for g in before}
    new = [g for g in cancelled_generations(url) if g["id"] not in seen]
    assert len(new) == 1, json.dumps(new)
    assert new[0]["completion_tokens"] < max_tokens


def test_disconnect_cancels_generation(live_url: str):
    body = {
        "input": {"prompt": "Write a very long story about the history of the world."},
        "config": {"configurable": {"temperature": 0.0, "max_tokens": 1000}},
    }
    before = cancelled_generations(live_url)
    dropped_at = stream_then_drop(live_url + "/generate/stream", body, events=3)
    assert_model_freed(live_url, dropped_at, before, max_tokens=100)


def test_client_giving_up_on_invoke_stops_the_model(live_url: str):
    # Greedy, this prompt makes the 270M model loop without ever stopping on its own.
    body = {
        "input": {"prompt": "Write a very long story about the history of the world."},
        "config": {"configurable": {"temperature": 0.0, "max_tokens": 1000}},
    }
    before = cancelled_generations(live_url)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live_url + "/generate/invoke", json=body, timeout=2.0)
    # About 2 s of generation at 25-50 tok/s, not 1000 tokens.
    assert_model_freed(live_url, time.monotonic(), before, max_tokens=200)


def test_served_on_another_port_than_settings_say():
    # `uvicorn --factory server:create_app --port 9000` with PORT left at its default:
    # the chains reach the embedded model at its own address, whatever the main port.
    settings = Settings(port=free_port(), host="127.0.0.1", _env_file=None)
    actual = free_port()
    with run_server(create_app(settings), port=actual) as url:
        assert settings.port != actual
        response = httpx.post(
            url + "/generate/invoke",
            json={"input": {"prompt": "Say hi."}, "config": GREEDY},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        assert response.json()["output"]["tokens"]
