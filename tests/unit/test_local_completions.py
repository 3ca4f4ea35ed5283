"""Pure helpers of completions on the local model: which requests score and which generate,
sampling parameters, the legacy logprobs shape, BOS handling. No model, no app."""

from __future__ import annotations

import pytest

from local_llm.completions import is_scoring
from local_llm.completions_generate import (
    DEFAULT_MAX_TOKENS,
    check_generation,
    legacy_logprobs,
    sampling_params,
)
from local_llm.completions_protocol import CompletionRequest
from local_llm.engine import drop_second_bos
from local_llm.errors import BadRequestError, ContextLengthError
from local_llm.protocol import ChatCompletionTokenLogprob, ChatCompletionTopLogprob


def _request(**fields: object) -> CompletionRequest:
    return CompletionRequest.model_validate({"prompt": "Hi", **fields})


@pytest.mark.parametrize(
    ("fields", "scoring"),
    [
        pytest.param({"echo": True, "max_tokens": 0}, True, id="echo-0"),
        pytest.param({"echo": True, "max_tokens": 1}, True, id="echo-1-vllm-clients"),
        pytest.param({"echo": True}, True, id="echo-unset"),
        pytest.param({"prompt_logprobs": 2}, True, id="prompt-logprobs"),
        pytest.param({"echo": True, "max_tokens": 5}, False, id="echo-and-generate"),
        pytest.param({"max_tokens": 5}, False, id="generate"),
        pytest.param({}, False, id="default-generates-16"),
    ],
)
def test_scoring_or_generation(fields: dict[str, object], scoring: bool) -> None:
    assert is_scoring(_request(**fields)) is scoring


def test_sampling_params_default_and_clip() -> None:
    params = sampling_params(_request(stop=["\n", ""], temperature=0, logprobs=2), 10, 100)
    assert params.max_tokens == DEFAULT_MAX_TOKENS
    assert params.stop == ("\n",) and params.temperature == 0 and params.top_logprobs == 2
    assert sampling_params(_request(max_tokens=500), 90, 100).max_tokens == 10
    with pytest.raises(ContextLengthError):
        sampling_params(_request(), 100, 100)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"n": 2}, id="n"),
        pytest.param({"max_tokens": 4, "prompt_logprobs": 1}, id="prompt-logprobs"),
        pytest.param({"echo": True, "max_tokens": 4, "stream": True}, id="echo-stream"),
    ],
)
def test_generation_refuses(fields: dict[str, object]) -> None:
    with pytest.raises(BadRequestError):
        check_generation(_request(**fields))


def _entry(token: str, data: bytes, logprob: float) -> ChatCompletionTokenLogprob:
    top = [ChatCompletionTopLogprob(token=token, logprob=logprob, bytes=list(data))]
    return ChatCompletionTokenLogprob(
        token=token, logprob=logprob, bytes=list(data), top_logprobs=top
    )


def test_legacy_logprobs_offsets_count_characters_and_split_bytes() -> None:
    emoji = "🙂".encode()
    entries = [
        _entry("Hé", "Hé".encode(), -0.5),
        _entry("bytes:\\xf0\\x9f", emoji[:2], -1.0),
        _entry("bytes:\\x99\\x82", emoji[2:], -0.1),
        _entry("!", b"!", -2.0),
    ]
    legacy = legacy_logprobs(entries, offset=3)
    assert legacy.tokens == [e.token for e in entries]
    assert legacy.token_logprobs == [-0.5, -1.0, -0.1, -2.0]
    assert legacy.top_logprobs[0] == {"Hé": -0.5}
    assert legacy.token_bytes[1] == list(emoji[:2])
    # Offsets in characters of the choice's text: both halves of the emoji start where it does.
    assert legacy.text_offset == [3, 5, 5, 6]


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        pytest.param([2, 2, 5], [2, 5], id="written-bos"),
        pytest.param([2, 5], [2, 5], id="one-bos"),
        pytest.param([2], [2], id="only-bos"),
        pytest.param([5, 2, 2], [5, 2, 2], id="not-leading"),
    ],
)
def test_drop_second_bos(tokens: list[int], expected: list[int]) -> None:
    assert drop_second_bos(tokens, bos=2) == expected
