"""Pure math of ``/classify``'s methods label and marker: which label each alternative of the
generated answer token names.

No I/O and no model: given the tokens of an answer ``{"answer": <label or marker>}`` and
their ``top_logprobs``, sum the probability of every label at the position of the answer's
first byte (found by bytes, ``chains.json_confidence``), then renormalise. How the model
answers (``method``) is picked from the labels by ``choose_method``; see
``chains.classify`` for the method and its caveats.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from chains.json_confidence import json_leaves
from chains.logprobs import TokenLogprob, joined_bytes, token_byte_offsets

MARKERS = string.ascii_uppercase + string.ascii_lowercase[:24]
"""Option markers in order: A-Z, then a-x (50 in all)."""
MAX_LABEL_BYTES = 48
Method = Literal["label", "marker"]
_SPACE = b" \t\n\r"


def markers_for(count: int) -> list[str]:
    """The option markers of ``count`` labels (A, B, ...; a, b, ... past 26)."""
    return list(MARKERS[:count])


def label_bytes(label: str) -> bytes:
    """The bytes a label takes inside a JSON string, as the model writes it."""
    return json.dumps(label, ensure_ascii=False)[1:-1].encode()


def choose_method(labels: Sequence[str]) -> Method:
    """``label`` when no two labels start with the same byte (case-insensitive).

    Labels longer than ``MAX_LABEL_BYTES`` are answered by marker too, so that the answer
    stays a few tokens long.
    """
    encoded = [label_bytes(label) for label in labels]
    firsts = {label[:1].lower() for label in encoded}
    short = all(len(label) <= MAX_LABEL_BYTES for label in encoded)
    return "label" if short and len(firsts) == len(labels) else "marker"


def answer_values(labels: Sequence[str], method: Method) -> list[str]:
    """The allowed values of ``/answer``: the labels or their markers."""
    return list(labels) if method == "label" else markers_for(len(labels))


def marker_table(count: int) -> dict[int, int]:
    """Byte of each marker -> label index; lower case merged up to 26 labels."""
    table = {ord(m): i for i, m in enumerate(markers_for(count))}
    if count <= len(string.ascii_uppercase):
        table.update({ord(m.lower()): i for i, m in enumerate(markers_for(count))})
    return table


def marker_of(piece: bytes, prefix: bytes, table: dict[int, int]) -> int | None:
    """The label index a token alternative names, or None.

    The alternative must start with ``prefix`` (whitespace ignored: it is JSON structure
    up to the opening quote), then may hold spaces, then one marker byte, then nothing,
    spaces, or a closing quote and anything after it.
    """
    rest = _skip_prefix(piece, prefix)
    if not rest or rest[0] not in table:
        return None
    tail = rest[1:].lstrip(_SPACE)
    if tail and not tail.startswith(b'"'):
        return None
    return table[rest[0]]


def _skip_prefix(piece: bytes, prefix: bytes) -> bytes | None:
    """``piece`` after ``prefix`` (whitespace ignored) and leading spaces, or None."""
    pos = 0
    for want in (b for b in prefix if b not in _SPACE):
        while pos < len(piece) and piece[pos] in _SPACE:
            pos += 1
        if pos >= len(piece) or piece[pos] != want:
            return None
        pos += 1
    return piece[pos:].lstrip(_SPACE)


def _closing_quote(rest: bytes) -> int:
    """Index of the first unescaped ``"`` in ``rest``, or -1."""
    escaped = False
    for i, byte in enumerate(rest):
        if escaped:
            escaped = False
        elif byte == ord("\\"):
            escaped = True
        elif byte == ord('"'):
            return i
    return -1


def label_of(piece: bytes, prefix: bytes, lowered: Sequence[bytes]) -> int | None:
    """The label index a token alternative starts to spell, or None.

    After ``prefix`` and spaces, the alternative must be a non-empty start of exactly one
    label (compared in lower case), or a whole label followed by the closing quote.
    """
    rest = _skip_prefix(piece, prefix)
    if not rest:
        return None
    quote = _closing_quote(rest)
    head = (rest if quote < 0 else rest[:quote]).lower()
    if quote >= 0:
        matches = [i for i, label in enumerate(lowered) if label == head]
    else:
        matches = [i for i, label in enumerate(lowered) if label.startswith(head)]
    return matches[0] if len(matches) == 1 else None


class Scores(BaseModel):
    """Label probabilities read from the answer token (before picking the argmax)."""

    answered: int = Field(description="Index of the label whose marker the model wrote.")
    mass: list[float] = Field(description="Summed probability of each label's marker variants.")


def label_mass_at_answer(
    tokens: Sequence[TokenLogprob], labels: Sequence[str], method: Method
) -> Scores:
    """Sum the probability of each label at the answer position.

    Args:
        tokens: the generated tokens of ``{"answer": <label or marker>}``.
        labels: the labels, in order.
        method: ``label`` (the answer is the label) or ``marker`` (its option marker).

    Raises:
        ValueError: the tokens do not spell such an answer.
    """
    raw = joined_bytes(tokens)
    answer = json.loads(raw)
    leaves = {pointer: start for pointer, start, _ in json_leaves(raw)}
    values = answer_values(labels, method)
    if (
        not isinstance(answer, dict)
        or answer.get("answer") not in values
        or "/answer" not in leaves
    ):
        shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in values)
        msg = f'expected {{"answer": <one of {shown}>}}, got {raw[:200]!r}'
        raise ValueError(msg)
    start = leaves["/answer"]
    offsets = token_byte_offsets(tokens)
    index = next(i for i, (a, b) in enumerate(offsets) if a <= start < b)
    token = tokens[index]
    prefix = raw[offsets[index][0] : start]  # e.g. '"' or ' "': every alternative shares it
    alternatives: list[tuple[bytes, float | None]] = [
        (bytes(t.bytes), t.prob) for t in token.top_logprobs
    ]
    if all(piece != bytes(token.bytes) for piece, _ in alternatives):
        alternatives.append((bytes(token.bytes), token.prob))
    count = len(labels)
    table = marker_table(count)
    lowered = [label_bytes(label).lower() for label in labels]
    mass = [0.0] * count
    for piece, prob in alternatives:
        if method == "marker":
            label = marker_of(piece, prefix, table)
        else:
            label = label_of(piece, prefix, lowered)
        if label is not None and prob is not None:
            mass[label] += prob
    return Scores(answered=values.index(answer["answer"]), mass=mass)


def distribution_of(scores: Scores, labels: Sequence[str], method: Method) -> dict[str, Any]:
    """Renormalise the label mass and pick the argmax (ties: the answered label first)."""
    total = math.fsum(scores.mass)
    if total > 0.0:
        probs = [m / total for m in scores.mass]
        best = max(range(len(labels)), key=lambda i: (probs[i], i == scores.answered, -i))
        confidence: float | None = probs[best]
    else:
        probs = [1.0 if i == scores.answered else 0.0 for i in range(len(labels))]
        best, confidence = scores.answered, None
    return {
        "label": labels[best],
        "confidence": confidence,
        "distribution": dict(zip(labels, probs, strict=True)),
        "coverage": min(total, 1.0),
        "answer": labels[scores.answered],
        "method": method,
        "marker": MARKERS[best] if method == "marker" else None,
    }
