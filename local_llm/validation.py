"""Raw request body -> ``ChatCompletionRequest``, with OpenAI-style 400 errors naming the field.

The body is parsed here rather than by FastAPI so every problem (bad UTF-8, bad JSON, wrong
types, cross-field rules) becomes one ``BadRequestError`` with ``param`` set, never a 422.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from local_llm.errors import BadRequestError
from local_llm.protocol import ChatCompletionRequest

_RESPONSE_FORMAT_TAGS = frozenset({"text", "json_object", "json_schema"})
_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """Validate a JSON body as a chat completion request.

    Raises:
        BadRequestError: with ``param`` naming the offending field when there is one.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"The request body is not valid UTF-8 (byte {exc.start})."
        raise BadRequestError(msg) from exc
    try:
        request = ChatCompletionRequest.model_validate_json(text)
    except ValidationError as exc:
        raise _to_request_error(exc) from None
    request.check()
    return request


def param_from_loc(loc: tuple[int | str, ...]) -> str | None:
    """``("messages", 0, "role")`` -> ``"messages[0].role"``, leaving out union-member tags."""
    out = ""
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif not _is_union_tag(item, previous):
            out += f".{item}" if out else item
        previous = item
    return out or None


def _is_union_tag(item: str, previous: int | str | None) -> bool:
    if previous == "response_format" and item in _RESPONSE_FORMAT_TAGS:
        return True
    return "[" in item or item in _SCALAR_TAGS or item[:1].isupper()


def _to_request_error(exc: ValidationError) -> BadRequestError:
    errors = exc.errors(include_url=False)
    # With unions pydantic reports every member; the deepest error is the most specific.
    best = max(errors, key=lambda e: len(param_from_loc(e["loc"]) or ""))
    param = param_from_loc(best["loc"])
    return BadRequestError(_message(best, param), param=param)


def _message(error: ErrorDetails, param: str | None) -> str:
    kind = error["type"]
    if kind == "json_invalid":
        return f"The request body is not valid JSON: {error['msg']}."
    if param is None:
        return f"The request body must be a JSON object: {error['msg']}."
    if kind == "missing":
        return f"Missing required parameter: '{param}'."
    detail: Any = error["msg"]
    return f"Invalid '{param}': {detail}."
