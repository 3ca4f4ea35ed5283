"""Settings: which upstream the chains call, and the learned listen address."""

from __future__ import annotations

import pytest

from langserve_logprobs.settings import Settings


def make(**fields: object) -> Settings:
    return Settings(_env_file=None, **fields)  # type: ignore[arg-type]


def test_embedded_model_without_key_or_base_url() -> None:
    settings = make(port=8123)
    assert settings.use_local
    assert settings.upstream_base_url == "http://127.0.0.1:8123/local/v1"


def test_base_url_selects_the_upstream() -> None:
    settings = make(openai_base_url="http://vllm:8000/v1")
    assert not settings.use_local
    assert settings.upstream_base_url == "http://vllm:8000/v1"


@pytest.mark.parametrize(
    ("host", "port", "learned"),
    [
        pytest.param("127.0.0.1", 9000, ("127.0.0.1", 9000), id="loopback"),
        pytest.param("0.0.0.0", 9000, ("127.0.0.1", 9000), id="wildcard-becomes-loopback"),
        pytest.param("::", 9000, ("::1", 9000), id="ipv6-wildcard"),
        pytest.param("10.1.2.3", 80, ("10.1.2.3", 80), id="pod-address"),
        pytest.param("testserver", 80, None, id="in-process-test-client"),
        pytest.param("/tmp/app.sock", None, None, id="unix-socket"),
    ],
)
def test_learn_listen_address(host: str, port: int | None, learned: object) -> None:
    settings = make()
    assert settings.listen_address is None
    settings.learn_listen_address(host, port)
    assert settings.listen_address == learned
