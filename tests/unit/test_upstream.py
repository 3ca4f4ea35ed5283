"""The Upstream value: one derivation of the client settings, and turns per capability."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pydantic import SecretStr

from langserve_logprobs.capabilities import CAPABILITIES
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import LOCAL_API_KEY, Upstream


def _upstream(kind: str = "llama-cpp-python", concurrency: int | None = None) -> Upstream:
    settings = Settings(
        openai_base_url="http://127.0.0.1:9/v1",
        openai_api_key="sk-test-key",
        upstream_kind=kind,
        upstream_concurrency=concurrency,
        request_timeout=7.5,
        max_retries=3,
        _env_file=None,
    )
    return Upstream.from_settings(settings)


def test_client_options_and_secrets_come_from_one_place() -> None:
    upstream = _upstream()
    assert upstream.client_options() == {
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-test-key",
        "timeout": 7.5,
        "max_retries": 3,
    }
    assert upstream.secrets == ["sk-test-key"]


def test_the_embedded_model_is_called_at_its_own_address_with_its_private_key() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream.for_app(settings, "http://127.0.0.1:5/v1", "private-key")
    assert upstream.base_url == "http://127.0.0.1:5/v1" and upstream.key == "private-key"
    assert upstream.kind == "embedded"
    open_one = Upstream.for_app(settings, "http://127.0.0.1:5/v1", None)
    assert open_one.key == LOCAL_API_KEY and open_one.secrets == []


def test_llama_cpp_python_takes_one_request_at_a_time_and_others_none() -> None:
    assert CAPABILITIES["llama-cpp-python"].max_concurrent == 1
    others = {kind: row.max_concurrent for kind, row in CAPABILITIES.items()}
    del others["llama-cpp-python"]
    assert set(others.values()) == {None}


async def _peak(upstream: Upstream, requests: int) -> tuple[int, list[int]]:
    """Most turns held at once, and the order in which the requests got theirs."""
    held = peak = 0
    order: list[int] = []

    async def request(i: int) -> None:
        nonlocal held, peak
        async with upstream.turn():
            order.append(i)
            held += 1
            peak = max(peak, held)
            await asyncio.sleep(0.01)
            held -= 1

    await asyncio.gather(*(request(i) for i in range(requests)))
    return peak, order


@pytest.mark.parametrize(
    ("kind", "concurrency", "peak"),
    [
        pytest.param("llama-cpp-python", None, 1, id="llama-cpp-python-one-at-a-time"),
        pytest.param("llama-cpp-python", 2, 2, id="configured-two"),
        pytest.param("vllm", None, 4, id="vllm-no-limit"),
        pytest.param("vllm", 1, 1, id="vllm-configured-one"),
    ],
)
async def test_turns_follow_the_capability_or_the_setting(
    kind: str, concurrency: int | None, peak: int
) -> None:
    seen, order = await _peak(_upstream(kind, concurrency), 4)
    assert seen == peak
    assert sorted(order) == [0, 1, 2, 3]
    if peak == 1:
        assert order == [0, 1, 2, 3]  # first come, first served


def test_a_second_event_loop_gets_its_own_gate() -> None:
    upstream = _upstream()
    assert asyncio.run(_peak(upstream, 2))[0] == 1
    assert asyncio.run(_peak(upstream, 2))[0] == 1  # no "bound to a different loop" error


def test_sync_turns_wait_too() -> None:
    upstream = _upstream()
    held = peak = 0
    lock = threading.Lock()

    def request() -> None:
        nonlocal held, peak
        with upstream.sync_turn():
            with lock:
                held += 1
                peak = max(peak, held)
            time.sleep(0.02)
            with lock:
                held -= 1

    threads = [threading.Thread(target=request) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 1


def test_the_key_is_a_secret_str_until_it_is_sent() -> None:
    upstream = _upstream()
    assert isinstance(upstream.api_key, SecretStr)
    assert "sk-test-key" not in repr(upstream)
