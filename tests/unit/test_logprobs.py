"""Unit tests of chains.logprobs on recorded OpenAI-shaped logprobs."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from chains.logprobs import (
    SENTINEL_FLOOR,
    Span,
    TokenLogprob,
    compute_stats,
    known_logprob,
    low_confidence_spans,
    merge_stream_events,
    parse_token,
    parse_tokens,
    prob_of,
    text_of,
    token_byte_offsets,
    token_char_offsets,
)

DATA = Path(__file__).resolve().parent.parent / "data"


def load_content(name: str) -> list[dict[str, Any]]:
    """Return ``choices[0].logprobs.content`` of a recorded completion."""
    completion = json.loads((DATA / name).read_text(encoding="utf-8"))
    content: list[dict[str, Any]] = completion["choices"][0]["logprobs"]["content"]
    return content


def tok(raw: bytes, prob: float | None) -> TokenLogprob:
    """A token with the given bytes and probability (``None``: the -9999 sentinel)."""
    logprob = SENTINEL_FLOOR if prob is None else math.log(prob)
    return parse_token(
        {
            "token": raw.decode("utf-8", "replace"),
            "bytes": list(raw),
            "logprob": logprob,
            "top_logprobs": [],
        }
    )


def truncated_entropy(*logprobs: float) -> float:
    """Entropy of the known top-k probabilities plus the leftover mass as one outcome."""
    probs = [math.exp(lp) for lp in logprobs]
    probs.append(max(0.0, 1.0 - sum(probs)))
    return -sum(p * math.log(p) for p in probs if p > 0)


def assert_json_safe(payload: Any) -> None:
    json.dumps(payload, allow_nan=False)  # raises on NaN or inf


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(-9999.0, None, id="openai-vllm-sentinel"),
        pytest.param(-10000.0, None, id="below-sentinel"),
        pytest.param(-3.4e38, None, id="llama-cpp-sentinel"),
        pytest.param(-math.inf, None, id="minus-inf"),
        pytest.param(math.inf, None, id="plus-inf"),
        pytest.param(math.nan, None, id="nan"),
        pytest.param(-9998.5, -9998.5, id="just-above-sentinel"),
        pytest.param(-0.25, -0.25, id="plain"),
        pytest.param(0.0, 0.0, id="zero"),
        pytest.param(1e-9, 0.0, id="positive-noise-clamped"),
        pytest.param(-2, -2.0, id="int"),
    ],
)
def test_known_logprob(raw: float | None, expected: float | None) -> None:
    assert known_logprob(raw) == expected


def test_prob_of() -> None:
    assert prob_of(None) is None
    assert prob_of(-9999.0) is None
    assert prob_of(math.nan) is None
    assert prob_of(0.0) == 1.0
    assert prob_of(math.log(0.25)) == pytest.approx(0.25)


@pytest.mark.parametrize("content", [pytest.param(None, id="none"), pytest.param([], id="empty")])
def test_no_tokens(content: list[dict[str, Any]] | None) -> None:
    tokens = parse_tokens(content)
    assert tokens == []
    assert text_of(tokens) == ""
    assert token_char_offsets(tokens) == []
    assert low_confidence_spans(tokens, 0.5) == []
    stats = compute_stats(tokens)
    assert stats.num_tokens == 0
    assert stats.num_unknown == 0
    assert stats.sum_logprob is None
    assert stats.perplexity is None
    assert stats.min_prob_index is None
    assert stats.mean_entropy is None


def test_empty_recording() -> None:
    assert parse_tokens(load_content("empty.json")) == []


@pytest.mark.parametrize(
    "item",
    [
        pytest.param({"token": "é", "logprob": -0.1}, id="bytes-missing"),
        pytest.param(
            {"token": "é", "logprob": -0.1, "bytes": None, "top_logprobs": None}, id="bytes-none"
        ),
    ],
)
def test_bytes_filled_from_token(item: dict[str, Any]) -> None:
    token = parse_token(item)
    assert token.bytes == [0xC3, 0xA9]
    assert token.top_logprobs == []
    assert token.prob == pytest.approx(math.exp(-0.1))


def test_split_emoji_offsets() -> None:
    tokens = parse_tokens(load_content("split_emoji.json"))
    assert [t.token for t in tokens][2:4] == [" bytes:\\xf0\\x9f", "bytes:\\x98\\x80"]
    assert text_of(tokens) == "Café 😀!"
    assert token_byte_offsets(tokens) == [(0, 3), (3, 5), (5, 8), (8, 10), (10, 11)]
    # Both halves of the emoji map to the emoji's one character (index 5).
    assert token_char_offsets(tokens) == [(0, 3), (3, 4), (4, 6), (5, 6), (6, 7)]


def test_split_emoji_stats() -> None:
    stats = compute_stats(parse_tokens(load_content("split_emoji.json")))
    logprobs = [-0.2231, -0.0513, -0.9163, -0.1054, -0.6931]
    assert stats.num_tokens == 5
    assert stats.num_unknown == 0
    assert stats.sum_logprob == pytest.approx(sum(logprobs))
    assert stats.mean_logprob == pytest.approx(sum(logprobs) / 5)
    assert stats.perplexity == pytest.approx(math.exp(-sum(logprobs) / 5))
    assert stats.min_prob == pytest.approx(math.exp(-0.9163))
    assert stats.min_prob_index == 2


def test_sentinels_become_none() -> None:
    tokens = parse_tokens(load_content("sentinel.json"))
    assert [t.logprob is None for t in tokens] == [False, True, False, True, False]
    assert tokens[1].prob is None
    assert tokens[3].prob is None
    # Best first, unknown last.
    assert [t.token for t in tokens[3].top_logprobs] == [" 41", " forty", " 42"]
    assert [t.logprob for t in tokens[3].top_logprobs] == [-2.5, -3.0, None]
    assert_json_safe([t.model_dump() for t in tokens])


def test_sentinel_stats() -> None:
    stats = compute_stats(parse_tokens(load_content("sentinel.json")))
    known = [-0.0513, -0.2231, -0.0101]
    assert stats.num_tokens == 5
    assert stats.num_unknown == 2
    assert stats.sum_logprob == pytest.approx(sum(known))
    assert stats.mean_logprob == pytest.approx(sum(known) / 3)
    assert stats.perplexity == pytest.approx(math.exp(-sum(known) / 3))
    assert stats.min_prob == pytest.approx(math.exp(-0.2231))
    assert stats.min_prob_index == 2
    # " answer" has only unknown alternatives, so 4 of the 5 tokens have an entropy.
    entropies = [
        truncated_entropy(-0.0513, -3.5066, -4.6052),
        truncated_entropy(-0.2231, -1.7148, -4.6052),
        truncated_entropy(-2.5, -3.0),
        truncated_entropy(-0.0101, -5.1160, -6.2146),
    ]
    assert stats.mean_entropy == pytest.approx(sum(entropies) / 4)
    assert_json_safe(stats.model_dump())


def test_sampled_token_missing_from_top() -> None:
    tokens = parse_tokens(load_content("missing_top.json"))
    purple = tokens[3]
    assert purple.token == " purple"
    assert purple.token not in [t.token for t in purple.top_logprobs]
    assert purple.prob == pytest.approx(math.exp(-6.8124))
    stats = compute_stats(tokens)
    assert stats.min_prob_index == 3
    assert stats.min_prob == pytest.approx(math.exp(-6.8124))
    entropies = [
        truncated_entropy(-0.0202, -4.1997, -5.2983),
        truncated_entropy(-0.0101, -5.1160, -6.2146),
        truncated_entropy(-0.0305, -3.9120, -4.6052),
        truncated_entropy(-0.0202, -4.6052, -5.116),  # the alternatives, not " purple"
        truncated_entropy(-0.3567, -1.6094, -2.9957),
    ]
    assert stats.mean_entropy == pytest.approx(sum(entropies) / 5)
    assert low_confidence_spans(tokens, 0.5) == [
        Span(start=11, end=18, word="purple.", min_prob=purple.prob)
    ]


def test_entropy_of_top_mass_above_one_is_finite() -> None:
    # Rounded top probabilities can add up to slightly more than 1: no leftover outcome.
    token = parse_token(
        {
            "token": "a",
            "logprob": 0.0,
            "top_logprobs": [{"token": "a", "logprob": 0.0}, {"token": "b", "logprob": -17.0}],
        }
    )
    stats = compute_stats([token])
    assert stats.mean_entropy == pytest.approx(-math.exp(-17.0) * -17.0)


def test_stats_never_overflow() -> None:
    tokens = [tok(b"x", None) for _ in range(2)]
    tokens += [parse_token({"token": "y", "logprob": -9000.0}) for _ in range(2)]
    stats = compute_stats(tokens)
    assert stats.sum_logprob == -18000.0
    assert stats.perplexity is None  # exp(9000) does not fit in a float
    assert stats.min_prob == 0.0
    assert_json_safe(stats.model_dump())


def test_non_finite_inputs_never_reach_outputs() -> None:
    token = parse_token(
        {
            "token": "a",
            "logprob": math.nan,
            "top_logprobs": [{"token": "b", "logprob": -math.inf}, {"token": "c", "logprob": -0.5}],
        }
    )
    assert token.logprob is None
    assert [t.token for t in token.top_logprobs] == ["c", "b"]
    assert token.top_logprobs[1].prob is None
    assert_json_safe(token.model_dump())
    assert_json_safe(compute_stats([token]).model_dump())


def test_zero_byte_token_gets_empty_range() -> None:
    tokens = [tok(b"a", 0.9), tok(b"", 0.9), tok(b"b", 0.9)]
    assert token_byte_offsets(tokens) == [(0, 1), (1, 1), (1, 2)]
    assert token_char_offsets(tokens) == [(0, 1), (1, 1), (1, 2)]


MULTIBYTE_TOKENS = [
    (b"h\xc3\xa9", 0.9),
    (b"llo", 0.3),
    (b" \xf0\x9f", 0.95),
    (b"\x98\x80", 0.1),
    (b" w", 0.9),
    (b"\xc3", 0.4),
    (b"\xb6rld", 0.9),
    (b" ok", None),
]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        pytest.param(
            0.5,
            [(0, 5, "héllo", 0.3), (6, 7, "😀", 0.1), (8, 13, "wörld", 0.4)],
            id="split-emoji-and-split-umlaut",
        ),
        pytest.param(0.35, [(0, 5, "héllo", 0.3), (6, 7, "😀", 0.1)], id="adjacent-not-merged"),
        pytest.param(0.1, [], id="strictly-below"),
        pytest.param(
            1.0,
            [(0, 5, "héllo", 0.3), (6, 7, "😀", 0.1), (8, 13, "wörld", 0.4)],
            id="unknown-word-never-flagged",
        ),
    ],
)
def test_low_confidence_spans(
    threshold: float, expected: list[tuple[int, int, str, float]]
) -> None:
    tokens = [tok(raw, prob) for raw, prob in MULTIBYTE_TOKENS]
    text = text_of(tokens)
    assert text == "héllo 😀 wörld ok"
    spans = low_confidence_spans(tokens, threshold)
    assert [(s.start, s.end, s.word) for s in spans] == [e[:3] for e in expected]
    assert [s.min_prob for s in spans] == pytest.approx([e[3] for e in expected])
    assert all(text[s.start : s.end] == s.word for s in spans)


def test_char_offsets_follow_python_replacement_decoding() -> None:
    # One token per byte over messy bytes: the ranges must step through the characters that
    # bytes.decode("utf-8", "replace") produces (a maximal invalid subpart is one U+FFFD).
    pieces = [
        b"a",
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xf0\x9f\x98\x80",
        b"\xc3",
        b"\xe2\x82",
        b"\xf0\x9f\x98",
        b"\xff",
        b"\x80",
        b"\xed\xa0\x80",
        b"\xe0\x80",
        b"\xf4\x90",
        b"\xc0\xaf",
        b" ",
    ]
    rng = random.Random(20240501)
    for _ in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        tokens = [tok(bytes([b]), 0.5) for b in data]
        text = text_of(tokens)
        offsets = token_char_offsets(tokens)
        assert (offsets[-1][1] if offsets else 0) == len(text)
        owners = [start for start, _ in offsets]
        assert owners == sorted(owners)
        for index, char in enumerate(text):
            chunk = bytes(b for b, owner in zip(data, owners, strict=True) if owner == index)
            assert chunk.decode("utf-8", "replace") == char


def test_merge_stream_events() -> None:
    first_tokens = [{"token": "Hel"}]
    events: list[dict[str, Any]] = [
        {"completion": "Hel", "tokens": first_tokens, "stats": None},
        {"completion": "lo", "tokens": [{"token": "lo"}], "finish_reason": None},
        {"stats": {"num_tokens": 2}, "completion": None},
        {"finish_reason": "stop", "stats": None},
    ]
    assert merge_stream_events(events) == {
        "completion": "Hello",
        "tokens": [{"token": "Hel"}, {"token": "lo"}],
        "stats": {"num_tokens": 2},
        "finish_reason": "stop",
    }
    assert first_tokens == [{"token": "Hel"}]  # inputs are not mutated
    assert merge_stream_events([]) == {}
    assert merge_stream_events([{"error": None}]) == {"error": None}
