"""``/extract``: fields pulled out of a text as JSON following your schema, each leaf scored.

The model answers under ``response_format`` ``json_schema`` with the schema you send
(grammar-constrained decoding on the embedded model, structured outputs on OpenAI), and
``data`` is checked against that schema with ``jsonschema``: an upstream that returns
invalid JSON, or JSON that does not follow the schema, is an ``upstream_error`` (502).

Each leaf of ``data`` (string, number, true/false/null, empty array or object) gets the
summed logprob of exactly the tokens that wrote it, aligned by bytes
(``chains.json_confidence``): a string leaf covers its content and closing quote, a token
such as ``blue",`` still counts for ``blue``, both halves of a split emoji count for their
string. Keys are JSON Pointers (``/name``, ``/items/0/price``).

Caveats: a leaf's probability is the joint probability of its tokens, so a long string
scores lower than a short one: it says how sure the model was of that exact text, not
whether it is true. The logprobs are the upstream's; the embedded model reports its raw
distribution before the grammar mask, so a forced token can have a low probability.
``strict`` is sent true only when the schema already meets OpenAI's strict rules (every
object lists all its properties in ``required`` and sets ``additionalProperties: false``).
Generation defaults to temperature 0.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import SchemaError, best_match
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ConfigDict, Field
from referencing.exceptions import Unresolvable

from chains.json_confidence import LeafConfidence, leaf_confidences, min_leaf_prob
from chains.model import configurable_chat_model
from chains.runnable import OptionalText, check_prompt_size
from chains.structured import JsonAnswerChain, Prepared, read_answer, response_format
from langserve_logprobs.errors import InvalidRequestError, UpstreamError
from langserve_logprobs.knobs import MODEL_KNOBS, knobs_model
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream

SCHEMA_NAME = "extraction"
# Keywords OpenAI's strict mode rejects; a schema using one is sent with strict false.
_NOT_STRICT = frozenset(
    "allOf oneOf not if then else patternProperties dependentRequired dependentSchemas "
    "unevaluatedProperties propertyNames minProperties maxProperties contains uniqueItems "
    "prefixItems".split()
)


class ExtractInput(BaseModel):
    """A text and the JSON Schema (of an object) of what to extract from it."""

    model_config = ConfigDict(populate_by_name=True)

    text: str = Field(description="The text to extract from.")
    json_schema: dict[str, Any] = Field(
        alias="schema",
        description='JSON Schema of the answer; its root must be "type": "object".',
    )
    instructions: OptionalText = Field(
        default=None, description="Optional extra guidance for the model (what to look for)."
    )


class ExtractOutput(BaseModel):
    """The extracted object and how sure the model was of each of its leaves."""

    data: dict[str, Any] = Field(description="The extracted object, valid against the schema.")
    confidence: dict[str, LeafConfidence] = Field(
        description="One entry per leaf of data (strings, numbers, booleans, nulls, empty "
        "arrays/objects), keyed by JSON Pointer (e.g. /name, /items/0/price): the summed "
        "logprob of exactly the tokens whose bytes overlap the leaf, its exp as prob, and how "
        "many tokens that is. A string's tokens include its closing quote. prob is a joint "
        "probability, so long values score lower than short ones."
    )
    min_prob: float | None = Field(
        description="Lowest leaf prob: the field the model was least sure of; null if none known."
    )
    model: str | None = Field(description="The model that answered, as the upstream named it.")
    constrained: bool = Field(
        default=True,
        description="True when the upstream decoded the answer under the schema (json_schema, "
        "or json_object with a schema); false when it has no structured output and the "
        "answer was only asked for in the prompt and validated afterwards.",
    )


def strict_compatible(schema: Any) -> bool:
    """True if OpenAI's strict mode accepts ``schema`` unchanged.

    Every object schema must list all its properties in ``required`` and set
    ``additionalProperties`` to false, and no keyword strict mode rejects may appear.
    """
    if not isinstance(schema, dict):
        return True
    if _NOT_STRICT.intersection(schema):
        return False
    properties = schema.get("properties", {})
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False or not isinstance(properties, dict):
            return False
        if set(schema.get("required", [])) != set(properties):
            return False
    children = [schema.get("items"), *schema.get("anyOf", [])]
    for key in ("properties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            children.extend(schema[key].values())
    return all(strict_compatible(child) for child in children)


def check_schema(schema: dict[str, Any]) -> None:
    """Reject what is not a valid JSON Schema of an object.

    Raises:
        InvalidRequestError: naming ``schema`` and the problem.
    """
    validator = validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        msg = f"schema: not a valid JSON Schema ({exc.message}{f' at {where}' if where else ''})"
        raise InvalidRequestError(msg) from None
    kind = schema.get("type")
    if kind != "object":
        msg = f'schema: the root must be an object schema ("type": "object"), got type {kind!r}'
        raise InvalidRequestError(msg)


def check_data(data: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` if it follows ``schema``.

    Raises:
        UpstreamError: the model's answer does not follow the schema.
        InvalidRequestError: the schema holds a ``$ref`` that cannot be resolved.
    """
    try:
        error = best_match(validators.validator_for(schema)(schema).iter_errors(data))
    except Unresolvable as exc:  # remote $refs are never fetched
        msg = f"schema: cannot resolve {exc}"
        raise InvalidRequestError(msg) from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        msg = f"the model's answer does not follow the schema: {error.message} at /{where}"
        raise UpstreamError(msg)
    if not isinstance(data, dict):
        msg = "the model's answer is not a JSON object"
        raise UpstreamError(msg)
    return data


