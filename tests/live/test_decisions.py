"""Decisions against a real server on the embedded model, through clients nobody here wrote:
openai-python (sync and async), langchain-openai's OpenAIDecisions, openai-node and LangServe's
RemoteRunnable on /decide. Each SDK parses every answer into its typed models."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_openai.decisions import Choice, OpenAIDecisions, Predicate, Score
from langserve import RemoteRunnable
from openai.types.decision import (
    AnswerAnswerResourceChoice,
    AnswerAnswerResourcePredicate,
    AnswerAnswerResourceScore,
)

from chains.decide_prompt import ask, input_block
from chains.decide_schema import ChoiceQuestion

EXAMPLES = Path(__file__).resolve().parents[2] / "client_examples"
REVIEW = "A wonderful, moving film: the acting is superb and I loved every minute."
QUESTIONS: list[dict[str, Any]] = [
    {
        "type": "choice",
        "name": "sentiment",
        "instructions": "What is the sentiment of this review?",
        "choices": [{"value": "positive"}, {"value": "negative"}, {"value": "neg"}],
    },
    {"type": "predicate", "name": "liked", "instructions": "Did the reviewer like the film?"},
    {
        "type": "score",
        "name": "stars",
        "instructions": "How many stars would the reviewer give?",
        "levels": [{"label": str(i)} for i in range(1, 6)],
    },
]


def check_sdk_decision(decision: Any) -> None:
    """Every answer parsed into the SDK's typed models, in order, with our extensions kept."""
    choice, predicate, score = decision.answers
    assert isinstance(choice, AnswerAnswerResourceChoice)
    assert isinstance(predicate, AnswerAnswerResourcePredicate)
    assert isinstance(score, AnswerAnswerResourceScore)
    assert [a.name for a in decision.answers] == ["sentiment", "liked", "stars"]
    assert math.fsum(p.probability for p in choice.probabilities) == pytest.approx(1.0)
    assert [p.value for p in choice.probabilities] == ["positive", "negative", "neg"]
    assert choice.choice == max(choice.probabilities, key=lambda p: p.probability).value
    assert choice.choice == "positive"
    assert 0.0 <= choice.confidence <= 1.0
    assert 0.0 < predicate.probability < 1.0
    expected = math.fsum(p.value * p.probability for p in score.probabilities)
    assert score.score == pytest.approx(expected)
    assert [p.label for p in score.probabilities] == ["1", "2", "3", "4", "5"]
    for answer in decision.answers:
        extra = answer.model_extra or {}
        assert extra["exact"] is True
        assert extra["calibrated"] is True
        assert 0.0 < extra["coverage"] <= 1.0
    assert decision.usage.input_tokens > 0
    # The second and third questions read the input from the cache the first one left.
    assert 0 < decision.usage.input_tokens_details.cached_tokens < decision.usage.input_tokens
    assert decision.usage.output_tokens == 0
    assert str((decision.model_extra or {})["id"]).startswith("dec_")


def test_openai_python_sync(live_url: str) -> None:
    with openai.OpenAI(base_url=f"{live_url}/v1", api_key="unused", max_retries=0) as client:
        decision = client.decisions.create(model="local", input=REVIEW, questions=QUESTIONS)  # type: ignore[arg-type]
    check_sdk_decision(decision)


