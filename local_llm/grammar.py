"""``response_format`` -> llama.cpp GBNF grammar text.

``json_object`` uses llama.cpp's generic JSON grammar; ``json_schema`` goes through the
schema-to-GBNF converter shipped with llama-cpp-python, cached by the schema's canonical JSON.
The engine checks the grammar text once more against the vocabulary (``check_grammar``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from local_llm.errors import BadRequestError
from local_llm.protocol import ResponseFormat, ResponseFormatJsonObject, ResponseFormatText

SCHEMA_PARAM = "response_format.json_schema.schema"
_MAX_DETAIL = 200


def grammar_for(response_format: ResponseFormat | None) -> str | None:
    """Return the GBNF grammar that enforces ``response_format``, or None for free text.

    Raises:
        BadRequestError: the JSON schema cannot be turned into a grammar.
    """
    if response_format is None or isinstance(response_format, ResponseFormatText):
        return None
    if isinstance(response_format, ResponseFormatJsonObject):
        from llama_cpp.llama_grammar import JSON_GBNF

        return JSON_GBNF
    return schema_grammar(response_format.json_schema.schema_ or {})


def schema_grammar(schema: dict[str, Any]) -> str:
    """Convert a JSON schema to GBNF (cached by canonical schema text).

    Raises:
        BadRequestError: naming ``response_format.json_schema.schema``.
    """
    try:
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        msg = f"Invalid '{SCHEMA_PARAM}': not serializable as JSON ({exc})."
        raise BadRequestError(msg, param=SCHEMA_PARAM) from exc
    return _convert(key)


@lru_cache(maxsize=128)
def _convert(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = str(json_schema_to_gbnf(schema_json))
    except Exception as exc:  # the converter signals bad schemas with asserts and KeyErrors
        detail = str(exc)[:_MAX_DETAIL] or type(exc).__name__
        msg = f"Invalid '{SCHEMA_PARAM}': unsupported JSON schema ({detail})."
        raise BadRequestError(msg, param=SCHEMA_PARAM) from exc
    return _end_at_the_value(_json_string_chars(grammar))


# The converter's string character: anything but a quote or a backslash, raw control characters
# included, which JSON forbids (a raw newline in a string made a reply no JSON parser accepts).
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _json_string_chars(grammar: str) -> str:
    """Make the grammar's string characters JSON's: no raw control characters."""
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR)


def _end_at_the_value(grammar: str) -> str:
    """Drop the optional space the converter allows after the root value.

    With it, a small model often spends one more token (a space it finds very unlikely,
    logprob around -12) before the end: the reply ends with junk and a misleading logprob.
    Without it, the only thing allowed after the value is the end of the reply.
    """
    lines = grammar.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("root ::= ") and line.endswith(" space"):
            lines[i] = line.removesuffix(" space")
    return "\n".join(lines) + ("\n" if grammar.endswith("\n") else "")
