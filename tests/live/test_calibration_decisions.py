"""Learned calibration on the decision routes: a real server on the embedded model whose
calibration database is a PostgreSQL server of this session, taken down and brought back.

A decision made with ``calibration_name`` is kept under its id; an outcome names it; once a
fit is applied, the next decision's distribution is the fit applied to the raw one (which is
the contextual one: the learned fit comes second), with the raw one and the version beside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from chains.calibration_apply import value_key
from chains.calibration_methods import from_params
from langserve_logprobs.settings import Settings
from server import create_app
from tests.calibration_data import ndjson, overconfident
from tests.postgres import PostgresMissingError, PostgresServer, postgres_server
from tests.servers import free_port, run_server

pytestmark = [pytest.mark.live, pytest.mark.timeout(600)]
NAME = "reviews"
QUESTION = {
    "type": "choice",
    "name": "sentiment",
    "instructions": "What is the sentiment of this review?",
    "choices": [{"value": "positive"}, {"value": "negative"}],
}
REVIEW = "The plot dragged, but the ending was lovely and I smiled all the way home."


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    try:
        with postgres_server() as server:
            yield server
    except PostgresMissingError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def url(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on the embedded model, its calibrations in a fresh PostgreSQL database."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE decisions")
    settings = Settings(
        port=free_port(),
        database_url=postgres.url.rsplit("/", 1)[0] + "/decisions",
        data_dir=str(tmp_path_factory.mktemp("unused")),
        _env_file=None,
    )
    with run_server(create_app(settings), port=settings.port) as base:
        yield base


def decide(url: str, **extra: Any) -> httpx.Response:
    body = {"model": "gemma", "input": REVIEW, "questions": [QUESTION], **extra}
    return httpx.post(f"{url}/v1/decisions", json=body, timeout=120)


def distribution(items: list[dict[str, Any]]) -> dict[str, float]:
    return {item["value"]: item["probability"] for item in items}


def test_decisions_apply_the_newest_fit_and_outcomes_name_them(url: str) -> None:
    plain = decide(url).json()["answers"][0]
    assert plain["raw_probabilities"] is None and plain["learned_calibration"] is None

    first = decide(url, calibration_name=NAME).json()
    answer = first["answers"][0]
    assert answer["learned_calibration"]["version"] is None
    assert answer["learned_calibration"]["applied"] is False
    # no fit yet: calibrated = raw = the contextual distribution of the plain call
    assert distribution(answer["probabilities"]) == distribution(answer["raw_probabilities"])
    raw = distribution(answer["raw_probabilities"])
    assert raw == pytest.approx(distribution(plain["probabilities"]), abs=1e-9)

    outcomes = f"{url}/v1/calibrations/{NAME}/outcomes"
    named = {"decision_id": first["id"], "question": "sentiment", "outcome": "negative"}
    recorded = httpx.post(outcomes, json=named, timeout=30)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["decision_id"] == first["id"]
    assert httpx.post(outcomes, json=named, timeout=30).status_code == 409
    wrong = httpx.post(outcomes, json={**named, "outcome": "neutral"}, timeout=30)
    assert wrong.status_code == 400 and "not one of" in wrong.json()["error"]["message"]
    unknown = httpx.post(outcomes, json={**named, "decision_id": "dec_nope"}, timeout=30)
    assert unknown.status_code == 404

    body = ndjson(overconfident(200, seed=5))
    imported = httpx.post(f"{outcomes}/import", content=body, timeout=60)
    assert imported.json()["outcome_count"] == 201
    fit = httpx.post(f"{url}/v1/calibrations/{NAME}/fit", timeout=60).json()
    assert fit["applied"], fit

    calibrated = decide(url, calibration_name=NAME).json()["answers"][0]
    learned = calibrated["learned_calibration"]
    assert learned == {
        "name": NAME,
        "version": fit["version"],
        "method": fit["method"],
        "applied": True,
        "reason": fit["reason"],
    }
    again = distribution(calibrated["raw_probabilities"])
    assert again == pytest.approx(raw, abs=1e-9)
    keys = [value_key(v) for v in again]
    expected = from_params(fit["method"], fit["params"]).apply(keys, list(again.values()))
    assert list(distribution(calibrated["probabilities"]).values()) == pytest.approx(expected)
    assert distribution(calibrated["probabilities"]) != pytest.approx(again)
    top = max(calibrated["probabilities"], key=lambda p: p["probability"])
    assert calibrated["choice"] == top["value"]

    # /decide (LangServe) applies it too, and a streamed decision is kept under its id
    invoked = httpx.post(
        f"{url}/decide/invoke",
        json={"input": {"input": REVIEW, "questions": [QUESTION], "calibration_name": NAME}},
        timeout=120,
    ).json()["output"]
    assert invoked["answers"][0]["learned_calibration"]["version"] == fit["version"]
    with httpx.stream(
        "POST",
        f"{url}/decide/stream",
        json={"input": {"input": REVIEW, "questions": [QUESTION], "calibration_name": NAME}},
        timeout=120,
    ) as response:
        data = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")
        ]
    chunks = [d for d in data if "answer" in d]  # the metadata event comes first
    assert chunks[0]["answer"]["learned_calibration"]["version"] == fit["version"]
    ident = chunks[0]["id"]
    streamed = httpx.post(outcomes, json={"decision_id": ident, "outcome": "positive"}, timeout=30)
    assert streamed.status_code == 200, streamed.text

    # /classify (method score is a view over the same engine) applies it too
    classify = {"text": REVIEW, "labels": ["positive", "negative"], "calibration_name": NAME}
    out = httpx.post(f"{url}/classify/invoke", json={"input": classify}, timeout=120).json()
    out = out["output"]
    assert out["method"] == "score" and out["learned_calibration"]["version"] == fit["version"]
    classify_raw = out["raw_distribution"]
    expected = from_params(fit["method"], fit["params"]).apply(
        [value_key(k) for k in classify_raw], list(classify_raw.values())
    )
    assert list(out["distribution"].values()) == pytest.approx(expected)
    assert out["confidence"] == out["distribution"][out["label"]]
    by_id = {"decision_id": out["decision_id"], "outcome": "positive"}
    assert httpx.post(outcomes, json=by_id, timeout=30).status_code == 200
    labelled = httpx.post(
        f"{url}/classify/invoke", json={"input": {**classify, "method": "label"}}, timeout=60
    )
    assert labelled.status_code == 400
    assert "method score" in labelled.json()["error"]["message"]


def test_an_outage_fails_calibration_calls_only(url: str, postgres: PostgresServer) -> None:
    postgres.stop()
    try:
        assert decide(url).status_code == 200
        down = decide(url, calibration_name=NAME)
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "calibration_unavailable"
        assert down.headers["retry-after"] == "5"
        listed = httpx.get(f"{url}/v1/calibrations", timeout=60)
        assert listed.status_code == 503
        assert listed.json()["error"]["type"] == "calibration_unavailable"
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        postgres.start()
    assert decide(url, calibration_name=NAME).status_code == 200
    assert httpx.get(f"{url}/v1/calibrations", timeout=60).status_code == 200
