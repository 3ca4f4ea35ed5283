"""Unit tests of chains.json_confidence: leaf scanning and byte-aligned leaf confidence.

Regressions covered from other libraries: structured-logprobs gives an emoji field's logprob
to the wrong field and drops a value's own tokens when its last token also holds the next
delimiter (``blue",``); logprobs-parser raises on emoji.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from chains.json_confidence import LeafConfidence, json_leaves, leaf_confidences, min_leaf_prob
from chains.logprobs import TokenLogprob, parse_token, parse_tokens

DATA = Path(__file__).resolve().parent.parent / "data"


def load_tokens(name: str) -> list[TokenLogprob]:
    completion = json.loads((DATA / name).read_text(encoding="utf-8"))
    return parse_tokens(completion["choices"][0]["logprobs"]["content"])


def toks(*pieces: tuple[bytes, float]) -> list[TokenLogprob]:
    """Tokens from (bytes, logprob) pairs; -9999 is the unknown sentinel."""
    return [
        parse_token({"token": raw.decode("utf-8", "replace"), "bytes": list(raw), "logprob": lp})
        for raw, lp in pieces
    ]


def slices(doc: bytes) -> list[tuple[str, bytes]]:
    return [(pointer, doc[start:end]) for pointer, start, end in json_leaves(doc)]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(b'{"a": 1}', [("/a", 6, 7)], id="int"),
        pytest.param(b'"hi"', [("", 1, 4)], id="root-string"),
        pytest.param(b'""', [("", 1, 2)], id="empty-string-is-its-closing-quote"),
        pytest.param(b" [ ] \n", [("", 1, 4)], id="empty-array-with-whitespace"),
        pytest.param(b"{}", [("", 0, 2)], id="empty-object"),
        pytest.param(b'{"": 0}', [("/", 5, 6)], id="empty-key"),
        pytest.param(b"-12", [("", 0, 3)], id="negative-root"),
        pytest.param(b'{"\\ud83d": 1}', [("/\ud83d", 11, 12)], id="lone-surrogate-key"),
    ],
)
def test_json_leaves_offsets(doc: bytes, expected: list[tuple[str, int, int]]) -> None:
    assert json_leaves(doc) == expected


def test_json_leaves_nested_scalars() -> None:
    doc = b'{"a": {"b": [1, -2.5e+3, 0.5E-2, true, false, null, {}, [], [[]]]}, "c": "d"}'
    assert slices(doc) == [
        ("/a/b/0", b"1"),
        ("/a/b/1", b"-2.5e+3"),
        ("/a/b/2", b"0.5E-2"),
        ("/a/b/3", b"true"),
        ("/a/b/4", b"false"),
        ("/a/b/5", b"null"),
        ("/a/b/6", b"{}"),
        ("/a/b/7", b"[]"),
        ("/a/b/8/0", b"[]"),
        ("/c", b'd"'),
    ]


def test_json_leaves_escapes_and_unicode() -> None:
    doc = (
        '{"a\\"b": "x\\\\y", "\\u00e9": 1, "x/y~z": 2, "\\ud83d\\ude00": "\\ud83d\\ude00",'
        ' "k": "héllo 😀", "e": ""}'
    ).encode()
    assert slices(doc) == [
        ('/a"b', b'x\\\\y"'),
        ("/é", b"1"),
        ("/x~1y~0z", b"2"),
        ("/😀", b'\\ud83d\\ude00"'),
        ("/k", 'héllo 😀"'.encode()),
        ("/e", b'"'),
    ]


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"  \n", id="whitespace-only"),
        pytest.param(b"{", id="unclosed-object"),
        pytest.param(b'{"a" 1}', id="missing-colon"),
        pytest.param(b'{"a": 1,}', id="trailing-comma-object"),
        pytest.param(b"[1,]", id="trailing-comma-array"),
        pytest.param(b"[1 2]", id="missing-comma"),
        pytest.param(b"{1: 2}", id="non-string-key"),
        pytest.param(b"{'a': 1}", id="single-quotes"),
        pytest.param(b"01", id="leading-zero"),
        pytest.param(b"1.", id="bare-dot"),
        pytest.param(b".5", id="leading-dot"),
        pytest.param(b"-", id="bare-minus"),
        pytest.param(b"+1", id="plus-sign"),
        pytest.param(b"1e", id="bare-exponent"),
        pytest.param(b"tru", id="truncated-literal"),
        pytest.param(b"NaN", id="nan"),
        pytest.param(b"-Infinity", id="infinity"),
        pytest.param(b'{"a": 1} x', id="trailing-garbage"),
        pytest.param(b"{}{}", id="two-documents"),
        pytest.param(b"[1]]", id="extra-bracket"),
        pytest.param(b'"abc', id="unterminated-string"),
        pytest.param(b'"a\nb"', id="raw-newline-in-string"),
        pytest.param(b'"\\x"', id="bad-escape"),
        pytest.param(b'"\\u12"', id="short-unicode-escape"),
        pytest.param(b'"\\u+123"', id="signed-unicode-escape"),
        pytest.param(b'"\xff"', id="invalid-utf8"),
        pytest.param(b'"\xf0\x9f"', id="truncated-utf8"),
        pytest.param(b"[" * 300 + b"]" * 300, id="too-deep"),
    ],
)
def test_json_leaves_rejects_invalid(doc: bytes) -> None:
    with pytest.raises(ValueError, match="invalid JSON"):
        json_leaves(doc)


def walk(value: Any, pointer: str = "") -> list[tuple[str, Any]]:
    """Leaves of a decoded JSON value, in document order."""
    if isinstance(value, dict) and value:
        return [
            leaf
            for key, child in value.items()
            for leaf in walk(child, f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
        ]
    if isinstance(value, list) and value:
        return [leaf for i, child in enumerate(value) for leaf in walk(child, f"{pointer}/{i}")]
    return [(pointer, value)]


KEYS = ["a", "", "a/b", "m~n", "~1", 'q"uote', "back\\slash", "é", "😀", "tab\t", "ctl\x01"]
STRINGS = ["", "x", "héllo 😀", 'say "hi"', "\\", "\n\t", "\u2028", "/"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice([0, -7, 36, 10**20, 1.5, -2.5e-8, 1e300])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([[], {}])
    if kind in (4, 5):
        return [random_value(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return {key: random_value(rng, depth + 1) for key in rng.sample(KEYS, rng.randint(1, 4))}


@pytest.mark.parametrize("seed", range(5))
def test_json_leaves_match_json_loads(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        value = random_value(rng)
        doc = json.dumps(
            value,
            ensure_ascii=rng.random() < 0.5,
            indent=rng.choice([None, 2]),
            separators=rng.choice([(",", ":"), (", ", ": ")]),
        ).encode()
        leaves = json_leaves(doc)
        decoded = walk(json.loads(doc))
        assert [pointer for pointer, _, _ in leaves] == [pointer for pointer, _ in decoded]
        for (_, start, end), (_, value) in zip(leaves, decoded, strict=True):
            lexeme = doc[start:end]
            if isinstance(value, str):  # the range starts after the opening quote
                assert doc[start - 1 : start] == b'"'
                lexeme = b'"' + lexeme
            assert json.loads(lexeme) == value


def test_leaf_confidences_recorded_answer() -> None:
    """Emoji split over two tokens and a ``blue",`` token, from a recorded completion."""
    tokens = load_tokens("json_answer.json")
    assert [t.token for t in tokens][5:7] == ["bytes: \\xf0\\x9f", "bytes:\\x98\\x80"]
    assert tokens[12].token == 'blue",'
    conf = leaf_confidences(tokens)
    expected = {
        # "Ada", " \xf0\x9f", "\x98\x80", '",': both emoji halves stay with /name.
        "/name": [-0.0431, -0.6931, -0.2231, -0.0513],
        "/color": [-0.3567],  # 'blue",' holds the value, its closing quote and the comma
        "/tags/0": [-0.1625, -0.0202],  # "x", '",'
        "/tags/1": [-0.5108, -0.1054],  # "y", '"],'
        "/age": [-1.2040],
        "/ok": [-0.0834],  # " true"
        "/none": [-0.0488],  # " null"
    }
    assert list(conf) == list(expected)
    for pointer, logprobs in expected.items():
        assert conf[pointer].num_tokens == len(logprobs), pointer
        assert conf[pointer].logprob == pytest.approx(sum(logprobs)), pointer
        assert conf[pointer].prob == pytest.approx(math.exp(sum(logprobs))), pointer
    assert min_leaf_prob(conf) == pytest.approx(math.exp(-1.2040))


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        pytest.param(
            [(b"[", 0.0), (b"1,2", -0.5), (b"]", -0.1)],
            {"/0": (-0.5, 1), "/1": (-0.5, 1)},
            id="token-spans-two-leaves",
        ),
        pytest.param(
            [(b'{"k": "', 0.0), (b"\xf0\x9f", -0.7), (b"\x98\x80", -0.2), (b'"}', -0.1)],
            {"/k": (-1.0, 3)},
            id="split-emoji",
        ),
        pytest.param(
            [(b'{"k": "a\\', -0.1), (b'"b', -0.2), (b'"}', -0.3)],
            {"/k": (-0.6, 3)},
            id="escape-split-over-tokens",
        ),
        pytest.param(
            [(b'{"a": ', 0.0), (b"1", -0.1), (b"", -5.0), (b"2", -0.2), (b"}", 0.0)],
            {"/a": (-0.3, 2)},
            id="zero-byte-token-ignored",
        ),
        pytest.param(
            [(b'{"a": ', 0.0), (b"1", -9999.0), (b"2", -0.2), (b', "b": [] }', -0.4)],
            {"/a": (None, 2), "/b": (-0.4, 1)},
            id="unknown-token-makes-leaf-unknown",
        ),
    ],
)
def test_leaf_confidences_alignment(
    pieces: list[tuple[bytes, float]], expected: dict[str, tuple[float | None, int]]
) -> None:
    conf = leaf_confidences(toks(*pieces))
    assert list(conf) == list(expected)
    for pointer, (logprob, num_tokens) in expected.items():
        leaf = conf[pointer]
        assert leaf.num_tokens == num_tokens
        if logprob is None:
            assert leaf.logprob is None
            assert leaf.prob is None
        else:
            assert leaf.logprob == pytest.approx(logprob)
            assert leaf.prob == pytest.approx(math.exp(logprob))


def test_leaf_confidences_text_offset() -> None:
    tokens = toks(
        (b"Answer:", -0.1), (b" {", -0.2), (b'"a": ', -0.3), (b"true}", -0.4), (b"\n", -0.5)
    )
    with pytest.raises(ValueError, match="invalid JSON"):
        leaf_confidences(tokens)
    conf = leaf_confidences(tokens, text_offset=len(b"Answer:"))
    assert conf == {"/a": LeafConfidence(prob=math.exp(-0.4), logprob=-0.4, num_tokens=1)}
    for offset in (-1, 100):
        with pytest.raises(ValueError, match="text_offset"):
            leaf_confidences(tokens, text_offset=offset)


def test_min_leaf_prob() -> None:
    assert min_leaf_prob({}) is None
    unknown = LeafConfidence(prob=None, logprob=None, num_tokens=1)
    assert min_leaf_prob({"/a": unknown}) is None
    known = LeafConfidence(prob=0.25, logprob=math.log(0.25), num_tokens=2)
    assert min_leaf_prob({"/a": unknown, "/b": known}) == 0.25
