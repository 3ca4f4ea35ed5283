"""``POST /v1/decisions`` on the service's own port: OpenAI's Decisions API over our engine.

The body and the answer are those of ``client.decisions.create`` (``chains.decide_schema``
mirrors the installed SDK's types), so openai-python, openai-node and langchain-openai's
``OpenAIDecisions`` call it unchanged with ``base_url=<service>/v1``. It sits behind the same
edge as every route (keys, limits, body size, metrics, access log). Errors from here are in
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``; those the edge sends
before the request reaches us (401, 413, 429) keep the service's shape, whose ``message`` and
``type`` the SDKs read the same way.

``model`` is required, as OpenAI requires it, and passed to the upstream: the embedded model
answers to any name (an alias of the served model); an upstream that does not know the name
refuses, and that refusal comes back as a 400 quoting it. Nothing is generated, so
``output_tokens`` is 0 (and so is ``usage.input_tokens`` on the first-token approximation).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from chains.decide import DecisionEngine
from chains.decide_prompt import UnsupportedInputError
from chains.decide_schema import DecideInput, DecisionOutput
from langserve_logprobs.errors import ServiceError, to_service_error

logger = logging.getLogger(__name__)
_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error"}


def _param(loc: Sequence[int | str]) -> str | None:
    """``("questions", 2, "choice", "choices")`` -> ``questions[2].choices`` (union tags out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("predicate", "choice", "score", "str", "list[InputItem]"):
            out += f".{part}" if out else part
    return out or None


def openai_error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """An error in OpenAI's shape."""
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _from_validation(exc: ValidationError) -> JSONResponse:
    first = exc.errors()[0]
    param = _param(first["loc"])
    problems = "; ".join(
        f"{_param(e['loc']) or 'body'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()[:5]
    )
    code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
    return openai_error(400, f"Invalid request: {problems}", param=param, code=code)


def _from_service(error: ServiceError) -> JSONResponse:
    param = error.param if isinstance(error, UnsupportedInputError) else None
    status, code = error.status_code, error.type
    if status == 422:
        status = 400
    response = openai_error(status, error.message, param=param, code=code)
    response.headers.update(error.headers())
    return response


def add_decisions_route(app: FastAPI, engine: DecisionEngine, secrets: Sequence[str]) -> None:
    """Add ``POST /v1/decisions`` answered by ``engine``."""

    @app.post(
        "/v1/decisions",
        tags=["decisions"],
        response_model=DecisionOutput,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": DecideInput.model_json_schema()}},
            }
        },
    )
    async def create_decision(request: Request) -> Any:
        """Answer 1-400 typed questions about one input (OpenAI's Decisions API)."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            return openai_error(400, "The body is not valid JSON.", code="invalid_json")
        if not isinstance(body, dict):
            return openai_error(400, "The body must be a JSON object.", code="invalid_value")
        if not body.get("model"):
            msg = "Missing required parameter: 'model'."
            return openai_error(400, msg, param="model", code="missing_required_parameter")
        try:
            data = DecideInput.model_validate(body)
            return JSONResponse(await engine.decide(data))
        except ValidationError as exc:
            return _from_validation(exc)
        except Exception as exc:  # every failure answers in OpenAI's shape
            error = to_service_error(exc, secrets)
            if type(error) is ServiceError:
                logger.error("POST /v1/decisions failed: %s", type(exc).__name__, exc_info=exc)
            return _from_service(error)
