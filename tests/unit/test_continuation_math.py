"""Pure math of scored continuations (/score, the decision engine)."""

from __future__ import annotations

import math

import pytest

from chains.continuation_math import (
    continuation_tokens,
    normalise,
    ranks,
    token_bytes_of,
    totals,
)


def test_totals_of_a_continuation() -> None:
    out = totals([-1.0, -2.0, -3.0], n_bytes=12)
    assert out.sum_logprob == -6.0
    assert out.mean_per_token == -2.0
    assert out.mean_per_byte == -0.5
    assert out.perplexity == pytest.approx(math.exp(2.0))


def test_totals_of_nothing_have_no_means() -> None:
    out = totals([], n_bytes=0)
    assert out.sum_logprob == 0.0
    assert out.mean_per_token is None and out.mean_per_byte is None and out.perplexity is None


def test_normalise_is_stable_far_below_zero() -> None:
    probs, log_mass = normalise([-1000.0, -1000.0 - math.log(3.0)])
    assert probs == pytest.approx([0.75, 0.25])
    assert log_mass == pytest.approx(-1000.0 + math.log(4.0 / 3.0))


def test_ranks_share_ties() -> None:
    assert ranks([-1.0, -3.0, -1.0, -0.5]) == [2, 4, 2, 1]


@pytest.mark.parametrize(
    ("pieces", "prompt", "start", "expected"),
    [
        pytest.param([b"<bos>", b"Hi", b" there"], b"Hi there", 2, range(2, 3), id="after-bos"),
        pytest.param([b"Q", b":", b" yes", b"!"], b"Q: yes", 2, range(2, 3), id="generated-tail"),
        pytest.param([b"Q", b": y", b"es"], b"Q: yes", 3, range(1, 3), id="straddling-token"),
        pytest.param(
            [b"A", "☕".encode()[:2], "☕".encode()[2:]],
            "A☕".encode(),
            1,
            range(1, 3),
            id="split-character",
        ),
        pytest.param([b"A", b"B"], b"AB", 2, range(0), id="empty-continuation"),
        pytest.param([b"Hello"], b"Bye", 0, None, id="not-echoed"),
    ],
)
def test_continuation_tokens(
    pieces: list[bytes], prompt: bytes, start: int, expected: range | None
) -> None:
    assert continuation_tokens(pieces, prompt, start) == expected


def test_token_bytes_of_decodes_byte_escapes() -> None:
    assert token_bytes_of("bytes:\\xe2\\x98") == b"\xe2\x98"
    assert token_bytes_of(" café") == " café".encode()
    assert token_bytes_of("bytes:") == b"bytes:"
