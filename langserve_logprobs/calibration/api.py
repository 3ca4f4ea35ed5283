"""The ``/v1/calibrations`` routes: record outcomes, import them, fit, read the fits.

Behind the same edge as every route (API keys, limits, body size). Each handler is a plain
function (FastAPI runs it in its thread pool, so the database calls never block the event
loop); a database that is down answers 503 ``calibration_unavailable``.

* ``GET  /v1/calibrations``: every name, its outcome count and newest fit (the UI's tab).
* ``GET  /v1/calibrations/{name}``: one name.
* ``POST /v1/calibrations/{name}/outcomes``: one outcome (``OutcomeIn``).
* ``POST /v1/calibrations/{name}/outcomes/import``: JSON lines, one ``OutcomeIn`` a line.
* ``POST /v1/calibrations/{name}/fit``: fit on the outcomes so far; the answer says whether
  the fit is applied and its held-out figures.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Request
from starlette.concurrency import run_in_threadpool

from langserve_logprobs.calibration.db import Database, database_url
from langserve_logprobs.calibration.schemas import (
    NAME_PATTERN,
    CalibrationFit,
    CalibrationList,
    CalibrationState,
    ImportResult,
    OutcomeIn,
    OutcomeRecorded,
)
from langserve_logprobs.calibration.service import CalibrationService
from langserve_logprobs.calibration.store import CalibrationStore
from langserve_logprobs.errors import InvalidRequestError
from langserve_logprobs.settings import Settings

PREFIX = "/v1/calibrations"
Name = Annotated[str, Path(pattern=NAME_PATTERN, description="The calibration name.")]


def build_service(settings: Settings) -> CalibrationService:
    """The service over the configured database (nothing is opened until first use)."""
    return CalibrationService(CalibrationStore(Database(database_url(settings))))


def add_calibration_routes(app: FastAPI, service: CalibrationService) -> None:
    """Add the calibration routes over ``service`` to ``app`` (plain routes, so that every
    check that walks ``app.routes``, the key test among them, sees them)."""
    api = APIRouter(prefix=PREFIX, tags=["calibration"])

    @api.get("")
    def list_calibrations() -> CalibrationList:
        """Every calibration name with its outcome count and newest fit."""
        return service.overview()

    @api.get("/{name}")
    def get_calibration(name: Name) -> CalibrationState:
        """A calibration name's outcome count and newest fit (404 if it has neither)."""
        return service.state(name)

    @api.post("/{name}/outcomes")
    def record_outcome(name: Name, outcome: OutcomeIn) -> OutcomeRecorded:
        """Record which value turned out right for an answer (by decision id, or given)."""
        return service.record(name, outcome)

    @api.post(
        "/{name}/outcomes/import",
        openapi_extra={
            "requestBody": {
                # any content type is read as JSON lines (application/x-ndjson, text/plain)
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "required": True,
            }
        },
    )
    async def import_outcomes(name: Name, request: Request) -> ImportResult:
        """Record many outcomes: JSON lines, one outcome a line; all are stored or none."""
        body = await request.body()
        try:
            lines = body.decode("utf-8")
        except UnicodeDecodeError:
            msg = "body: not valid UTF-8"
            raise InvalidRequestError(msg) from None
        return await run_in_threadpool(service.import_lines, name, lines)

    @api.post("/{name}/fit")
    def fit_calibration(name: Name) -> CalibrationFit:
        """Fit on the outcomes so far; held-out figures; applied only if log loss improves."""
        return service.fit(name)

    for route in api.routes:
        app.router.routes.append(route)


def install_calibration(app: FastAPI, settings: Settings) -> CalibrationService:
    """Add the routes to ``app``; the service is also kept at ``app.state.calibration``."""
    service = build_service(settings)
    app.state.calibration = service
    add_calibration_routes(app, service)
    return service
