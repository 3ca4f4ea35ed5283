"""POST /v1/decisions and /decide in-process: bad input is a 4xx in OpenAI's shape, found
before any model work; the edge (keys) guards it like every route."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.helpers import fake_upstream_settings

PREDICATE = {"type": "predicate", "instructions": "Is it good?"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "ok", "input": "A fine film.", "questions": [PREDICATE], **fields}


def choices(*values: Any) -> dict[str, Any]:
    return {"type": "choice", "instructions": "Which?", "choices": [{"value": v} for v in values]}


@pytest.mark.parametrize(
    ("request_body", "param", "words"),
    [
        pytest.param(body(questions=[]), "questions", "between 1 and 400", id="no-question"),
        pytest.param(body(questions=[PREDICATE] * 401), "questions", "401", id="401-questions"),
        pytest.param(body(questions=[choices("a")]), "questions[0].choices", "2 and 255", id="1"),
        pytest.param(
            body(questions=[choices(*map(str, range(256)))]),
            "questions[0].choices",
            "got 256",
            id="256-choices",
        ),
        pytest.param(
            body(questions=[choices(True, "a", True)]), "questions[0].choices", "unique", id="dup"
        ),
        pytest.param(
            body(questions=[{"type": "ranking", "instructions": "?"}]),
            "questions[0]",
            "tag",
            id="unknown-type",
        ),
        pytest.param(
            body(questions=[{"type": "score", "instructions": "?", "levels": []}]),
            "questions[0].levels",
            "levels",
            id="no-level",
        ),
        pytest.param(
            body(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]),
            "input[0].content[0]",
            "images are not supported",
            id="image",
        ),
        pytest.param({"input": "x", "questions": [PREDICATE]}, "model", "model", id="no-model"),
    ],
)
def test_bad_input_is_a_400_in_openais_shape_before_any_model_work(
    client: TestClient, fake_upstream: Any, request_body: dict[str, Any], param: str, words: str
) -> None:
    before = sum(fake_upstream.state.completions.values())
    reply = client.post("/v1/decisions", json=request_body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]
    assert sum(fake_upstream.state.completions.values()) == before


def test_too_much_work_is_refused_naming_the_cap(fake_upstream: Any) -> None:
    settings = fake_upstream_settings(fake_upstream, decision_max_work=500)
    many = choices(*(f"value {i}" for i in range(200)))
    before = sum(fake_upstream.state.completions.values())
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        reply = client.post("/v1/decisions", json=body(questions=[many] * 3))
        assert reply.status_code == 400, reply.text
        assert "LOGPROBS_DECISION_MAX_WORK" in reply.json()["error"]["message"]
        assert "500" in reply.json()["error"]["message"]
        decide = client.post("/decide/invoke", json={"input": body(questions=[many] * 3)})
        assert decide.status_code == 400, decide.text
    assert sum(fake_upstream.state.completions.values()) == before


def test_a_backend_that_cannot_score_approximates_from_the_first_token(
    client: TestClient, fake_upstream: Any
) -> None:
    """The fake "ok" upstream echoes no prompt logprobs; its first generated token is "Hello"
    (logprob -0.1) with the alternative "Hi" (-2.5): "Hello" gets that mass, nothing else
    names a value, and the answer says it is not exact."""
    before = fake_upstream.state.hits["ok"]
    question = choices("Hello", "Goodbye")
    reply = client.post("/v1/decisions", json=body(questions=[question], calibration="none"))
    assert reply.status_code == 200, reply.text
    answer = reply.json()["answers"][0]
    assert answer["exact"] is False
    assert answer["choice"] == "Hello"
    assert answer["probabilities"][0]["probability"] == pytest.approx(1.0)
    assert answer["coverage"] == pytest.approx(math.exp(-0.1))
    assert fake_upstream.state.hits["ok"] == before + 1  # one generated token


def test_values_that_start_alike_cannot_be_approximated_honestly(client: TestClient) -> None:
    question = choices("neg", "negative")
    reply = client.post("/v1/decisions", json=body(questions=[question], calibration="none"))
    assert reply.status_code == 400, reply.text
    assert "start alike" in reply.json()["error"]["message"]


def test_a_question_no_alternative_answers_is_a_refusal_the_others_still_answered(
    client: TestClient,
) -> None:
    """The first token ("Hello" / "Hi") names neither yes nor no: that question is refused
    (coverage 0, nothing guessed); the choice beside it is answered."""
    questions = [{**PREDICATE, "name": "good"}, {**choices("Hello", "Goodbye"), "name": "hi"}]
    reply = client.post("/v1/decisions", json=body(questions=questions))
    assert reply.status_code == 200, reply.text
    refusal, answered = reply.json()["answers"]
    assert {k: refusal[k] for k in ("type", "name", "coverage", "exact", "calibrated")} == {
        "type": "refusal",
        "name": "good",
        "coverage": 0.0,
        "exact": False,
        "calibrated": False,
    }
    assert "probabilities" not in refusal
    assert answered["choice"] == "Hello"


def test_an_oversized_input_is_refused(fake_upstream: Any) -> None:
    settings = fake_upstream_settings(fake_upstream, max_prompt_chars=100)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        reply = client.post("/v1/decisions", json=body(input="x" * 200))
    assert reply.status_code == 400, reply.text
    assert "over the limit of 100" in reply.json()["error"]["message"]


@pytest.fixture
def keyed_client(fake_upstream: Any) -> Iterator[TestClient]:
    settings = fake_upstream_settings(fake_upstream, api_keys="sk-decide-key-0123456789")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_decisions_sit_behind_the_same_keys(keyed_client: TestClient) -> None:
    refused = keyed_client.post("/v1/decisions", json=body(questions=[]))
    assert refused.status_code == 401
    headers = {"Authorization": "Bearer sk-decide-key-0123456789"}
    checked = keyed_client.post("/v1/decisions", json=body(questions=[]), headers=headers)
    assert checked.status_code == 400