def extract_output(message: BaseMessage, schema: dict[str, Any]) -> dict[str, Any]:
    """Turn the model's answer into an ExtractOutput (as a dict).

    Raises:
        UpstreamError: the answer is not valid JSON following ``schema``.
    """
    answer = read_answer(message)
    try:
        data = json.loads(answer.raw)
        confidence = leaf_confidences(answer.tokens)
    except ValueError as exc:
        msg = f"the model's answer is not valid JSON ({exc})"
        raise UpstreamError(msg) from None
    data = check_data(data, schema)
    # With a duplicated key the scanner also scores the overridden value: keep data's leaves.
    leaves = set(leaf_pointers(data))
    confidence = {pointer: c for pointer, c in confidence.items() if pointer in leaves}
    output = ExtractOutput(
        data=data,
        confidence=confidence,
        min_prob=min_leaf_prob(confidence),
        model=answer.model,
        constrained=answer.constrained,
    )
    return output.model_dump()


def leaf_pointers(data: Any, pointer: str = "") -> list[str]:
    """JSON Pointers of the leaves of ``data``: scalars and empty arrays/objects."""
    if isinstance(data, dict) and data:
        keys = ((str(k).replace("~", "~0").replace("/", "~1"), v) for k, v in data.items())
        return [leaf for key, v in keys for leaf in leaf_pointers(v, f"{pointer}/{key}")]
    if isinstance(data, list) and data:
        return [leaf for i, v in enumerate(data) for leaf in leaf_pointers(v, f"{pointer}/{i}")]
    return [pointer]


def extract_prompt(data: ExtractInput) -> str:
    """The user message asking for the JSON object."""
    schema = json.dumps(data.json_schema, ensure_ascii=False)
    extra = f"\n{data.instructions.strip()}\n" if data.instructions else ""
    return (
        "Extract the information asked for from the text below, as one JSON object that "
        f"follows this JSON Schema:\n{schema}\n{extra}\n"
        f'Text:\n"""\n{data.text}\n"""\n\n'
        "Answer with the JSON object only."
    )


class Extract(JsonAnswerChain):
    """Extracts a JSON object from a text and scores each of its leaves."""

    input_model = ExtractInput

    def _prepare(self, data: ExtractInput) -> Prepared:
        check_schema(data.json_schema)
        schema_text = json.dumps(data.json_schema, ensure_ascii=False)
        check_prompt_size(self.max_prompt_chars, data.text, data.instructions, schema_text)
        schema = data.json_schema
        return Prepared(
            messages=[HumanMessage(content=extract_prompt(data))],
            response_format=response_format(SCHEMA_NAME, schema, strict=strict_compatible(schema)),
            finish=lambda message: extract_output(message, schema),
        )


def build_chain(settings: Settings, upstream: Upstream) -> Runnable[Any, Any]:
    """The /extract chain: configurable model knobs, temperature 0 by default."""
    knobs = knobs_model(settings, "ExtractKnobs", MODEL_KNOBS, temperature=0.0)
    chain = Extract(
        model=configurable_chat_model(settings, upstream, knobs),
        knobs=knobs,
        max_prompt_chars=settings.max_prompt_chars,
    )
    return chain.with_types(input_type=ExtractInput, output_type=ExtractOutput)
