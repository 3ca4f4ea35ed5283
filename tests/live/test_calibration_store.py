"""Outcomes through the HTTP API of a real uvicorn server, into SQLite and into PostgreSQL.

The PostgreSQL server is started by this test session (``tests.postgres``), not mocked;
under ``CI`` a missing one fails. The app's upstream is never called here (the calibration
routes do not need the model), so the server starts in a second.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from langserve_logprobs.settings import Settings
from server import create_app
from tests.calibration_data import ndjson, overconfident
from tests.postgres import PostgresMissingError, postgres_server
from tests.servers import free_port, run_server

pytestmark = [pytest.mark.live, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of this session (fails under CI when it cannot be had)."""
    try:
        with postgres_server() as server:
            yield server.url
    except PostgresMissingError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a fresh database of each kind (a new PostgreSQL database per test)."""
    fields: dict[str, Any] = {
        "port": free_port(),
        "openai_base_url": "http://127.0.0.1:9/v1",  # never called by these routes
        "openai_api_key": "unused",
        "data_dir": str(tmp_path),
        "_env_file": None,
    }
    if request.param == "postgresql":
        base: str = request.getfixturevalue("postgres_url")
        name = f"t{free_port()}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        fields["database_url"] = base.rsplit("/", 1)[0] + "/" + name
    return Settings(**fields)


def post_outcomes(url: str, name: str, rows: list[dict[str, Any]]) -> list[int]:
    ids = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for row in rows:
            response = client.post(f"/v1/calibrations/{name}/outcomes", json=row)
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
    return ids


def test_200_outcomes_give_the_same_fit_after_a_restart(settings: Settings) -> None:
    rows = overconfident(200, seed=7)
    with run_server(create_app(settings), port=settings.port) as url:
        ids = post_outcomes(url, "sentiment", rows)
        assert len(set(ids)) == 200
        fit = httpx.post(f"{url}/v1/calibrations/sentiment/fit", timeout=60).json()
        assert fit["outcome_count"] == 200 and fit["applied"], fit
        assert fit["after"]["log_loss"] < fit["before"]["log_loss"]
    with run_server(create_app(settings), port=settings.port) as url:
        state = httpx.get(f"{url}/v1/calibrations/sentiment", timeout=60).json()
        assert state["outcome_count"] == 200
        assert state["fit"] == fit
        refit = httpx.post(f"{url}/v1/calibrations/sentiment/fit", timeout=60).json()
    assert refit["version"] > fit["version"]
    for field in ("method", "params", "before", "after", "train_count", "reliability_after"):
        assert refit[field] == fit[field], field


def test_two_concurrent_writers_lose_nothing(settings: Settings) -> None:
    writers = {name: overconfident(500, seed=i) for i, name in enumerate(("a", "b"))}
    ids: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    with run_server(create_app(settings), port=settings.port) as url:

        def write(name: str) -> None:
            try:
                ids[name] = post_outcomes(url, "shared", writers[name])
            except BaseException as exc:  # reported below: a thread's assert is lost otherwise
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(name,)) for name in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        state = httpx.get(f"{url}/v1/calibrations/shared", timeout=60).json()
        # and two bulk imports at once, 500 lines each
        bulk: list[httpx.Response] = []

        def load(seed: int) -> None:
            body = ndjson(overconfident(500, seed=seed))
            bulk.append(httpx.post(f"{url}/v1/calibrations/bulk/outcomes/import", content=body,
                                   timeout=120))  # fmt: skip

        loaders = [threading.Thread(target=load, args=(s,)) for s in (10, 11)]
        for thread in loaders:
            thread.start()
        for thread in loaders:
            thread.join()
        counted = httpx.get(f"{url}/v1/calibrations/bulk", timeout=60).json()["outcome_count"]
    assert state["outcome_count"] == 1000
    assert len(set(ids["a"]) | set(ids["b"])) == 1000
    assert [r.status_code for r in bulk] == [200, 200], [r.text for r in bulk]
    assert counted == 1000
