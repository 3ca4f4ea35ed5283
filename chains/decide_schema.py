"""Wire schemas of Decisions: typed questions about one input, typed answers with probabilities.

The request and the response mirror OpenAI's Decisions API as the installed openai SDK types it
(``openai/types/decision_create_params.py``, ``openai/types/decision.py``), so that
``client.decisions.create(...)`` and langchain-openai's ``OpenAIDecisions`` work unchanged
against ``POST /v1/decisions``; ``/decide`` (LangServe) takes and gives the same. Our
extensions are extra fields the SDKs keep: ``calibration`` on the request, ``examples`` on a
choice question; ``coverage``, ``exact`` and ``calibrated`` on every answer; ``id`` and
``object`` on the response.

Bounds are OpenAI's: 1-400 questions, 2-255 unique choices (typed: ``"true"`` and ``true`` are
two values), at least one level. ``prompt_cache_key``, ``prompt_cache_options`` and
``safety_identifier`` are accepted and have no effect (the embedded model caches every
request's shared prefix by itself).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)

from langserve_logprobs.calibration.schemas import AppliedCalibration, CalibrationName

MAX_QUESTIONS = 400
MAX_CHOICES = 255
MAX_LEVELS = 255
MAX_EXAMPLES = 20
Calibration = Literal["contextual", "none"]
ChoiceValue = StrictStr | StrictBool


class InputPart(BaseModel):
    """A content part: input_text, output_text, refusal, input_json, or input_image (refused)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["input_text", "output_text", "refusal", "input_json", "input_image"] = Field(
        description="The kind of part. input_image is refused (400): images are not supported."
    )
    text: str | None = Field(default=None, description="input_text / output_text: the text.")
    refusal: str | None = Field(default=None, description="refusal: the refusal's text.")
    data: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description="input_json: a JSON object or array, rendered as JSON text."
    )
    image_url: str | None = Field(default=None, description="input_image: not supported.")


class InputItem(BaseModel):
    """One item of the input: a message, or a tool call or output (rendered as text)."""

    model_config = ConfigDict(extra="allow")

    type: Literal[
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
    ] = Field(default="message", description="message (the default) or a tool call / output.")
    role: Literal["user", "system", "developer", "assistant"] | None = Field(
        default=None, description="A message's author."
    )
    content: str | list[InputPart] | None = Field(
        default=None, description="A message's text, or its parts."
    )
    name: str | None = Field(default=None, description="A tool call's tool name.")
    arguments: str | None = Field(default=None, description="A function call's arguments.")
    input: str | None = Field(default=None, description="A custom tool call's input.")
    call_id: str | None = Field(default=None, description="The call a tool output answers.")
    output: str | list[InputPart] | None = Field(
        default=None, description="A tool output: text, or text parts."
    )

    @model_validator(mode="after")
    def _complete(self) -> InputItem:
        if self.type == "message" and (self.role is None or self.content is None):
            msg = "a message needs a role and a content"
            raise ValueError(msg)
        return self


