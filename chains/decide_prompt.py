"""Plain-text prompts of Decisions: what is teacher-forced for each question. No I/O.

Every question becomes one prompt and one answer text per value; a value's probability is
that of its whole answer text after the prompt (``chains.decide_math``). The prompt is plain
text that a base model continues, not a chat template and not JSON (measured: a JSON answer
gets almost no mass from a small model, see the README):

    Text: <the input>
    Question: <the instructions>
    Options: positive, negative
    Answer: positive⏎⏎

The input comes first and is the same for every question of a request, so the upstream
evaluates it once (the embedded model keeps the tokens it evaluated; vLLM's prefix cache does the
same). Each answer ends with a blank line, so that a value is scored as a whole answer: ``neg``
is told from ``negative`` (``P(" neg\\n\\n")`` is not a share of ``P(" negative\\n\\n")``).
A blank line, not one newline: it also separates the solved examples, where the tokenizer
writes it as one token; measured on the sentiment bench, 4-shot coverage went from 0.016
(answers ending in one newline) to 0.95, and calibrated accuracy from 0.81 to 0.86.

Values are written as plain text (runs of whitespace as one space; booleans as ``true`` /
``false``). When two values of a question would read the same (``"true"`` and ``true``),
every value of that question is written as JSON instead (``"true"`` and ``true``). A
predicate is a choice between ``yes`` and ``no``; a score question's values are its level
labels (or their indices ``0``, ``1``... when two labels read the same). A choice's solved
``examples`` (our extension; ``/classify``'s examples) come first, each asked and answered
the same way, then the input: few-shot, and the same for every input of a task, so the
upstream keeps them cached.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from chains.decide_schema import (
    ChoiceQuestion,
    InputItem,
    InputPart,
    PredicateQuestion,
    QuestionPart,
    ScoreQuestion,
)
from langserve_logprobs.errors import InvalidRequestError

CONTENT_FREE = "N/A"
"""The content-free input of contextual calibration (Zhao et al. 2021)."""
PREDICATE_VALUES = ("yes", "no")
END = "\n\n"
"""What ends every answer: a blank line, as between the solved examples (one token here)."""
_ROLES = {"user": "User", "system": "System", "developer": "Developer", "assistant": "Assistant"}


class UnsupportedInputError(InvalidRequestError):
    """An input part this service cannot read (images), with the request field it is in."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Asked:
    """One question as teacher-forced: the prompt after the input, and each value's answer."""

    question: str
    """The question block (``Question: ...\\nAnswer:``), appended to the input block."""
    answers: list[str]
    """Each value's whole answer text (`` <value>\\n``), in the question's order."""
    shots: str = ""
    """Solved examples, each asked and answered the same way, before the input (few-shot)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


def _image_error(param: str) -> UnsupportedInputError:
    msg = f"{param}: images are not supported here (input_image); send text or input_json"
    return UnsupportedInputError(msg, param)


def _part_text(part: InputPart | QuestionPart, param: str) -> str:
    if part.type == "input_image":
        raise _image_error(param)
    if part.type == "input_json":
        return _json(part.data)
    if isinstance(part, InputPart) and part.type == "refusal":
        return part.refusal or ""
    return part.text or ""


def _parts_text(content: str | Sequence[InputPart | QuestionPart] | None, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(_part_text(p, f"{param}[{i}]") for i, p in enumerate(content))


def _item_text(item: InputItem, param: str) -> str:
    if item.type == "message":
        role = _ROLES[item.role or "user"]
        return f"{role}: {_parts_text(item.content, f'{param}.content')}"
    if item.type in ("function_call", "custom_tool_call"):
        called = item.arguments if item.type == "function_call" else item.input
        return f"Tool call {item.name or ''} ({item.call_id or ''}): {called or ''}"
    output = _parts_text(item.output, f"{param}.output")
    return f"Tool output ({item.call_id or ''}): {output}"


def input_text(value: str | Sequence[InputItem]) -> str:
    """The input as plain text: a string as given; one user message as its text; several
    items as ``Role: text`` paragraphs (tool calls and outputs as text).

    Raises:
        UnsupportedInputError: an image part (400 naming it).
    """
    if isinstance(value, str):
        return value.strip()
    if len(value) == 1 and value[0].type == "message" and value[0].role == "user":
        return _parts_text(value[0].content, "input[0].content").strip()
    return "\n\n".join(_item_text(item, f"input[{i}]") for i, item in enumerate(value)).strip()


def input_block(text: str) -> str:
    """The start of every question's prompt: the input (shared by all questions)."""
    return f"Text: {text}\n"


def instructions_text(question: PredicateQuestion | ChoiceQuestion | ScoreQuestion, at: int) -> str:
    """A question's instructions as one line of text (JSON parts as JSON)."""
    parts = question.instructions
    text = _parts_text(parts, f"questions[{at}].instructions")
    return _one_line(text)


def value_texts(values: Sequence[str | bool]) -> list[str]:
    """How each value is written in the prompt and the answer (see the module docstring)."""
    plain = [("true" if v else "false") if isinstance(v, bool) else _one_line(v) for v in values]
    if len(set(plain)) == len(plain) and all(plain):
        return plain
    return [_json(v) for v in values]


def _options(texts: Sequence[str], descriptions: Sequence[str | None]) -> str:
    if not any(descriptions):
        return f"Options: {', '.join(texts)}\n"
    lines = [
        f"- {t}: {_one_line(d)}" if d else f"- {t}"
        for t, d in zip(texts, descriptions, strict=True)
    ]
    return "Options:\n" + "\n".join(lines) + "\n"


def _asked(question: str, options: str, texts: Sequence[str]) -> Asked:
    return Asked(f"Question: {question}\n{options}Answer:", [f" {t}{END}" for t in texts])


def ask(question: PredicateQuestion | ChoiceQuestion | ScoreQuestion, at: int) -> Asked:
    """The prompt block and answer texts of question number ``at``."""
    instructions = instructions_text(question, at)
    if isinstance(question, PredicateQuestion):
        return _asked(instructions, "Options: yes, no\n", PREDICATE_VALUES)
    if isinstance(question, ChoiceQuestion):
        values = [c.value for c in question.choices]
        texts = value_texts(values)
        options = _options(texts, [c.description for c in question.choices])
        asked = _asked(instructions, options, texts)
        written = {(type(v), v): t for v, t in zip(values, texts, strict=True)}
        shots = "".join(
            input_block(e.input.strip()) + asked.question + answer
            for e in question.examples
            for answer in [asked.answers[texts.index(written[(type(e.value), e.value)])]]
        )
        return Asked(asked.question, asked.answers, shots)
    labels = [_one_line(level.label) for level in question.levels]
    if len(set(labels)) != len(labels) or not all(labels):
        labels = [str(i) for i in range(len(question.levels))]
        described = [
            f"{_one_line(level.label)}: {_one_line(level.description)}"
            if level.description
            else _one_line(level.label)
            for level in question.levels
        ]
        return _asked(instructions, _options(labels, described), labels)
    options = _options(labels, [level.description for level in question.levels])
    return _asked(instructions, options, labels)
