"""``/classify``: one label for a text, with a probability distribution over all labels.

Method ``score`` (the default wherever the backend can score given text: the embedded model,
vLLM) is a view over the decision engine (``chains.decide``), the project's one
implementation of label scoring: the labels become one ``choice`` question (the
instructions, or "Classify the text.", as its question; the examples as its
solved examples) and each label's probability is that of its whole answer after the
plain-text prompt, teacher-forced, renormalised over the labels, with contextual
calibration as ``/v1/decisions`` applies it (``calibrated`` says so). Multi-token labels and
labels sharing a prefix are exact, and there is no top-20 cut. ``coverage`` is the raw mass
on the labels' whole answers. Nothing is generated: ``answer`` is the argmax. When the
backend cannot score given text (the capability cache says so, or the upstream refuses),
this request falls back to ``label`` or ``marker``; nothing is remembered here, so the next
request asks the capability cache again.

Methods ``label`` and ``marker`` (generation). The model answers JSON ``{"answer": ...}``
under ``response_format`` json_schema, whose enum holds the only allowed answers (a grammar
on the embedded model, structured outputs on OpenAI), so the answer always names one label.
The model is never asked for a number: the distribution is read from the ``top_logprobs``
of the token that writes the first byte of ``/answer``'s value, found by bytes.
Two ways to answer, picked from the labels (``method`` in the output says which):

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

Caveats (label, marker): only the ``top_logprobs`` alternatives are seen (20 are requested),
so a label outside them gets 0. Logprobs are the upstream's: the embedded model reports its raw
distribution before the grammar mask. If no alternative names a label (``coverage`` 0),
the distribution puts 1 on the label the model wrote and ``confidence`` is null.
Streaming yields a single event with the whole output. Temperature defaults to 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import (
    BaseModel,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from chains.answer_token_labels import (
    MARKERS,
    Method,
    answer_values,
    choose_method,
    distribution_of,
    label_mass_at_answer,
    markers_for,
)
from chains.calibration_apply import CalibrationSource
from chains.decide import DecisionEngine, build_engine, new_id
from chains.decide_schema import ChoiceExample, ChoiceOption, ChoiceQuestion, DecideInput
from chains.model import configurable_chat_model
from chains.runnable import OptionalText, check_prompt_size
from chains.structured import JsonAnswerChain, Prepared, read_answer, response_format
from chains.teacher_forcing import CannotScoreError
from langserve_logprobs.calibration.schemas import (
    NAME_PATTERN,
    AppliedCalibration,
    CalibrationName,
)
from langserve_logprobs.errors import InvalidRequestError, UpstreamError, validated
from langserve_logprobs.knobs import MODEL_KNOBS, knobs_model
from langserve_logprobs.limits import TOP_LOGPROBS_MAX
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream

MAX_LABELS = len(MARKERS)
SCHEMA_NAME = "classification"
MAX_TOKENS = 64
MAX_EXAMPLES = 20
ClassifyMethod = Literal["score", "label", "marker"]


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
    # Plain enum in the JSON Schema: LangServe's playground cannot render a null branch.
    method: Annotated[
        ClassifyMethod | None,
        WithJsonSchema({"type": "string", "enum": list(get_args(ClassifyMethod))}),
    ] = Field(
        default=None,
        description="score (exact label probabilities; needs a backend that can score given "
        "text), label or marker (read from the generated answer's top_logprobs). Default: "
        "score where the backend can, else label or marker as the labels allow.",
    )
    # Plain string in the JSON Schema, as method: the playground cannot render a null branch.
    calibration_name: Annotated[
        CalibrationName | None,
        WithJsonSchema({"type": "string", "pattern": NAME_PATTERN}),
    ] = Field(
        default=None,
        description="Method score: a learned calibration (see /v1/calibrations) applied "
        "after contextual calibration; the output then has raw_distribution, "
        "learned_calibration and a decision_id that outcomes can name.",
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
        description="The label the model actually wrote (method score: nothing is written, "
        "the most probable label). It differs from label when another "
        "label ends up more probable: sampled at temperature > 0, or its marker's summed "
        "variants outweigh the written one."
    )
    method: ClassifyMethod = Field(
        description="How the distribution was obtained: score (each label's whole answer "
        "scored exactly; nothing generated), label (the model wrote the label; used when no "
        "two labels start with the same byte) or marker (it wrote an option marker A, B...: "
        "used when labels share a first byte, so that they stay apart exactly)."
    )
    marker: str | None = Field(
        description="With method marker: the option marker of label as listed in the prompt "
        "(A, B...). Null with method label."
    )
    model: str | None = Field(description="The model that answered, as the upstream named it.")
    calibrated: bool = Field(
        default=False,
        description="Method score: true when contextual calibration was applied (the "
        "distribution a content-free input gets divided out, as on /v1/decisions). "
        "Always false for label and marker.",
    )
    raw_distribution: dict[str, float] | None = Field(
        default=None,
        description="With calibration_name: the distribution before the learned fit.",
    )
    learned_calibration: AppliedCalibration | None = Field(
        default=None, description="With calibration_name: the learned fit that mapped it."
    )
    decision_id: str | None = Field(
        default=None,
        description="With calibration_name: the id outcomes name this answer by "
        "(POST /v1/calibrations/{name}/outcomes).",
    )
    constrained: bool = Field(
        default=True,
        description="True when the upstream decoded the answer under the schema (json_schema, "
        "or json_object with a schema); false when it has no structured output and the "
        "answer was only asked for in the prompt and validated afterwards.",
    )


def answer_schema(values: Sequence[str]) -> dict[str, Any]:
    """JSON Schema of ``{"answer": <one of values>}``."""
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(values)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


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
        scores = label_mass_at_answer(answer.tokens, labels, method)
    except ValueError as exc:
        msg = f"the model's answer is not one of the options ({exc})"
        raise UpstreamError(msg) from None
    output = ClassifyOutput(
        **distribution_of(scores, labels, method),
        model=answer.model,
        constrained=answer.constrained,
    )
    return output.model_dump()


DEFAULT_QUESTION = "Classify the text."
"""Measured on the sentiment bench (calibrated, 0-shot / 4-shot): 0.80 / 0.83; "Which label
fits the text best?" 0.77 / 0.76."""