class QuestionPart(BaseModel):
    """A part of a question's instructions: input_text, input_json, or input_image (refused)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["input_text", "input_json", "input_image"] = Field(description="The part.")
    text: str | None = Field(default=None, description="input_text: the text.")
    data: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description="input_json: rendered as JSON text."
    )
    image_url: str | None = Field(default=None, description="input_image: not supported.")


Instructions = str | list[QuestionPart]


class _Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: Instructions = Field(
        description="What to ask about the input: a text, or text and JSON parts."
    )
    name: str | None = Field(default=None, description="Echoed on the answer.")


class PredicateQuestion(_Question):
    """How likely a statement about the input is true."""

    type: Literal["predicate"] = Field(description="Always predicate.")


class ChoiceOption(BaseModel):
    """One value to choose from, with an optional description shown to the model."""

    value: ChoiceValue = Field(
        description="A string or a boolean; a string and a boolean with the same text differ."
    )
    description: str | None = Field(default=None, description="What this value means.")


class ChoiceExample(BaseModel):
    """A solved example: an input and the value it gets (one of the choices)."""

    input: str = Field(description="An example input text.")
    value: ChoiceValue = Field(description="Its value: one of the choices (typed).")


class ChoiceQuestion(_Question):
    """Pick one of 2-255 unique typed values."""

    type: Literal["choice"] = Field(description="Always choice.")
    choices: list[ChoiceOption] = Field(
        description=f"2 to {MAX_CHOICES} values, unique by type and value."
    )
    examples: list[ChoiceExample] = Field(
        default_factory=list,
        max_length=MAX_EXAMPLES,
        description=f"Extension: up to {MAX_EXAMPLES} solved examples, asked and answered the "
        "same way before the input (few-shot).",
    )

    @model_validator(mode="after")
    def _examples_use_the_choices(self) -> ChoiceQuestion:
        allowed = {(type(c.value), c.value) for c in self.choices}
        for i, example in enumerate(self.examples):
            if (type(example.value), example.value) not in allowed:
                msg = f"examples[{i}].value {example.value!r} is not one of the choices"
                raise ValueError(msg)
        return self

    @field_validator("choices")
    @classmethod
    def _bounds(cls, choices: list[ChoiceOption]) -> list[ChoiceOption]:
        if not 2 <= len(choices) <= MAX_CHOICES:
            msg = f"between 2 and {MAX_CHOICES} choices are needed, got {len(choices)}"
            raise ValueError(msg)
        seen: set[tuple[type, Any]] = set()
        for option in choices:
            key = (type(option.value), option.value)
            if key in seen:
                msg = f"choices must be unique; {option.value!r} is repeated"
                raise ValueError(msg)
            seen.add(key)
        return choices


class ScoreLevel(BaseModel):
    """One level of an ordered scale (its index is its value, from 0)."""

    label: str = Field(description="The level's name, e.g. Calm.")
    description: str | None = Field(default=None, description="What this level means.")


class ScoreQuestion(_Question):
    """Rate the input on ordered levels."""

    type: Literal["score"] = Field(description="Always score.")
    levels: list[ScoreLevel] = Field(description=f"1 to {MAX_LEVELS} levels, lowest first.")

    @field_validator("levels")
    @classmethod
    def _bounds(cls, levels: list[ScoreLevel]) -> list[ScoreLevel]:
        if not 1 <= len(levels) <= MAX_LEVELS:
            msg = f"between 1 and {MAX_LEVELS} levels are needed, got {len(levels)}"
            raise ValueError(msg)
        return levels


Question = Annotated[
    PredicateQuestion | ChoiceQuestion | ScoreQuestion, Field(discriminator="type")
]


QUESTION_EXAMPLES: list[dict[str, Any]] = [
    {"type": "predicate", "instructions": "Is the review positive?"},
    {
        "type": "choice",
        "instructions": "What is the review's sentiment?",
        "choices": [{"value": "positive"}, {"value": "negative"}],
    },
    {
        "type": "score",
        "instructions": "How enthusiastic is the review?",
        "levels": [{"label": "Cold"}, {"label": "Warm"}, {"label": "Enthusiastic"}],
    },
]
"""One question of each kind about ``input``'s example (the schema's ``examples``: the
playground fills its form with them)."""


class DecideInput(BaseModel):
    """One input and 1-400 typed questions about it (OpenAI's decisions.create body)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[InputItem] = Field(
        description="A text, or messages (user, system, developer, assistant) and tool "
        "calls and outputs, rendered as plain text. Images are refused (400).",
        examples=["I love this phone, it is fantastic!"],
    )
    questions: list[Question] = Field(
        description=f"1 to {MAX_QUESTIONS} questions: predicate, choice or score. Answers "
        "come back in the same order.",
        examples=[QUESTION_EXAMPLES],
    )
    model: str | None = Field(
        default=None,
        description="Passed to the upstream; the embedded model answers to any name "
        "(an alias of the served model). Default: the configured model.",
    )
    calibration: Calibration | None = Field(
        default=None,
        description="Extension. contextual: divide out the distribution the same question "
        "gets on a content-free input (Zhao et al. 2021); none: raw. Default: the "
        "service's setting (LOGPROBS_DECISION_CALIBRATION).",
    )
    calibration_name: CalibrationName | None = Field(
        default=None,
        description="Extension: a learned calibration (see /v1/calibrations) to apply after "
        "contextual calibration; each answer then carries raw_probabilities (or "
        "raw_probability) and learned_calibration, and the decision is kept under its id so "
        "that outcomes can name it.",
    )
    prompt_cache_key: str | None = Field(default=None, description="Accepted, no effect.")
    prompt_cache_options: dict[str, Any] | None = Field(
        default=None, description="Accepted, no effect."
    )
    safety_identifier: str | None = Field(default=None, description="Accepted, no effect.")

    @field_validator("questions")
    @classmethod
    def _count(cls, questions: list[Any]) -> list[Any]:
        if not 1 <= len(questions) <= MAX_QUESTIONS:
            msg = f"between 1 and {MAX_QUESTIONS} questions are needed, got {len(questions)}"
            raise ValueError(msg)
        return questions


