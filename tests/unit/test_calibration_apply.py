"""A learned fit inside a finished decision answer: applied after contextual calibration,
the raw distribution kept beside, and read back for the store."""

from __future__ import annotations

import math

import pytest

from chains.calibration_apply import LearnedFit, RawAnswer, raw_answers, value_key
from chains.calibration_methods import Platt, Temperature
from chains.decide_math import ValueScores, contextual_calibration, finish_answer
from chains.decide_schema import (
    ChoiceOption,
    ChoiceQuestion,
    DecisionOutput,
    PredicateQuestion,
    ScoreLevel,
    ScoreQuestion,
)

INFO = {"name": "t", "version": 3, "method": "temperature", "applied": True, "reason": "r"}
CHOICE = ChoiceQuestion(
    type="choice",
    name="mood",
    instructions="Mood?",
    choices=[ChoiceOption(value="glad"), ChoiceOption(value="sad"), ChoiceOption(value=True)],
)


def probs(items: list[dict[str, object]]) -> list[float]:
    return [float(str(i["probability"])) for i in items]


def test_choice_is_calibrated_after_contextual_and_keeps_raw() -> None:
    raw = ValueScores([math.log(0.7), math.log(0.2), math.log(0.1)], exact=True)
    free = ValueScores([math.log(0.5), math.log(0.25), math.log(0.25)], exact=True)
    fit = LearnedFit("t", Temperature(3.0), INFO)
    answer = finish_answer(CHOICE, raw, free, fit)
    contextual = contextual_calibration(raw.logprobs, free.logprobs)
    assert probs(answer["raw_probabilities"]) == pytest.approx(contextual)
    expected = Temperature(3.0).apply([value_key(v) for v in ("glad", "sad", True)], contextual)
    assert probs(answer["probabilities"]) == pytest.approx(expected)
    assert answer["learned_calibration"] == INFO
    assert answer["calibrated"] is True
    # the confidence is that of the calibrated distribution: flatter than the raw one
    plain = finish_answer(CHOICE, raw, free)
    assert answer["confidence"] < plain["confidence"]
    assert "raw_probabilities" not in plain and "learned_calibration" not in plain
    DecisionOutput.model_validate(
        {"id": "dec_1", "answers": [answer], "model": "m", "usage": {
            "input_tokens": 1, "input_tokens_details": {}, "output_tokens": 0,
            "output_tokens_details": {}, "total_tokens": 1}}
    )  # fmt: skip


def test_a_lean_can_change_the_choice() -> None:
    raw = ValueScores([math.log(0.55), math.log(0.45)], exact=True)
    question = ChoiceQuestion(
        type="choice", instructions="?", choices=[ChoiceOption(value="a"), ChoiceOption(value="b")]
    )
    fit = LearnedFit("t", Platt(1.0, {'"a"': -1.0, '"b"': 1.0}), INFO)
    answer = finish_answer(question, raw, None, fit)
    assert answer["choice"] == "b"
    assert probs(answer["raw_probabilities"]) == pytest.approx([0.55, 0.45])


def test_predicate_and_score() -> None:
    fit = LearnedFit("t", Platt(1.0, {"true": -2.0}), INFO)
    predicate = PredicateQuestion(type="predicate", instructions="True?")
    answer = finish_answer(predicate, ValueScores([math.log(0.8), math.log(0.2)], True), None, fit)
    assert answer["raw_probability"] == pytest.approx(0.8)
    assert answer["probability"] < 0.5
    levels = [ScoreLevel(label=str(i)) for i in range(3)]
    score = ScoreQuestion(type="score", instructions="How much?", levels=levels)
    scored = finish_answer(score, ValueScores([0.0, 0.0, 0.0], True), None, LearnedFit("t", None))
    assert probs(scored["raw_probabilities"]) == probs(scored["probabilities"])
    assert [p["value"] for p in scored["raw_probabilities"]] == [0, 1, 2]


def test_raw_answers_are_what_the_store_keeps() -> None:
    fit = LearnedFit("t", Temperature(2.0), INFO)
    predicate = PredicateQuestion(type="predicate", name="ok", instructions="True?")
    answers = [
        finish_answer(CHOICE, ValueScores([-0.5, -1.5, -3.0], True), None, fit),
        finish_answer(predicate, ValueScores([math.log(0.9), math.log(0.1)], True), None, fit),
        finish_answer(CHOICE, ValueScores([-0.5, -1.5, -3.0], True), None),  # no fit: skipped
    ]
    kept = raw_answers(answers)
    assert [(a.index, a.question, a.values) for a in kept] == [
        (0, "mood", ["glad", "sad", True]),
        (1, "ok", [True, False]),
    ]
    assert kept[1].probabilities == pytest.approx([0.9, 0.1])
    assert isinstance(kept[0], RawAnswer) and sum(kept[0].probabilities) == pytest.approx(1.0)


def test_no_calibrator_leaves_the_distribution() -> None:
    assert LearnedFit("t", None).apply(["a", "b"], [0.3, 0.7]) == [0.3, 0.7]