async def test_openai_python_async(live_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{live_url}/v1", api_key="unused", max_retries=0)
    async with client:
        messages = [{"role": "user", "content": [{"type": "input_text", "text": REVIEW}]}]
        decision = await client.decisions.create(
            model="local",
            input=messages,  # type: ignore[arg-type]
            questions=QUESTIONS,  # type: ignore[arg-type]
        )
    check_sdk_decision(decision)


def test_probabilities_are_the_teacher_forced_whole_answers(live_url: str) -> None:
    """Uncalibrated, a choice's distribution is exp(sum of each answer's logprobs) from the
    model's own scoring endpoint, renormalised ("neg" and "negative" apart)."""
    question = ChoiceQuestion.model_validate(QUESTIONS[0])
    asked = ask(question, 0)
    context = input_block(REVIEW) + asked.question
    scored = httpx.post(
        f"{live_url}/local/v1/completions",
        json={
            "model": "local",
            "prompt": [context, *(context + a for a in asked.answers)],
            "echo": True,
            "logprobs": 0,
            "max_tokens": 1,
        },
        timeout=120,
    ).json()
    context_tokens = len(scored["choices"][0]["logprobs"]["tokens"])
    sums = [
        math.fsum(choice["logprobs"]["token_logprobs"][context_tokens:])
        for choice in scored["choices"][1:]
    ]
    expected = [math.exp(s) / math.fsum(map(math.exp, sums)) for s in sums]
    reply = httpx.post(
        f"{live_url}/v1/decisions",
        json={"model": "m", "input": REVIEW, "questions": QUESTIONS[:1], "calibration": "none"},
        timeout=120,
    )
    answer = reply.json()["answers"][0]
    assert answer["calibrated"] is False
    got = [p["probability"] for p in answer["probabilities"]]
    assert got == pytest.approx(expected, abs=0.02)  # batch-shape noise of the CPU kernels
    assert answer["coverage"] == pytest.approx(math.fsum(map(math.exp, sums)), rel=0.1)


def test_langchain_openai_decisions_invoke_and_batch(live_url: str) -> None:
    decisions = OpenAIDecisions(
        model="local", base_url=f"{live_url}/v1", api_key="unused", max_retries=0
    )
    questions = {
        "sentiment": Choice(
            instructions="What is the sentiment of this review?",
            choices={"positive": None, "negative": None, "neg": None},
        ),
        "liked": Predicate(instructions="Did the reviewer like the film?"),
        "stars": Score(
            instructions="How many stars would the reviewer give?",
            levels=[str(i) for i in range(1, 6)],
        ),
    }
    request: Any = {"input": REVIEW, "questions": questions}
    response = decisions.invoke(request)
    assert response.choices["sentiment"].choice == "positive"
    assert 0.0 < response.predicates["liked"].probability < 1.0
    assert 0.0 <= response.scores["stars"].score <= 4.0
    other: Any = {"input": "Dull and far too long; I walked out.", "questions": questions}
    first, second = decisions.batch([request, other])
    assert first.choices["sentiment"].choice == "positive"
    assert set(second.answers) == {"sentiment", "liked", "stars"}


def test_remote_runnable_decide_invoke_batch_and_stream(live_url: str) -> None:
    remote: RemoteRunnable[Any, Any] = RemoteRunnable(f"{live_url}/decide", timeout=300)
    request = {"input": REVIEW, "questions": QUESTIONS}
    decision = remote.invoke(request)
    assert [a["type"] for a in decision["answers"]] == ["choice", "predicate", "score"]
    assert decision["answers"][0]["choice"] == "positive"
    assert decision["id"].startswith("dec_")
    batch = remote.batch([request, {**request, "calibration": "none"}])
    assert [a["calibrated"] for a in batch[1]["answers"]] == [False] * 3
    chunks = list(remote.stream(request))
    assert [c["index"] for c in chunks] == [0, 1, 2]
    assert len({c["id"] for c in chunks}) == 1
    # The same numbers streamed and invoked: the scorer's numbers do not depend on what ran
    # before (the same request twice, the second on a warm cache).
    assert [c["answer"] for c in chunks] == decision["answers"]


def test_openai_node_decisions_create(live_url: str, tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        if os.environ.get("CI"):
            pytest.fail("node/npm are not installed")
        pytest.skip("node/npm are not installed")
    for name in ("package.json", "package-lock.json", "decide.mjs"):
        shutil.copy(EXAMPLES / "js" / name, tmp_path / name)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=tmp_path,
        check=True,
        timeout=240,
        capture_output=True,
    )
    out = subprocess.run(
        [node, "decide.mjs", live_url],
        cwd=tmp_path,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    decision = json.loads(out)
    department, urgent, frustration = decision["answers"]
    assert department["choice"] in ("billing", "technical")
    assert math.fsum(p["probability"] for p in department["probabilities"]) == pytest.approx(1)
    assert 0.0 < urgent["probability"] < 1.0
    assert [p["label"] for p in frustration["probabilities"]] == ["Calm", "Concerned", "Angry"]


def test_decide_stream_sends_each_answer_as_soon_as_it_is_computed(live_url: str) -> None:
    """Six questions are scored one after another: the first answer's event arrives long
    before the last one's, on a real socket."""
    questions = [
        {**QUESTIONS[1], "name": f"q{i}", "instructions": f"Is this review about film {i}?"}
        for i in range(6)
    ]
    body = {"input": {"input": REVIEW, "questions": questions, "calibration": "none"}}
    arrivals: list[float] = []
    start = time.perf_counter()
    with httpx.stream("POST", f"{live_url}/decide/stream", json=body, timeout=300) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("event: data"):
                arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 6
    assert arrivals[0] < 0.6 * arrivals[-1], arrivals


def test_an_input_over_the_context_window_is_context_length_exceeded(live_url: str) -> None:
    text = "word " * 6000  # under LOGPROBS_MAX_PROMPT_CHARS, over the 4096-token window
    reply = httpx.post(
        f"{live_url}/v1/decisions",
        json={"model": "local", "input": text, "questions": [QUESTIONS[1]]},
        timeout=120,
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
