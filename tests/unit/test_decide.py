"""Decisions' pure parts: prompts, answer texts, the math of answers, request checks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from pydantic import ValidationError

from chains.decide import DecisionEngine, TooMuchWorkError, value_scores, work_of
from chains.decide_first_token import (
    distinct_by_first_character,
    first_token_scores,
    value_of,
)
from chains.decide_math import (
    NO_MASS,
    ValueScores,
    concentration,
    contextual_calibration,
    finish_answer,
)
from chains.decide_prompt import UnsupportedInputError, ask, input_block, input_text, value_texts
from chains.decide_schema import ChoiceQuestion, DecideInput, PredicateQuestion, ScoreQuestion
from chains.teacher_forcing import TextScorer
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream

DATA = Path(__file__).resolve().parents[1] / "data"


def choice(*values: str | bool) -> ChoiceQuestion:
    return ChoiceQuestion.model_validate(
        {"type": "choice", "instructions": "Which?", "choices": [{"value": v} for v in values]}
    )


def recorded_scorer(recorded: dict[str, Any], sent: list[dict[str, Any]]) -> TextScorer:
    """A scorer whose client answers every request with the recorded response (in memory)."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=recorded["response"])

    settings = Settings(_env_file=None, upstream_kind="embedded", openai_base_url="http://x/v1")
    client = openai.AsyncOpenAI(
        base_url="http://x/v1",
        api_key="k",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)),
    )
    return TextScorer(Upstream.from_settings(settings), _async=client)


async def test_recorded_value_probability_is_its_whole_answer_renormalised() -> None:
    """``negative`` and ``negative!`` share their first token: each value's probability is
    exp(sum of its own teacher-forced token logprobs), renormalised over the values."""
    recorded = json.loads((DATA / "decide_shared_prefix.json").read_text())
    prompts: list[str] = recorded["request"]["prompt"]
    context, continuations = prompts[0], [p[len(prompts[0]) :] for p in prompts[1:]]
    sent: list[dict[str, Any]] = []
    scored = await recorded_scorer(recorded, sent).ascore(context, continuations, 0, "m")
    assert sent[0]["prompt"] == prompts
    tokens = [[(t.token, t.logprob) for t in row] for row in scored.continuations]
    assert tokens[0][0][0] == tokens[2][0][0] == " negative"  # a shared first token
    assert tokens[2][1][0] == "!"
    sums = [math.fsum(v for _, v in row if v is not None) for row in tokens]
    expected = [math.exp(s) / math.fsum(math.exp(x) for x in sums) for s in sums]

    question = choice("negative", "negatively", "negative!", "positive")
    assert ask(question, 0).answers == continuations
    answer = finish_answer(question, value_scores(scored), None)
    got = [p["probability"] for p in answer["probabilities"]]
    assert got == pytest.approx(expected, rel=1e-12)
    assert answer["choice"] == "negative"
    assert answer["coverage"] == pytest.approx(math.fsum(math.exp(s) for s in sums))
    assert answer["exact"] is True
    assert answer["calibrated"] is False


def test_contextual_calibration_divides_out_the_content_free_distribution() -> None:
    raw = [math.log(0.6), math.log(0.2)]  # normalised: 0.75 / 0.25
    content_free = [math.log(0.9), math.log(0.1)]  # prefers the first value whatever the input
    calibrated = contextual_calibration(raw, content_free)
    # 0.75 / 0.9 : 0.25 / 0.1 = 0.833 : 2.5
    assert calibrated == pytest.approx([0.833333 / 3.333333, 2.5 / 3.333333], rel=1e-5)
    question = choice("a", "b")
    answer = finish_answer(question, ValueScores(raw, True), ValueScores(content_free, True))
    assert answer["choice"] == "b"
    assert answer["calibrated"] is True
    assert answer["coverage"] == pytest.approx(0.8)  # raw mass, before calibration


def test_calibration_survives_a_value_the_content_free_input_never_gives() -> None:
    calibrated = contextual_calibration([-1.0, -2.0], [0.0, -9999.0])
    assert all(math.isfinite(p) for p in calibrated)
    assert calibrated[1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        pytest.param([0.5, 0.5], 0.0, id="uniform"),
        pytest.param([1.0, 0.0, 0.0], 1.0, id="point-mass"),
        pytest.param([1.0], 1.0, id="one-level"),
        pytest.param([0.9, 0.1], 1 - (-(0.9 * math.log(0.9) + 0.1 * math.log(0.1))) / math.log(2)),
    ],
)
def test_confidence_is_how_concentrated_the_distribution_is(
    probs: list[float], expected: float
) -> None:
    assert concentration(probs) == pytest.approx(expected)


def test_a_score_answer_is_the_expected_level_index() -> None:
    question = ScoreQuestion.model_validate(
        {"type": "score", "instructions": "How?", "levels": [{"label": x} for x in "abc"]}
    )
    logprobs = [math.log(0.2), math.log(0.3), math.log(0.5)]
    answer = finish_answer(question, ValueScores(logprobs, True), None)
    assert answer["score"] == pytest.approx(0.3 + 2 * 0.5)
    assert [p["value"] for p in answer["probabilities"]] == [0, 1, 2]
    assert [p["label"] for p in answer["probabilities"]] == ["a", "b", "c"]


