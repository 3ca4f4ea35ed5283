"""``/classify``: one label for a text, with a probability distribution over all labels.

Method. The model answers JSON ``{"answer": ...}`` under ``response_format`` json_schema,
whose enum holds the only allowed answers (a grammar on the embedded model, structured
outputs on OpenAI), so the answer always names one label. The model is never asked for a
number: the distribution is read from the ``top_logprobs`` of the token that writes the
first byte of ``/answer``'s value, found by bytes. Two ways to answer, picked from the
labels (``method`` in the output says which):

* ``label``: when no two labels start with the same byte (case-insensitive), the model
  writes the label itself. Under the constrained answer, the first token decides the label:
  every alternative at that position that spells the start of exactly one label (after
  the same opening bytes, e.g. ``"``; leading spaces and other letter case allowed) adds
  its probability to that label. Small models classify much better this way. (Labels
  longer than 48 bytes are answered by marker, to keep the answer short.)
* ``marker``: when labels share a first byte (``apple``/``apricot``, or a shared first
  token of a multi-token label), the prompt lists them with one-character markers
  (``A. apple``, ``B. apricot``...: A-Z, then a-x beyond 26 labels, so at most 50) and the
  model answers the marker, so labels are still told apart exactly. Every alternative that
  spells a marker (leading spaces, a closing quote and, up to 26 labels, lower case
  allowed) adds its probability to that marker's label.

The sums are renormalised over the labels. ``coverage`` is the mass the labels had before
renormalising: low coverage means the model was putting its probability elsewhere.
Optional ``examples`` (text and label) are sent first as earlier turns of the
conversation, answered the same way: few-shot classification.

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
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from chains.json_confidence import json_leaves
from chains.logprobs import TokenLogprob, token_byte_offsets
from chains.model import configurable_chat_model
from chains.runnable import OptionalText
from chains.structured import JsonAnswerChain, Prepared, check_size, read_answer, response_format
from langserve_logprobs.errors import UpstreamError, invalid_input
from langserve_logprobs.settings import Settings

MARKERS = string.ascii_uppercase + string.ascii_lowercase[:24]
"""Option markers in order: A-Z, then a-x (50 in all)."""
MAX_LABELS = len(MARKERS)
SCHEMA_NAME = "classification"
TOP_LOGPROBS = 20
MAX_TOKENS = 64
MAX_EXAMPLES = 20
MAX_LABEL_BYTES = 48
Method = Literal["label", "marker"]
_SPACE = b" \t\n\r"


class ClassifyExample(BaseModel):
    """A solved example: a text and its label (one of the labels)."""

    text: str = Field(description="An example text.")
    label: str = Field(description="Its label: one of labels.")


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
    examples: list[ClassifyExample] = Field(
        default_factory=list,
        max_length=MAX_EXAMPLES,
        description=f"Optional solved examples (up to {MAX_EXAMPLES}), sent first as earlier "
        "turns: few-shot classification. Each label must be one of labels.",
    )

    @model_validator(mode="after")
    def _examples_use_the_labels(self) -> ClassifyInput:
        for i, example in enumerate(self.examples):
            if example.label not in self.labels:
                msg = f"examples[{i}].label {example.label!r} is not one of labels"
                raise ValueError(msg)
        return self

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
        "top_logprobs of the token that writes the answer (not asked of the model): each "
        "label sums the probabilities of the alternatives that spell it (method label: the "
        "start of the label; method marker: its option marker; case and leading space "
        "allowed), then all are renormalised over the labels. A label absent from the "
        "top_logprobs gets 0. With coverage 0: 1 on the answered label."
    )
    coverage: float = Field(
        description="Probability mass, in [0, 1], that the labels had at the answer position "
        "before renormalising. Near 1: the model's mass was on the labels; low: it was "
        "mostly elsewhere and the distribution is less reliable; 0: unknown."
    )
    answer: str = Field(
        description="The label the model actually wrote. It differs from label when another "
        "label ends up more probable: sampled at temperature > 0, or its marker's summed "
        "variants outweigh the written one."
    )
    method: Method = Field(
        description="How the model answered: label (it wrote the label; used when no two "
        "labels start with the same byte) or marker (it wrote an option marker A, B...: "
        "used when labels share a first byte, so that they stay apart exactly)."
    )
    marker: str | None = Field(
        description="With method marker: the option marker of label as listed in the prompt "
        "(A, B...). Null with method label."
    )
    model: str | None = Field(description="The model that answered, as the upstream named it.")


def markers_for(count: int) -> list[str]:
    """The option markers of ``count`` labels (A, B, ...; a, b, ... past 26)."""
    return list(MARKERS[:count])


def answer_schema(values: Sequence[str]) -> dict[str, Any]:
    """JSON Schema of ``{"answer": <one of values>}``."""
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(values)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


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


def classify_prompt(
    data: ClassifyInput, method: Method | None = None, text: str | None = None
) -> str:
    """One user message: the text, the labels (or lettered options) and the answer format.

    ``method`` defaults to ``choose_method(data.labels)``; ``text`` replaces ``data.text``
    (for the few-shot examples, asked the same way).
    """
    method = method or choose_method(data.labels)
    text = data.text if text is None else text
    extra = f"{data.instructions.strip()}\n\n" if data.instructions else ""
    quoted = f'Text:\n"""\n{text}\n"""\n\n'
    if method == "label":
        listed = "\n".join(f"- {' '.join(label.split())}" for label in data.labels)
        return (
            f"Classify the text below with exactly one of the labels.\n{extra}{quoted}"
            f"Labels:\n{listed}\n\n"
            'Answer with JSON {"answer": "<label>"}, where <label> is the best label, '
            "written exactly as listed."
        )
    markers = markers_for(len(data.labels))
    options = "\n".join(
        f"{m}. {' '.join(label.split())}" for m, label in zip(markers, data.labels, strict=True)
    )
    return (
        f"Classify the text below into exactly one of the options.\n{extra}{quoted}"
        f"Options:\n{options}\n\n"
        'Answer with JSON {"answer": "<letter>"}, where <letter> is the letter of the best '
        "option."
    )


def classify_messages(data: ClassifyInput, method: Method | None = None) -> list[BaseMessage]:
    """The conversation: each example as a question and its answer, then the text.

    ``method`` defaults to ``choose_method(data.labels)``.
    """
    method = method or choose_method(data.labels)
    values = dict(zip(data.labels, answer_values(data.labels, method), strict=True))
    messages: list[BaseMessage] = []
    for example in data.examples:
        messages.append(HumanMessage(content=classify_prompt(data, method, example.text)))
        answer = json.dumps({"answer": values[example.label]}, ensure_ascii=False)
        messages.append(AIMessage(content=answer))
    messages.append(HumanMessage(content=classify_prompt(data, method)))
    return messages


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


def _label_of(piece: bytes, prefix: bytes, lowered: Sequence[bytes]) -> int | None:
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


def score_answer(tokens: Sequence[TokenLogprob], labels: Sequence[str], method: Method) -> Scores:
    """Sum the probability of each label at the answer position.

    Args:
        tokens: the generated tokens of ``{"answer": <label or marker>}``.
        labels: the labels, in order.
        method: ``label`` (the answer is the label) or ``marker`` (its option marker).

    Raises:
        ValueError: the tokens do not spell such an answer.
    """
    raw = b"".join(bytes(t.bytes) for t in tokens)
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
    table = _marker_table(count)
    lowered = [label_bytes(label).lower() for label in labels]
    mass = [0.0] * count
    for piece, prob in alternatives:
        if method == "marker":
            label = _marker_of(piece, prefix, table)
        else:
            label = _label_of(piece, prefix, lowered)
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


def classify_output(
    message: BaseMessage, labels: Sequence[str], method: Method | None = None
) -> dict[str, Any]:
    """Turn the model's answer into a ClassifyOutput (as a dict).

    ``method`` defaults to the one ``choose_method`` picks for the labels.

    Raises:
        UpstreamError: the answer is not one of the allowed values or has no logprobs.
    """
    method = method or choose_method(labels)
    answer = read_answer(message)
    try:
        scores = score_answer(answer.tokens, labels, method)
    except ValueError as exc:
        msg = f"the model's answer is not one of the options ({exc})"
        raise UpstreamError(msg) from None
    output = ClassifyOutput(**distribution_of(scores, labels, method), model=answer.model)
    return output.model_dump()


class Classify(JsonAnswerChain):
    """Picks one label for a text; its distribution comes from the answer's logprobs."""

    def _prepare(self, value: Any) -> Prepared:
        try:
            data = ClassifyInput.model_validate(value)
        except ValidationError as exc:
            raise invalid_input(exc) from None
        examples = [e.text for e in data.examples]
        check_size(self.max_prompt_chars, data.text, data.instructions, *data.labels, *examples)
        labels = list(data.labels)
        method = choose_method(labels)
        schema = answer_schema(answer_values(labels, method))
        return Prepared(
            messages=classify_messages(data, method),
            response_format=response_format(SCHEMA_NAME, schema, strict=True),
            finish=lambda message: classify_output(message, labels, method),
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
