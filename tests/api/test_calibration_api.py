"""The /v1/calibrations routes in-process, on a SQLite database in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from langserve_logprobs.calibration.db import Database, migrate
from langserve_logprobs.calibration.store import AnswerRecord
from langserve_logprobs.calibration.tables import metadata
from langserve_logprobs.settings import Settings
from server import create_app
from tests.calibration_data import misleading, ndjson, outcome_line, overconfident
from tests.helpers import fake_upstream_settings, invoke_body

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def cal_settings(fake_upstream: Any, tmp_path: Path) -> Settings:
    return fake_upstream_settings(fake_upstream, data_dir=str(tmp_path / "data"))


@pytest.fixture
def cal_client(cal_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(cal_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def error_type(response: Any) -> str:
    return str(response.json()["error"]["type"])


def test_record_one_outcome_and_read_it_back(cal_client: TestClient, tmp_path: Path) -> None:
    response = cal_client.post("/v1/calibrations/triage/outcomes", json=outcome_line(0.9, True))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "positive" and body["outcome_count"] == 1 and body["id"] >= 1
    state = cal_client.get("/v1/calibrations/triage").json()
    assert state == {"calibration": "triage", "outcome_count": 1, "fit": None}
    assert (tmp_path / "data" / "langserve-logprobs.sqlite3").is_file()


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        pytest.param(
            {**outcome_line(0.9, True), "outcome": "maybe"},
            400,
            "invalid_request",
            id="outcome-outside-values",
        ),
        pytest.param(
            {**outcome_line(0.9, True), "outcome": True},
            400,
            "invalid_request",
            id="typed-value-differs",
        ),
        pytest.param({"outcome": "positive"}, 422, "invalid_input", id="neither-way"),
        pytest.param(
            {"decision_id": "nope", "outcome": "positive"}, 404, "not_found", id="unknown-decision"
        ),
        pytest.param(
            {
                "outcome": "a",
                "probabilities": [
                    {"value": "a", "probability": 0.2},
                    {"value": "b", "probability": 0.2},
                ],
            },
            400,
            "invalid_request",
            id="not-a-distribution",
        ),
    ],
)
def test_bad_outcomes_are_4xx(
    cal_client: TestClient, body: dict[str, Any], status: int, kind: str
) -> None:
    response = cal_client.post("/v1/calibrations/triage/outcomes", json=body)
    assert response.status_code == status, response.text
    assert error_type(response) == kind
    assert cal_client.get("/v1/calibrations/triage").status_code == 404  # nothing stored


def test_bad_name_is_rejected(cal_client: TestClient) -> None:
    response = cal_client.post("/v1/calibrations/a%20b/outcomes", json=outcome_line(0.5, True))
    assert response.status_code == 422


def test_outcome_by_decision_id(cal_client: TestClient) -> None:
    service = cal_client.app.state.calibration  # type: ignore[attr-defined]
    service.store.record_answers(
        [
            AnswerRecord("dec_1", 0, "mood", "triage", ["sad", "glad"], [0.3, 0.7]),
            AnswerRecord("dec_1", 1, "urgent", "triage", [True, False], [0.8, 0.2]),
        ]
    )
    url = "/v1/calibrations/triage/outcomes"
    ok = cal_client.post(url, json={"decision_id": "dec_1", "question": "urgent", "outcome": False})
    assert ok.status_code == 200, ok.text
    assert ok.json()["decision_id"] == "dec_1"
    again = cal_client.post(url, json={"decision_id": "dec_1", "question": 1, "outcome": True})
    assert again.status_code == 409 and error_type(again) == "conflict"
    outside = cal_client.post(url, json={"decision_id": "dec_1", "outcome": "meh"})
    assert outside.status_code == 400
    other = cal_client.post(
        "/v1/calibrations/other/outcomes", json={"decision_id": "dec_1", "outcome": "sad"}
    )
    assert other.status_code == 400 and "triage" in other.json()["error"]["message"]
    first = cal_client.post(url, json={"decision_id": "dec_1", "outcome": "sad"})
    assert first.status_code == 200
    stored = service.store.outcomes("triage")
    assert [(r.answer_index, r.outcome, r.probabilities) for r in stored] == [
        (1, False, [0.8, 0.2]),
        (0, "sad", [0.3, 0.7]),
    ]


def test_import_fit_and_read_the_same_fit(cal_client: TestClient) -> None:
    imported = cal_client.post(
        "/v1/calibrations/sentiment/outcomes/import",
        content=ndjson(overconfident(300)),
        headers=NDJSON,
    )
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"calibration": "sentiment", "imported": 300, "outcome_count": 300}
    fitted = cal_client.post("/v1/calibrations/sentiment/fit")
    assert fitted.status_code == 200, fitted.text
    fit = fitted.json()
    assert fit["applied"] and set(fit["candidates"]) == {"temperature", "platt", "isotonic"}
    assert fit["after"]["log_loss"] < fit["before"]["log_loss"]
    assert fit["after"]["ece"] < fit["before"]["ece"]
    assert fit["train_count"] + fit["heldout_count"] == 300
    assert sum(b["count"] for b in fit["reliability_before"]) == fit["heldout_count"]
    assert cal_client.get("/v1/calibrations/sentiment").json()["fit"] == fit
    listed = cal_client.get("/v1/calibrations").json()["calibrations"]
    assert [c["calibration"] for c in listed] == ["sentiment"]
    # the same outcomes give the same fit, under a new version
    again = cal_client.post("/v1/calibrations/sentiment/fit").json()
    assert again["version"] > fit["version"] and again["params"] == fit["params"]
    service = cal_client.app.state.calibration  # type: ignore[attr-defined]
    probs, info = service.calibrate("sentiment", ["negative", "positive"], [0.02, 0.98])
    assert info.applied and info.version == again["version"]
    assert 0.5 < probs[1] < 0.98


def test_fit_that_would_worsen_log_loss_is_kept_off(cal_client: TestClient) -> None:
    cal_client.post("/v1/calibrations/m/outcomes/import", content=ndjson(misleading(200)))
    fit = cal_client.post("/v1/calibrations/m/fit").json()
    assert fit["applied"] is False and fit["reason"].startswith("not applied")
    assert fit["after"]["log_loss"] >= fit["before"]["log_loss"]
    service = cal_client.app.state.calibration  # type: ignore[attr-defined]
    probs, info = service.calibrate("m", ["negative", "positive"], [0.1, 0.9])
    assert probs == [0.1, 0.9] and not info.applied and info.version == fit["version"]


def test_import_is_all_or_nothing(cal_client: TestClient) -> None:
    lines = ndjson(overconfident(5)) + '{"outcome": "positive"}\n'
    response = cal_client.post("/v1/calibrations/x/outcomes/import", content=lines)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("invalid line 6")
    assert cal_client.get("/v1/calibrations/x").status_code == 404


def test_fit_without_outcomes_is_404(cal_client: TestClient) -> None:
    assert cal_client.post("/v1/calibrations/none/fit").status_code == 404


def test_database_down_is_a_typed_503_and_plain_routes_work(fake_upstream: Any) -> None:
    # nothing listens on port 9: the connection is refused at once
    settings = fake_upstream_settings(
        fake_upstream, database_url="postgresql://nobody@127.0.0.1:9/none"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for response in (
            client.get("/v1/calibrations"),
            client.post("/v1/calibrations/t/outcomes", json=outcome_line(0.9, True)),
            client.post("/v1/calibrations/t/fit"),
        ):
            assert response.status_code == 503, response.text
            assert error_type(response) == "calibration_unavailable"
            assert response.headers["retry-after"] == "5"
            assert "nobody" not in response.text
        assert client.get("/healthz").status_code == 200
        assert client.post("/generate/invoke", json=invoke_body("ok")).status_code == 200


def test_routes_need_a_key_like_every_route(fake_upstream: Any, tmp_path: Path) -> None:
    settings = fake_upstream_settings(fake_upstream, data_dir=str(tmp_path), api_keys="k-one,k-two")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        url = "/v1/calibrations/t/outcomes"
        assert client.post(url, json=outcome_line(0.9, True)).status_code == 401
        assert client.get("/v1/calibrations").status_code == 401
        headers = {"Authorization": "Bearer k-two"}
        assert client.post(url, json=outcome_line(0.9, True), headers=headers).status_code == 200


def test_migrations_build_the_declared_tables(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    with database.begin():
        pass
    engine = create_engine(database.url)
    with engine.begin() as conn:
        migrate(conn)  # a second run is a no-op
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    database.dispose()
    assert diff == []