def test_predicate_probability_is_yes_renormalised() -> None:
    question = PredicateQuestion(type="predicate", instructions="Is it?", name="q")
    answer = finish_answer(question, ValueScores([math.log(0.3), math.log(0.1)], True), None)
    assert answer["probability"] == pytest.approx(0.75)
    assert answer["name"] == "q"
    assert ask(question, 0).answers == [" yes\n\n", " no\n\n"]


def test_values_that_read_the_same_are_written_as_json() -> None:
    assert value_texts(["neg", "negative", True]) == ["neg", "negative", "true"]
    assert value_texts([True, "true"]) == ["true", '"true"']
    assert value_texts(["a  b", "a b"]) == ['"a  b"', '"a b"']
    answers = ask(choice(True, "true", False), 0).answers
    assert answers == [" true\n\n", ' "true"\n\n', " false\n\n"]


def test_prompt_opens_with_the_input_so_questions_share_it() -> None:
    data = DecideInput.model_validate(
        {
            "input": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                {"role": "user", "content": [{"type": "input_json", "data": {"a": 1}}]},
                {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c1"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ],
            "questions": [{"type": "predicate", "instructions": "Is it?"}],
        }
    )
    text = input_text(data.input)
    assert text.splitlines() == [
        "System: Be terse.",
        "",
        "User: Hi",
        "",
        'User: {"a": 1}',
        "",
        "Tool call f (c1): {}",
        "",
        "Tool output (c1): ok",
    ]
    asked = ask(data.questions[0], 0)
    prompt = input_block(text) + asked.question
    assert prompt.startswith("Text: System: Be terse.")
    assert prompt.endswith("Question: Is it?\nOptions: yes, no\nAnswer:")


def test_an_image_part_is_refused_naming_it() -> None:
    data = DecideInput.model_validate(
        {
            "input": [
                {"role": "user", "content": [{"type": "input_image", "image_url": "http://x"}]}
            ],
            "questions": [{"type": "predicate", "instructions": "Is it?"}],
        }
    )
    with pytest.raises(UnsupportedInputError) as caught:
        input_text(data.input)
    assert caught.value.param == "input[0].content[0]"
    assert "images are not supported" in caught.value.message


def _question(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "instructions": "Which?", **fields}


@pytest.mark.parametrize(
    ("questions", "problem"),
    [
        pytest.param([], "between 1 and 400 questions", id="no-question"),
        pytest.param([_question("predicate")] * 401, "between 1 and 400", id="401-questions"),
        pytest.param(
            [_question("choice", choices=[{"value": "a"}])], "between 2 and 255", id="one-choice"
        ),
        pytest.param(
            [_question("choice", choices=[{"value": str(i)} for i in range(256)])],
            "between 2 and 255",
            id="256-choices",
        ),
        pytest.param(
            [_question("choice", choices=[{"value": "a"}, {"value": "a"}])],
            "unique",
            id="duplicate",
        ),
        pytest.param([_question("score", levels=[])], "between 1 and 255 levels", id="no-level"),
        pytest.param([_question("ranking")], "does not match any of the expected tags", id="type"),
    ],
)
def test_bad_questions_are_refused(questions: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        DecideInput.model_validate({"input": "x", "questions": questions})


def test_true_and_the_string_true_are_two_values() -> None:
    question = choice(True, "true")
    assert [c.value for c in question.choices] == [True, "true"]


def test_the_work_cap_is_checked_before_any_model_work() -> None:
    engine = DecisionEngine(
        scorer=TextScorer(Upstream.from_settings(Settings(_env_file=None))),
        default_model="m",
        calibration="contextual",
        max_work=1000,
        max_prompt_chars=10_000,
    )
    values = [{"value": f"value number {i}"} for i in range(255)]
    data = DecideInput.model_validate(
        {"input": "x", "questions": [_question("choice", choices=values)] * 3}
    )
    assert work_of([ask(q, 0) for q in data.questions], True) > 1000
    with pytest.raises(TooMuchWorkError, match="LOGPROBS_DECISION_MAX_WORK"):
        engine.plan(data)
    small = DecideInput.model_validate({"input": "x", "questions": [_question("predicate")]})
    assert engine.plan(small).calibrate is True


def test_first_token_alternatives_add_to_the_value_they_start() -> None:
    texts = [" positive\n\n", " negative\n\n", " mixed\n\n"]
    alternatives = [
        (" pos", math.log(0.5)),
        ("positive", math.log(0.1)),  # no leading space, the whole value
        (" Negative", math.log(0.2)),  # other case: not this value's answer
        (" neg", math.log(0.1)),
        (" The", math.log(0.05)),
        (" m", -9999.0),  # a sentinel adds nothing
    ]
    scores = first_token_scores(alternatives, texts)
    assert scores.exact is False
    assert [math.exp(v) for v in scores.logprobs[:2]] == pytest.approx([0.6, 0.1])
    assert scores.logprobs[2] == NO_MASS
    answer = finish_answer(choice("positive", "negative", "mixed"), scores, None)
    assert answer["coverage"] == pytest.approx(0.7)
    assert answer["exact"] is False


def test_the_first_token_tells_values_apart_only_by_their_first_character() -> None:
    assert distinct_by_first_character([" yes\n\n", " no\n\n"])
    assert not distinct_by_first_character([" neg\n\n", " negative\n\n"])
    assert value_of(" ne", [" neg\n\n", " no\n\n"]) == 0
    assert value_of(" n", [" neg\n\n", " no\n\n"]) is None
