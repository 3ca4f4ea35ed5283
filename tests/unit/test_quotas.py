"""Per-client limits (a token bucket and a concurrency count) and reading the API keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from langserve_logprobs.auth import KeyChecker, key_id, load_api_keys
from langserve_logprobs.quotas import ClientLimitError, ClientLimits
from langserve_logprobs.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_refills_evenly_and_says_when() -> None:
    clock = Clock()
    limits = ClientLimits(None, per_minute=2, clock=clock)
    for _ in range(2):
        limits.acquire("a")
        limits.release("a")
    with pytest.raises(ClientLimitError) as refused:
        limits.acquire("a")
    assert refused.value.reason == "rate"
    assert refused.value.headers() == {"Retry-After": "30"}  # 2 a minute: one every 30 s
    limits.acquire("b")  # another client has its own bucket
    clock.now += 29.0
    with pytest.raises(ClientLimitError) as again:
        limits.acquire("a")
    assert again.value.headers() == {"Retry-After": "1"}
    clock.now += 1.0
    limits.acquire("a")


def test_concurrency_counts_requests_in_flight() -> None:
    limits = ClientLimits(max_concurrent=2, per_minute=None)
    limits.acquire("a")
    limits.acquire("a")
    with pytest.raises(ClientLimitError) as refused:
        limits.acquire("a")
    assert refused.value.reason == "concurrency"
    assert refused.value.status_code == 429
    assert refused.value.retry_after == "1"
    limits.release("a")
    limits.acquire("a")


def test_refused_for_concurrency_spends_no_rate_token() -> None:
    limits = ClientLimits(max_concurrent=1, per_minute=2, clock=Clock())
    limits.acquire("a")
    for _ in range(3):
        with pytest.raises(ClientLimitError, match="in flight"):
            limits.acquire("a")
    limits.release("a")
    limits.acquire("a")  # the second of two tokens


def test_keys_from_a_comma_list_or_a_file(tmp_path: Path) -> None:
    assert load_api_keys(Settings(_env_file=None)) == []
    listed = Settings(api_keys=" k1, k2 ,,", _env_file=None)
    assert load_api_keys(listed) == ["k1", "k2"]
    keyfile = tmp_path / "keys"
    keyfile.write_text("# team a\nalpha\n\n beta \n", encoding="utf-8")
    assert load_api_keys(Settings(api_keys=str(keyfile), _env_file=None)) == ["alpha", "beta"]


@pytest.mark.parametrize(
    "value", [pytest.param("/no/such/file", id="missing-file"), pytest.param(" , ", id="empty")]
)
def test_bad_key_settings_fail_at_startup(value: str) -> None:
    with pytest.raises(ValueError, match="LOGPROBS_API_KEYS"):
        load_api_keys(Settings(api_keys=value, _env_file=None))


def test_key_checker_names_the_key_by_id_only() -> None:
    checker = KeyChecker(["first-key", "second-key"])
    assert checker.check_key("second-key") == key_id("second-key")
    assert checker.check_key("second-ke") is None
    assert checker.check_key("") is None
    session = checker.session_for(key_id("first-key"))
    assert "first-key" not in session
    assert checker.check_session(session) == key_id("first-key")
    tampered = session[:-1] + ("1" if session.endswith("0") else "0")
    assert checker.check_session(tampered) is None
    assert len(key_id("first-key")) == 12
