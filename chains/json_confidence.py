"""Per-leaf confidence of a JSON answer, aligned to its tokens by bytes.

Each leaf of the JSON document (string, number, true/false/null, empty array or object)
gets the summed logprob of exactly the tokens whose bytes overlap it. Alignment is by
byte offsets in the joined token bytes, never by token string lengths, so an emoji split
over two tokens gives both tokens to its value, and a token such as ``blue",`` that ends
one value and holds the next delimiter still counts for that value.

Caveats: a token spanning two leaves counts for both. A string leaf covers its content
and its closing quote (the decision to end the string), not its opening quote. With
duplicate object keys both leaves are scanned and the last one wins in the mapping.
"""

from __future__ import annotations

import itertools
import math
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import NoReturn

from pydantic import BaseModel, Field

from chains.logprobs import TokenLogprob, joined_bytes, token_byte_offsets

_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WHITESPACE = frozenset(b" \t\n\r")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord(k): v for k, v in zip('"\\/bfnrt', '"\\/\b\f\n\r\t', strict=True)}
_MAX_DEPTH = 200


class LeafConfidence(BaseModel):
    """Confidence of one JSON leaf, from the tokens that wrote it."""

    prob: float | None = Field(description="exp(logprob); null if any of its tokens is unknown.")
    logprob: float | None = Field(
        description="Summed logprob of the tokens overlapping the leaf; null if one is unknown."
    )
    num_tokens: int = Field(description="Number of tokens whose bytes overlap the leaf.")


