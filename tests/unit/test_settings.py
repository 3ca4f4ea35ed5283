"""Settings: which upstream the chains call."""

from __future__ import annotations

from langserve_logprobs.settings import Settings


def make(**fields: object) -> Settings:
    return Settings(_env_file=None, **fields)  # type: ignore[arg-type]


def test_embedded_model_without_key_or_base_url() -> None:
    assert make().use_local


def test_key_alone_selects_openai() -> None:
    settings = make(openai_api_key="sk-test")
    assert not settings.use_local
    assert settings.upstream_base_url == "https://api.openai.com/v1"


def test_base_url_selects_the_upstream() -> None:
    settings = make(openai_base_url="http://vllm:8000/v1")
    assert not settings.use_local
    assert settings.upstream_base_url == "http://vllm:8000/v1"
