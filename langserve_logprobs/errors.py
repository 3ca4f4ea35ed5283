"""The service's errors: a small hierarchy, each class mapped to one HTTP status.

    ServiceError (500 server_error)
    ├── InvalidRequestError (400 invalid_request)
    │   ├── InvalidInputError (422 invalid_input)
    │   ├── ContextLengthExceededError (400 context_length_exceeded)
    │   ├── PayloadTooLargeError (413 payload_too_large)
    │   ├── NotFoundError (404 not_found)
    │   └── ConflictError (409 conflict)
    ├── UnauthorizedError (401 unauthorized)
    ├── TooManyRequestsError (429 too_many_requests, Retry-After)
    ├── CalibrationUnavailableError (503 calibration_unavailable, Retry-After)
    └── UpstreamError (502 upstream_error)
        ├── UpstreamAuthError (502 upstream_auth)
        ├── UpstreamUnavailableError (503 upstream_unavailable)
        ├── UpstreamTimeoutError (504 upstream_timeout)
        └── UpstreamRateLimitError (429 rate_limited)

Messages are safe to show to a client: they never hold a stack trace or a secret.
``to_service_error`` turns anything raised while serving (openai SDK errors, httpx
errors, our own) into one of these. Every error reaches the client in one shape,
``ErrorInfo`` (``{"type", "message", "status_code"}``): as ``{"error": ...}`` in a
response body, as the data of an SSE ``error`` event, or as a failed batch item
(``ItemError``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TypeVar

import httpx
import openai
from pydantic import BaseModel, Field, ValidationError

_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+\S+)")
_Model = TypeVar("_Model", bound=BaseModel)


class ErrorInfo(BaseModel):
    """A typed, safe description of what went wrong."""

    type: str = Field(description="Error kind, e.g. invalid_request, upstream_timeout.")
    message: str = Field(description="What went wrong, safe to show to a user.")
    status_code: int = Field(description="The HTTP status this error maps to.")


class ItemError(BaseModel):
    """In a batch, the output of an item that failed (the other items are unaffected)."""

    error: ErrorInfo = Field(description="Why this item failed.")


class ServiceError(Exception):
    """Base of every error the service reports to clients."""

    status_code = 500
    type = "server_error"

    def __init__(self, message: str, *, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def info(self) -> ErrorInfo:
        """The client-facing description: type, message and status code."""
        return ErrorInfo(type=self.type, message=self.message, status_code=self.status_code)

    def to_dict(self) -> dict[str, Any]:
        """``info()`` as JSON-ready data."""
        return self.info().model_dump()

    def headers(self) -> dict[str, str]:
        """Headers to send with the error response."""
        return {"Retry-After": self.retry_after} if self.retry_after else {}


class InvalidRequestError(ServiceError):
    """The request itself is wrong: a bad field, value or size."""

    status_code = 400
    type = "invalid_request"


class InvalidInputError(InvalidRequestError):
    """The request body does not match the route's schema (FastAPI/LangServe checks)."""

    status_code = 422
    type = "invalid_input"


class ContextLengthExceededError(InvalidRequestError):
    """The prompt does not fit in the model's context window."""

    type = "context_length_exceeded"


class PayloadTooLargeError(InvalidRequestError):
    """The request body is larger than ``LOGPROBS_MAX_BODY_BYTES``."""

    status_code = 413
    type = "payload_too_large"


class NotFoundError(InvalidRequestError):
    """The request names something that does not exist (a decision id, a calibration)."""

    status_code = 404
    type = "not_found"


class ConflictError(InvalidRequestError):
    """The request repeats something recorded once only (an outcome of the same answer)."""

    status_code = 409
    type = "conflict"


class UnauthorizedError(ServiceError):
    """No API key, or not one of ``LOGPROBS_API_KEYS`` (the key is never echoed)."""

    status_code = 401
    type = "unauthorized"


class TooManyRequestsError(ServiceError):
    """This client is over its own limit (requests in flight or per minute)."""

    status_code = 429
    type = "too_many_requests"


class CalibrationUnavailableError(ServiceError):
    """The calibration database cannot be reached; the plain routes keep working."""

    status_code = 503
    type = "calibration_unavailable"


class UpstreamError(ServiceError):
    """The model server failed or answered something unusable."""

    status_code = 502
    type = "upstream_error"


class UpstreamAuthError(UpstreamError):
    """The model server refused our credentials."""

    type = "upstream_auth"


class UpstreamUnavailableError(UpstreamError):
    """The model server could not be reached or is overloaded."""

    status_code = 503
    type = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    """The model server did not answer in time."""

    status_code = 504
    type = "upstream_timeout"


class UpstreamRateLimitError(UpstreamError):
    """The model server is rate limiting us; retry after a while."""

    status_code = 429
    type = "rate_limited"


def invalid_input(exc: ValidationError, what: str = "input") -> InvalidRequestError:
    """An InvalidRequestError naming each field of ``exc`` and its problem."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}" for err in exc.errors()
    )
    return InvalidRequestError(f"invalid {what}: {problems}")


def validated(model: type[_Model], value: Any, what: str = "input") -> _Model:
    """``model.model_validate(value)``, or an InvalidRequestError (400) naming the fields.

    Our own checks (a chain's input called directly, a config value) are 400
    ``invalid_request``; the 422 ``invalid_input`` is for bodies FastAPI/LangServe reject.
    """
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise invalid_input(exc, what) from None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove API keys (known ones and anything shaped like one) from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    try:
        data = json.loads(exc.response.text)
        return str(data["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"status {exc.status_code}"


def _is_context_length(exc: openai.APIStatusError, message: str) -> bool:
    code = getattr(exc, "code", None)
    return code == "context_length_exceeded" or "context length" in message.lower()


def to_service_error(exc: BaseException, secrets: Iterable[str] = ()) -> ServiceError:
    """Map any exception raised while serving to a typed, safe ``ServiceError``.

    Args:
        exc: what was raised.
        secrets: strings (API keys) that must never appear in the message.

    Returns:
        The ``ServiceError`` to report; ``exc`` itself if it already is one.
    """
    secrets = list(secrets)
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, UnicodeDecodeError):
        return InvalidRequestError("body: not valid UTF-8")
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return UpstreamTimeoutError("the model server did not answer in time")
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError):
        return UpstreamUnavailableError("the model server is unreachable (connection failed)")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = redact(_upstream_message(exc), secrets)
        if status in (401, 403):
            return UpstreamAuthError("upstream rejected the API key")
        if status == 429:
            retry_after = exc.response.headers.get("retry-after")
            return UpstreamRateLimitError(
                f"the model server is rate limiting requests: {message}", retry_after=retry_after
            )
        if status in (400, 404, 413, 422):
            if _is_context_length(exc, message):
                return ContextLengthExceededError(f"the prompt is too long: {message}")
            return InvalidRequestError(f"the model server rejected the request: {message}")
        if status in (502, 503, 529):
            return UpstreamUnavailableError(f"the model server is unavailable: {message}")
        if status == 504:
            return UpstreamTimeoutError(f"the model server timed out: {message}")
        return UpstreamError(f"the model server failed with status {status}: {message}")
    if isinstance(exc, ValueError) and "No generations found in stream" in str(exc):
        # langchain's words for a stream that ended without a single readable chunk
        return UpstreamError("the model server sent an empty or unreadable stream")
    if isinstance(exc, openai.OpenAIError | json.JSONDecodeError):
        return UpstreamError("the model server sent a response that could not be read")
    return ServiceError("internal error while serving the request")
