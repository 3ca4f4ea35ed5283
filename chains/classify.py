"""``/classify``: one label for a text, with a probability distribution over all labels.

Method. The prompt lists the labels as options with one-character markers (``A. positive``,
``B. negative``, ...: A-Z, then a-x beyond 26 labels, so at most 50) and asks for JSON
``{"answer": "<marker>"}``; ``response_format`` json_schema restricts ``answer`` to the
markers (grammar on the embedded model, structured outputs on OpenAI), so the answer always
names one label. Markers keep labels apart that share a first token (``apple``/``apricot``)
or span several tokens. The model is never asked for a number: the distribution is read
from the ``top_logprobs`` of the token that writes the marker, found by bytes (the token
holding the first byte of ``/answer``'s value). Every alternative at that position that
spells a marker (after the same opening bytes, e.g. ``"``; leading spaces, a closing quote
and, up to 26 labels, lower case allowed) adds its probability to that marker's label;
the sums are renormalised over the labels. ``coverage`` is the mass the labels had before
renormalising: low coverage means the model was putting its probability elsewhere.

Caveats: only the ``top_logprobs`` alternatives are seen (20 are requested), so a label
outside them gets 0. Logprobs are the upstream's: the embedded model reports its raw
distribution before the grammar mask. If no alternative names a label (``coverage`` 0),
the distribution puts 1 on the label the model wrote and ``confidence`` is null.
Streaming yields a single event with the whole output. Temperature defaults to 0.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, Field, ValidationError, field_validator

from chains.extract import JsonAnswerChain, Prepared, check_size, read_answer, response_format
from chains.json_confidence import json_leaves
from chains.logprobs import TokenLogprob, token_byte_offsets
from chains.model import configurable_chat_model
from chains.runnable import OptionalText
from errors import UpstreamError, invalid_input
from settings import Settings

MARKERS = string.ascii_uppercase + string.ascii_lowercase[:24]
"""Option markers in order: A-Z, then a-x (50 in all)."""
MAX_LABELS = len(MARKERS)
SCHEMA_NAME = "classification"
TOP_LOGPROBS = 20
MAX_TOKENS = 32
_SPACE = b" \t\n\r"


class ClassifyInput(BaseModel):
    """A text and the labels to choose from."""

    text: str = Field(description="The text to classify.")
    labels: list[str] = Field(
        min_length=2,
        max_length=MAX_LABELS,
        description=f"The labels to choose from: 2 to {MAX_LABELS}, unique, non-empty.",
    )
    instructions: OptionalText = Field(
        default=None, description="Optional guidance, e.g. what the labels mean."
    )

    @field_validator("labels")
    @classmethod
    def _unique_non_empty(cls, labels: list[str]) -> list[str]:
        empty = [i for i, label in enumerate(labels) if not label.strip()]
        if empty:
            msg = f"labels must be non-empty; label {empty[0]} is blank"
            raise ValueError(msg)
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            msg = f"labels must be unique; repeated: {repeated}"
            raise ValueError(msg)
        return labels


class ClassifyOutput(BaseModel):
    """The most likely label, its probability and the distribution over all labels."""

    label: str = Field(description="The most likely label: the argmax of distribution.")
    confidence: float | None = Field(
        description="distribution[label]. Null when coverage is 0: the logprobs said nothing "
        "about the labels, so no probability is known."
    )
    distribution: dict[str, float] = Field(
        description="Probability of every label, in input order, summing to 1. Read from the "
        "top_logprobs of the token that writes the answer's option marker (not asked of the "
        "model): each label sums the probabilities of its marker's variants (case, leading "
        "space, closing quote), then all are renormalised over the labels. A label absent "
        "from the top_logprobs gets 0. With coverage 0: 1 on the answered label."
    )
    coverage: float = Field(
        description="Probability mass, in [0, 1], that the labels' markers had at the answer "
        "position before renormalising. Near 1: the model's mass was on the labels; low: it "
        "was mostly elsewhere and the distribution is less reliable; 0: unknown."
    )
    answer: str = Field(
        description="The label the model actually wrote. It differs from label when another "
        "label ends up more probable: sampled at temperature > 0, or its marker's summed "
        "variants outweigh the written one."
    )
    marker: str = Field(description="The option marker of label as listed in the prompt (A, B...).")
    model: str | None = Field(description="The model that answered, as the upstream named it.")


def markers_for(count: int) -> list[str]:
    """The option markers of ``count`` labels (A, B, ...; a, b, ... past 26)."""
    return list(MARKERS[:count])


def answer_schema(markers: Sequence[str]) -> dict[str, Any]:
    """JSON Schema of ``{"answer": <one of markers>}``."""
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(markers)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


def classify_prompt(data: ClassifyInput) -> str:
    """The user message: the text, the lettered options and the answer format."""
    markers = markers_for(len(data.labels))
    options = "\n".join(
        f"{m}. {' '.join(label.split())}" for m, label in zip(markers, data.labels, strict=True)
    )
    extra = f"{data.instructions.strip()}\n\n" if data.instructions else ""
    return (
        f"Classify the text below into exactly one of the options.\n{extra}"
        f'Text:\n"""\n{data.text}\n"""\n\n'
        f"Options:\n{options}\n\n"
        'Answer with JSON {"answer": "<letter>"}, where <letter> is the letter of the best '
        "option."
    )


def _marker_table(count: int) -> dict[int, int]:
    """Byte of each marker -> label index; lower case merged up to 26 labels."""
    table = {ord(m): i for i, m in enumerate(markers_for(count))}
    if count <= len(string.ascii_uppercase):
        table.update({ord(m.lower()): i for i, m in enumerate(markers_for(count))})
    return table


def _marker_of(piece: bytes, prefix: bytes, table: dict[int, int]) -> int | None:
    """The label index a token alternative names, or None.

    The alternative must start with ``prefix`` (whitespace ignored: it is JSON structure
    up to the opening quote), then may hold spaces, then one marker byte, then nothing,
    spaces, or a closing quote and anything after it.
    """
    pos = 0
    for want in (b for b in prefix if b not in _SPACE):
        while pos < len(piece) and piece[pos] in _SPACE:
            pos += 1
        if pos >= len(piece) or piece[pos] != want:
            return None
        pos += 1
    rest = piece[pos:].lstrip(_SPACE)
    if not rest or rest[0] not in table:
        return None
    tail = rest[1:].lstrip(_SPACE)
    if tail and not tail.startswith(b'"'):
        return None
    return table[rest[0]]


class Scores(BaseModel):
    """Label probabilities read from the answer token (before picking the argmax)."""

    answered: int = Field(description="Index of the label whose marker the model wrote.")
    mass: list[float] = Field(description="Summed probability of each label's marker variants.")


def score_answer(tokens: Sequence[TokenLogprob], count: int) -> Scores:
    """Sum the probability of each label's marker at the answer position.

    Args:
        tokens: the generated tokens of ``{"answer": "<marker>"}``.
        count: the number of labels.

    Raises:
        ValueError: the tokens do not spell such an answer with one of the markers.
    """
    raw = b"".join(bytes(t.bytes) for t in tokens)
    answer = json.loads(raw)
    leaves = {pointer: start for pointer, start, _ in json_leaves(raw)}
    markers = markers_for(count)
    if (
        not isinstance(answer, dict)
        or answer.get("answer") not in markers
        or "/answer" not in leaves
    ):
        msg = f'expected {{"answer": <one of {", ".join(markers)}>}}, got {raw[:200]!r}'
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
    table = _marker_table(count)
    mass = [0.0] * count
    for piece, prob in alternatives:
        label = _marker_of(piece, prefix, table)
        if label is not None and prob is not None:
            mass[label] += prob
    return Scores(answered=markers.index(answer["answer"]), mass=mass)


def distribution_of(scores: Scores, labels: Sequence[str]) -> dict[str, Any]:
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
        "marker": MARKERS[best],
    }


def classify_output(message: BaseMessage, labels: Sequence[str]) -> dict[str, Any]:
    """Turn the model's answer into a ClassifyOutput (as a dict).

    Raises:
        UpstreamError: the answer is not ``{"answer": <marker>}`` or has no logprobs.
    """
    answer = read_answer(message)
    try:
        scores = score_answer(answer.tokens, len(labels))
    except ValueError as exc:
        msg = f"the model's answer is not one of the options ({exc})"
        raise UpstreamError(msg) from None
    output = ClassifyOutput(**distribution_of(scores, labels), model=answer.model)
    return output.model_dump()


class Classify(JsonAnswerChain):
    """Picks one label for a text; its distribution comes from the marker's logprobs."""

    def _prepare(self, value: Any) -> Prepared:
        try:
            data = ClassifyInput.model_validate(value)
        except ValidationError as exc:
            raise invalid_input(exc) from None
        check_size(self.max_prompt_chars, data.text, data.instructions, *data.labels)
        labels = list(data.labels)
        schema = answer_schema(markers_for(len(labels)))
        return Prepared(
            messages=[HumanMessage(content=classify_prompt(data))],
            response_format=response_format(SCHEMA_NAME, schema, strict=True),
            finish=lambda message: classify_output(message, labels),
        )


def build_chain(settings: Settings) -> Runnable[Any, Any]:
    """The /classify chain: top_logprobs 20 and temperature 0 by default (configurable)."""
    model = configurable_chat_model(
        settings,
        temperature=0.0,
        top_logprobs=TOP_LOGPROBS,
        max_tokens=min(MAX_TOKENS, settings.max_tokens_cap),
    )
    chain = Classify(model=model, max_prompt_chars=settings.max_prompt_chars)
    return chain.with_types(input_type=ClassifyInput, output_type=ClassifyOutput)