def classify_question(data: ClassifyInput) -> ChoiceQuestion:
    """Method score's question to the decision engine: the labels as the choices, the
    instructions (or ``DEFAULT_QUESTION``) as the question, the examples as its examples."""
    return ChoiceQuestion(
        type="choice",
        instructions=" ".join((data.instructions or DEFAULT_QUESTION).split()),
        choices=[ChoiceOption(value=label) for label in data.labels],
        examples=[ChoiceExample(input=e.text, value=e.label) for e in data.examples],
    )


def classify_view(
    answer: dict[str, Any], model: str | None, decision_id: str | None = None
) -> dict[str, Any]:
    """A decision engine's choice answer as /classify's output (method score)."""
    distribution = {str(p["value"]): float(p["probability"]) for p in answer["probabilities"]}
    raw = answer.get("raw_probabilities")
    label = str(answer["choice"])
    return ClassifyOutput(
        label=label,
        confidence=distribution[label],
        distribution=distribution,
        coverage=answer["coverage"],
        answer=label,
        method="score",
        marker=None,
        model=model,
        calibrated=answer["calibrated"],
        raw_distribution={str(p["value"]): float(p["probability"]) for p in raw} if raw else None,
        learned_calibration=answer.get("learned_calibration"),
        decision_id=decision_id,
    ).model_dump()


class Classify(JsonAnswerChain):
    """Picks one label for a text: exact label scores, or the answer's logprobs."""

    input_model = ClassifyInput
    engine: DecisionEngine | None = None

    def _check_size(self, data: ClassifyInput) -> None:
        examples = [e.text for e in data.examples]
        check_prompt_size(
            self.max_prompt_chars, data.text, data.instructions, *data.labels, *examples
        )

    def _wants_score(self, data: ClassifyInput) -> bool:
        if data.method == "score" and self.engine is None:
            msg = "method score is not available here"
            raise InvalidRequestError(msg)
        if data.calibration_name is not None and (self.engine is None or data.method):
            if data.method != "score":  # score without an engine was refused above
                msg = "calibration_name needs method score (label and marker are not calibrated)"
                raise InvalidRequestError(msg)
        return data.method in ("score", None) and self.engine is not None

    async def _by_score(
        self, engine: DecisionEngine, data: ClassifyInput, config: RunnableConfig
    ) -> dict[str, Any]:
        """Method score: one choice question to the decision engine (its one implementation
        of label scoring), shown as /classify's output."""
        self._check_size(data)
        model = self.knobs.of(config).model
        question = DecideInput(
            input=data.text,
            questions=[classify_question(data)],
            model=model,
            calibration_name=data.calibration_name,
        )
        plan = engine.plan(question)
        async for _, answer, named, _ in engine.answers(plan):
            ident = new_id() if data.calibration_name is not None else None
            if ident is not None:
                await engine.keep(plan, ident, [answer])
            return classify_view(answer, named, ident)
        msg = "the decision engine gave no answer"
        raise UpstreamError(msg)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        data = validated(ClassifyInput, value)
        if self._wants_score(data) and self.engine is not None:
            try:
                return await self._by_score(self.engine, data, config)
            except CannotScoreError:
                # Nothing is remembered here: the capability cache answers the next request.
                if data.method == "score" or data.calibration_name is not None:
                    raise
        return await super()._ainvoke(value, run_manager, config)

    def _invoke(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        data = validated(ClassifyInput, value)
        if self._wants_score(data) and self.engine is not None:
            try:
                # Derived from the async path; an engine whose client is this loop's own.
                return asyncio.run(self._by_score(self.engine.fresh(), data, config))
            except CannotScoreError:
                if data.method == "score" or data.calibration_name is not None:
                    raise
        return super()._invoke(value, run_manager, config)

    def _prepare(self, data: ClassifyInput) -> Prepared:
        self._check_size(data)
        labels = list(data.labels)
        method = choose_method(labels)
        if data.method == "marker":
            method = "marker"
        elif data.method == "label" and method != "label":
            msg = (
                "method label needs labels that start with different bytes (at most "
                "48 bytes each); use marker or score"
            )
            raise InvalidRequestError(msg)
        schema = answer_schema(answer_values(labels, method))
        return Prepared(
            messages=classify_messages(data, method),
            response_format=response_format(SCHEMA_NAME, schema, strict=True),
            finish=lambda message: classify_output(message, labels, method),
        )


def build_chain(
    settings: Settings, upstream: Upstream, calibrations: CalibrationSource | None = None
) -> Runnable[Any, Any]:
    """The /classify chain: method score where the backend can score (its engine applies
    the learned ``calibrations``); for the other methods top_logprobs 20 and temperature 0
    by default (configurable)."""
    knobs = knobs_model(
        settings,
        "ClassifyKnobs",
        MODEL_KNOBS,
        temperature=0.0,
        top_logprobs=TOP_LOGPROBS_MAX,
        max_tokens=MAX_TOKENS,
    )
    chain = Classify(
        model=configurable_chat_model(settings, upstream, knobs),
        knobs=knobs,
        max_prompt_chars=settings.max_prompt_chars,
        engine=build_engine(settings, upstream, approximate=False, calibrations=calibrations),
    )
    return chain.with_types(input_type=ClassifyInput, output_type=ClassifyOutput)
