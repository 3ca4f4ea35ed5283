"""FastAPI's 422 answer echoes the offending input; ours names the field and the problem.

Upstream behaviour (fastapi): ``RequestValidationError`` is answered with
``{"detail": [{"loc", "msg", "type", "input", ...}]}``: the input may be ``inf``/``NaN`` (not
JSON: the answer itself then fails) or a whole prompt of megabytes sent straight back.

Correction: ``invalid_input`` is the 422 ``invalid_input`` answer (``{"error": {...},
"detail": [{"loc", "msg", "type"}]}``, never the input), and ``validation_error`` the
handler that gives it for FastAPI's and LangServe's request checks.

Delete when: FastAPI stops echoing the input (the canary
``test_fastapi_422_echoes_the_input`` fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from langserve_logprobs.errors import InvalidInputError


def _problem(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{loc or 'body'}: {error.get('msg', 'invalid')}"


def invalid_input(errors: Sequence[Any]) -> JSONResponse:
    """The 422 ``invalid_input`` answer: problems named by field, never the input itself."""
    problems = [_problem(e) for e in errors]
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        if isinstance(e, dict)
        else {"loc": [], "msg": str(e), "type": "invalid"}
        for e in errors
    ]
    error = InvalidInputError("; ".join(problems) or "invalid request")
    return JSONResponse({"error": error.to_dict(), "detail": detail}, status_code=error.status_code)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """The exception handler for ``RequestValidationError``: ``invalid_input``."""
    return invalid_input(exc.errors() if isinstance(exc, RequestValidationError) else [])
