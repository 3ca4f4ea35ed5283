"""Pure math of /score and of /classify's score method."""

from __future__ import annotations

import math

import pytest

from chains.score_math import (
    continuation_tokens,
    label_scores,
    normalise,
    ranks,
    shared_token_count,
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
    ("tokens", "expected"),
    [
        pytest.param([[b"{", b"pos"], [b"{", b"neg"]], 1, id="shared-wrapper"),
        pytest.param([[b"a"], [b"b"]], 0, id="nothing-shared"),
        pytest.param([[b"x", b"y"], [b"x"]], 1, id="one-is-a-prefix"),
    ],
)
def test_shared_token_count(tokens: list[list[bytes]], expected: int) -> None:
    assert shared_token_count(tokens) == expected


def test_label_scores_skip_the_shared_start_and_keep_multi_token_labels_exact() -> None:
    # Answers: {"answer": "pos"} vs {"answer": "positive"}: the wrapper and 'pos' are shared
    # (same probability under both), then the closing token or 'itive' + closing decide.
    tokens = [[b'{"answer": "', b"pos", b'"}'], [b'{"answer": "', b"pos", b"itive", b'"}']]
    logprobs = [[-0.1, -0.5, -2.0], [-0.1, -0.5, -0.2, -0.01]]
    out = label_scores(tokens, logprobs)
    short, long = math.exp(-2.0), math.exp(-0.21)
    assert out.probabilities == pytest.approx([short / (short + long), long / (short + long)])
    assert out.coverage == pytest.approx(short + long)
    assert out.logprobs == pytest.approx([-2.0, -0.21])


def test_label_scores_coverage_is_the_mass_held() -> None:
    out = label_scores([[b"yes"], [b"no"]], [[math.log(0.3)], [math.log(0.1)]])
    assert out.probabilities == pytest.approx([0.75, 0.25])
    assert out.coverage == pytest.approx(0.4)


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