class _Answer(BaseModel):
    name: str | None = Field(description="The question's name, or null.")
    coverage: float = Field(
        description="Extension: the raw probability mass the model put on the listed values "
        "(each whole answer, teacher-forced) before renormalising. Near 1: the model "
        "answers with one of them; low: it wanted to say something else."
    )
    exact: bool = Field(
        description="Extension: true when every value's whole answer was teacher-forced; "
        "false for a first-token top_logprobs approximation."
    )
    calibrated: bool = Field(
        description="Extension: true when contextual calibration was applied (the "
        "content-free input's distribution divided out)."
    )
    learned_calibration: AppliedCalibration | None = Field(
        default=None,
        description="Extension, with calibration_name: the learned fit that mapped the "
        "distribution (null fields when none is applied yet).",
    )


class PredicateAnswer(_Answer):
    """How likely the statement is true."""

    type: Literal["predicate"] = Field(description="Always predicate.")
    probability: float = Field(description="P(true), renormalised over true and false.")
    raw_probability: float | None = Field(
        default=None,
        description="Extension, with calibration_name: P(true) before the learned fit.",
    )


class ChoiceProbability(BaseModel):
    """One value's probability."""

    value: ChoiceValue = Field(description="The value, typed as given.")
    probability: float = Field(description="Its probability, renormalised over the values.")


class ChoiceAnswer(_Answer):
    """The most probable value and the distribution over every value."""

    type: Literal["choice"] = Field(description="Always choice.")
    choice: ChoiceValue = Field(description="The most probable value (ties: the first).")
    probabilities: list[ChoiceProbability] = Field(description="Every value, in order.")
    raw_probabilities: list[ChoiceProbability] | None = Field(
        default=None,
        description="Extension, with calibration_name: the distribution before the learned "
        "fit (record outcomes against this one).",
    )
    confidence: float = Field(
        description="How concentrated the distribution is: 1 - entropy / log(number of "
        "values), in [0, 1]; 1 when all mass is on one value, 0 when uniform. Not the "
        "chosen value's probability."
    )


class LevelProbability(BaseModel):
    """One level's probability."""

    value: int = Field(description="The level's zero-based index.")
    label: str = Field(description="The level's label.")
    probability: float = Field(description="Its probability, renormalised over the levels.")


class ScoreAnswer(_Answer):
    """The expected level and the distribution over the levels."""

    type: Literal["score"] = Field(description="Always score.")
    score: float = Field(description="Probability-weighted mean of the zero-based indices.")
    probabilities: list[LevelProbability] = Field(description="Every level, in order.")
    raw_probabilities: list[LevelProbability] | None = Field(
        default=None,
        description="Extension, with calibration_name: the distribution before the learned fit.",
    )
    confidence: float = Field(
        description="1 - entropy / log(number of levels), in [0, 1] (1 with one level)."
    )


class RefusalAnswer(_Answer):
    """No answer: on an upstream that cannot score given text, the first-token approximation
    saw no probability on any value (coverage 0), so nothing honest can be said."""

    type: Literal["refusal"] = Field(description="Always refusal.")


Answer = Annotated[
    PredicateAnswer | ChoiceAnswer | ScoreAnswer | RefusalAnswer, Field(discriminator="type")
]


class InputTokensDetails(BaseModel):
    """Cache counts."""

    cache_write_tokens: int = Field(default=0, description="Not measured: 0.")
    cached_tokens: int = Field(
        default=0,
        description="Input tokens the upstream read from its cache (the input, shared by the "
        "questions of a request and kept between requests) instead of evaluating them; 0 "
        "where the upstream does not say.",
    )


class OutputTokensDetails(BaseModel):
    """Nothing is generated."""

    reasoning_tokens: int = Field(default=0, description="Always 0.")


class DecisionUsage(BaseModel):
    """Tokens of the prompts the upstream evaluated (shared prefixes counted per prompt)."""

    input_tokens: int = Field(description="Prompt tokens the upstream reported.")
    input_tokens_details: InputTokensDetails = Field(description="Cache counts.")
    output_tokens: int = Field(default=0, description="Nothing is generated: 0.")
    output_tokens_details: OutputTokensDetails = Field(description="Reasoning: 0.")
    total_tokens: int = Field(description="input_tokens + output_tokens.")


class DecisionOutput(BaseModel):
    """Every question's answer, in question order (OpenAI's Decision)."""

    id: str = Field(description="This decision's id (dec_...).")
    object: Literal["decision"] = Field(default="decision", description="Always decision.")
    answers: list[Answer] = Field(description="One per question, in question order.")
    model: str = Field(description="The model that answered, as the upstream named it.")
    usage: DecisionUsage = Field(description="Token usage.")


class DecideChunk(BaseModel):
    """A /decide stream event: one answer as soon as it is computed, in question order."""

    id: str = Field(description="The decision's id.")
    index: int = Field(description="The question's index.")
    answer: Answer = Field(description="Its answer.")
