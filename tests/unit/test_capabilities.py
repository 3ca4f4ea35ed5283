"""The capability table: detection from what servers say, request and answer adaptation."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from langserve_logprobs.capabilities import (
    CAPABILITIES,
    adapt_logprobs,
    adapt_request,
    kind_from_models,
)


@pytest.mark.parametrize(
    ("owner", "kind"),
    [
        pytest.param("me", "llama-cpp-python", id="llama-cpp-python"),
        pytest.param("llamacpp", "llama-server", id="llama-server"),
        pytest.param("vllm", "vllm", id="vllm"),
        pytest.param("local", "embedded", id="embedded"),
        pytest.param("system", "openai", id="openai"),
        pytest.param("someone", None, id="unknown"),
    ],
)
def test_kind_from_models(owner: str, kind: str | None):
    body = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": owner}]}
    assert kind_from_models(body) == kind


def test_kind_from_models_survives_odd_bodies():
    assert kind_from_models({"data": "nope"}) is None
    assert kind_from_models([]) is None
    assert kind_from_models({"models": []}) is None


SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


def schema_payload(**extra: Any) -> dict[str, Any]:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}
    body = {"response_format": fmt}
    return {"max_completion_tokens": 8, "top_logprobs": 20, "extra_body": body, **extra}


def test_llama_cpp_python_gets_max_tokens_and_json_object_schema():
    payload = schema_payload()
    bound = payload["extra_body"]
    notes = adapt_request(payload, CAPABILITIES["llama-cpp-python"])
    assert payload["max_tokens"] == 8 and "max_completion_tokens" not in payload
    fmt = payload["extra_body"]["response_format"]
    assert fmt == {"type": "json_object", "schema": SCHEMA}
    assert notes == {"constrained": True}
    assert bound["response_format"]["type"] == "json_schema"  # the bound dict is untouched


def test_generic_sends_both_length_fields_and_keeps_json_schema():
    payload = schema_payload()
    adapt_request(payload, CAPABILITIES["generic"])
    assert payload["max_tokens"] == payload["max_completion_tokens"] == 8
    assert payload["extra_body"]["response_format"]["type"] == "json_schema"


def test_no_structured_output_drops_the_format_and_says_unconstrained():
    caps = dataclasses.replace(CAPABILITIES["generic"], structured="none")
    payload = schema_payload()
    notes = adapt_request(payload, caps)
    assert "response_format" not in payload["extra_body"]
    assert notes["constrained"] is False


def test_top_logprobs_clamped_and_said():
    caps = dataclasses.replace(CAPABILITIES["vllm"], max_top_logprobs=5)
    payload = {"top_logprobs": 20}
    assert adapt_request(payload, caps) == {"top_logprobs_clamped_to": 5}
    assert payload["top_logprobs"] == 5


def test_missing_bytes_rebuilt_and_counted():
    tops = [
        {"token": "é", "logprob": -0.1, "bytes": None},
        {"token": "e", "logprob": -2.0, "bytes": [101]},
    ]
    content: list[dict[str, Any]] = [
        {"token": "é", "logprob": -0.1, "bytes": None, "top_logprobs": tops}
    ]
    assert adapt_logprobs(content, None) == 2
    assert content[0]["bytes"] == [195, 169]
    assert content[0]["top_logprobs"][0]["bytes"] == [195, 169]


def test_extra_alternative_dropped():
    """llama-cpp-python adds the sampled token to the N alternatives asked for."""
    pairs = [("a", -0.5), ("b", -0.2), ("c", -3.0)]
    tops: list[dict[str, Any]] = [{"token": t, "logprob": lp, "bytes": [1]} for t, lp in pairs]
    content: list[dict[str, Any]] = [{"token": "c", "logprob": -3.0, "top_logprobs": tops}]
    adapt_logprobs(content, 2)
    assert [t["token"] for t in content[0]["top_logprobs"]] == ["b", "a"]