class _Scanner:
    """Strict recursive-descent JSON scanner that records leaf byte ranges."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.leaves: list[tuple[str, int, int]] = []

    def fail(self, what: str) -> NoReturn:
        msg = f"invalid JSON at byte {self.pos}: {what}"
        raise ValueError(msg)

    def peek(self) -> int | None:
        self.skip_ws()
        return self.data[self.pos] if self.pos < len(self.data) else None

    def skip_ws(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] in _WHITESPACE:
            self.pos += 1

    def document(self) -> list[tuple[str, int, int]]:
        self.value("", 0)
        if self.peek() is not None:
            self.fail("trailing data after the document")
        return self.leaves

    def value(self, pointer: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.fail(f"nested deeper than {_MAX_DEPTH}")
        char = self.peek()
        start = self.pos
        if char == ord("{") or char == ord("["):
            self.container(pointer, depth, close=ord("}") if char == ord("{") else ord("]"))
            return
        if char == ord('"'):
            self.string()
            self.leaves.append((pointer, start + 1, self.pos))
            return
        match = _NUMBER.match(self.data, self.pos)
        if match:
            self.pos = match.end()
        else:
            words = (b"true", b"false", b"null")
            literal = next((w for w in words if self.data.startswith(w, self.pos)), None)
            if literal is None:
                self.fail("expected a value")
            self.pos += len(literal)
        self.leaves.append((pointer, start, self.pos))

    def container(self, pointer: str, depth: int, close: int) -> None:
        start = self.pos
        self.pos += 1
        if self.peek() == close:
            self.pos += 1
            self.leaves.append((pointer, start, self.pos))
            return
        for index in itertools.count():
            if close == ord("]"):
                child = str(index)
            else:
                if self.peek() != ord('"'):
                    self.fail("expected an object key")
                child = self.string().replace("~", "~0").replace("/", "~1")
                if self.peek() != ord(":"):
                    self.fail("expected ':'")
                self.pos += 1
            self.value(f"{pointer}/{child}", depth + 1)
            following = self.peek()
            self.pos += 1
            if following == close:
                return
            if following != ord(","):
                self.pos -= 1
                self.fail(f"expected ',' or {chr(close)!r}")

    def string(self) -> str:
        """Consume a string starting at its opening quote and return it decoded."""
        data = self.data
        self.pos += 1
        parts: list[str] = []
        run = self.pos
        while True:
            if self.pos >= len(data):
                self.fail("unterminated string")
            byte = data[self.pos]
            if byte == ord('"') or byte == ord("\\"):
                try:
                    parts.append(data[run : self.pos].decode("utf-8"))
                except UnicodeDecodeError as exc:
                    self.fail(f"invalid UTF-8 in string ({exc.reason})")
                if byte == ord('"'):
                    self.pos += 1
                    return "".join(parts)
                parts.append(self.escape())
                run = self.pos
            elif byte < 0x20:
                self.fail("control character in string")
            else:
                self.pos += 1

    def escape(self) -> str:
        """Consume one escape sequence at the backslash and return what it stands for."""
        kind = self.data[self.pos + 1] if self.pos + 1 < len(self.data) else -1
        if kind in _ESCAPES:
            self.pos += 2
            return _ESCAPES[kind]
        if kind != ord("u"):
            self.fail("invalid escape")
        code = self.hex4(self.pos + 2)
        self.pos += 6
        if 0xD800 <= code <= 0xDBFF and self.data.startswith(b"\\u", self.pos):
            low = self.hex4(self.pos + 2)
            if 0xDC00 <= low <= 0xDFFF:
                self.pos += 6
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))
        return chr(code)  # a lone surrogate stays one, as json.loads does

    def hex4(self, at: int) -> int:
        digits = self.data[at : at + 4]
        if len(digits) != 4 or not _HEX.issuperset(digits):
            self.fail("invalid \\u escape")
        return int(digits, 16)


def json_leaves(text: bytes) -> list[tuple[str, int, int]]:
    """List the leaves of a strict JSON document with their byte ranges.

    Leaves are strings, numbers, ``true``/``false``/``null`` and empty arrays/objects.
    A string's range runs from its first content byte to the end of its closing quote;
    other leaves cover their lexeme.

    Args:
        text: The UTF-8 encoded document; surrounding whitespace is allowed.

    Returns:
        ``(json_pointer, byte_start, byte_end)`` per leaf in document order, the pointer per
        RFC 6901 (``""`` for the root, keys decoded then escaped ``~`` -> ``~0``, ``/`` -> ``~1``).

    Raises:
        ValueError: If ``text`` is not exactly one valid JSON document.
    """
    return _Scanner(text).document()


def leaf_confidences(
    tokens: Sequence[TokenLogprob], *, text_offset: int = 0
) -> dict[str, LeafConfidence]:
    """Score every leaf of the JSON answer written by ``tokens``.

    Args:
        tokens: Parsed tokens of the whole generation.
        text_offset: Byte offset in the joined token bytes where the JSON document starts;
            everything from there on must be the document (whitespace allowed around it).

    Returns:
        JSON pointer -> confidence, in document order. A leaf's logprob is the sum over
        exactly the tokens whose byte range overlaps the leaf's; ``None`` if any is unknown.

    Raises:
        ValueError: If the bytes from ``text_offset`` on are not one valid JSON document,
            or ``text_offset`` is out of range.
    """
    data = joined_bytes(tokens)
    if not 0 <= text_offset <= len(data):
        msg = f"text_offset {text_offset} is outside the {len(data)} generated bytes"
        raise ValueError(msg)
    offsets = token_byte_offsets(tokens)
    ends = [end for _, end in offsets]
    result: dict[str, LeafConfidence] = {}
    for pointer, leaf_start, leaf_end in json_leaves(data[text_offset:]):
        start, end = leaf_start + text_offset, leaf_end + text_offset
        logprobs: list[float | None] = []
        index = bisect_right(ends, start)  # first token ending after the leaf starts
        while index < len(tokens) and offsets[index][0] < end:
            if offsets[index][1] > offsets[index][0]:
                logprobs.append(tokens[index].logprob)
            index += 1
        known = [lp for lp in logprobs if lp is not None]
        total = math.fsum(known) if len(known) == len(logprobs) else None
        result[pointer] = LeafConfidence(
            prob=None if total is None else math.exp(total),
            logprob=total,
            num_tokens=len(logprobs),
        )
    return result


def min_leaf_prob(conf: Mapping[str, LeafConfidence]) -> float | None:
    """Return the lowest known leaf probability, or ``None`` if no leaf has one."""
    probs = [c.prob for c in conf.values() if c.prob is not None]
    return min(probs) if probs else None
