"""Unit tests of chains.extract: schema checks, per-leaf confidence of recorded answers
(nested objects, arrays, numbers, booleans, null, escapes, a split emoji, a ``blue",``
token), upstream answers that break the schema, and the chain's request.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from chains.extract import (
    Extract,
    ExtractInput,
    check_schema,
    extract_output,
    leaf_pointers,
    strict_compatible,
)
from langserve_logprobs.errors import InvalidRequestError, UpstreamError
from tests.helpers import RecordedChat, recorded

ITEM = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "number"},
        "in_stock": {"type": "boolean"},
    },
    "required": ["name", "price", "in_stock"],
}
NESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
        },
        "items": {"type": "array", "items": ITEM},
        "color": {"type": "string", "enum": ["red", "blue", "green"]},
        "note": {"type": ["string", "null"]},
        "quote": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "items"],
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def nested_logprobs(*tokens: str) -> float:
    """Summed logprob of the one run of consecutive ``tokens`` in extract_nested.json."""
    content = recorded("extract_nested.json").response_metadata["logprobs"]["content"]
    names = [entry["token"] for entry in content]
    n = len(tokens)
    starts = [i for i in range(len(names)) if names[i : i + n] == list(tokens)]
    assert len(starts) == 1, starts
    return math.fsum(entry["logprob"] for entry in content[starts[0] : starts[0] + n])


def test_nested_answer_scores_every_leaf_once() -> None:
    out = extract_output(recorded("extract_nested.json"), NESTED_SCHEMA)
    assert out["data"]["name"] == "Zoë 😀"
    assert out["data"]["quote"] == 'say "hi"\n'
    assert out["data"]["items"][1] == {"name": "ink", "price": 12, "in_stock": False}
    assert list(out["confidence"]) == leaf_pointers(out["data"])
    assert set(out["confidence"]) == {
        "/name", "/address/city", "/address/zip", "/items/0/name", "/items/0/price",
        "/items/0/in_stock", "/items/1/name", "/items/1/price", "/items/1/in_stock",
        "/color", "/note", "/quote", "/tags",
    }  # fmt: skip
    for leaf in out["confidence"].values():
        assert 0.0 <= leaf["prob"] <= 1.0
        assert leaf["prob"] == pytest.approx(math.exp(leaf["logprob"]))
    probs = [leaf["prob"] for leaf in out["confidence"].values()]
    assert out["min_prob"] == min(probs)
    assert out["model"] == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [
        pytest.param(
            "/name",
            ["Zo", "ë", " ", "bytes:\\xf0\\x9f", "bytes:\\x98\\x80", '",'],
            id="emoji-split-over-two-tokens",
        ),
        pytest.param("/color", ['blue",'], id="value-glued-to-delimiter"),
        pytest.param("/address/zip", ["750", "01", '"},'], id="string-over-tokens-in-object"),
        pytest.param("/items/0/price", ["1", ".", "5"], id="float-over-three-tokens"),
        pytest.param("/items/1/price", ["12"], id="integer"),
        pytest.param("/items/1/in_stock", [" false"], id="boolean"),
        pytest.param("/note", [" null"], id="null"),
        pytest.param("/quote", ["say", ' \\"', "hi", '\\"\\n', '",'], id="escaped-string"),
        pytest.param("/tags", [" []"], id="empty-array"),
    ],
)
def test_leaf_confidence(pointer: str, tokens: list[str]) -> None:
    leaf = extract_output(recorded("extract_nested.json"), NESTED_SCHEMA)["confidence"][pointer]
    assert leaf["num_tokens"] == len(tokens)
    assert leaf["logprob"] == pytest.approx(nested_logprobs(*tokens))


def test_min_prob_is_the_weakest_leaf() -> None:
    out = extract_output(recorded("extract_nested.json"), NESTED_SCHEMA)
    assert out["min_prob"] == pytest.approx(out["confidence"]["/quote"]["prob"])


@pytest.mark.parametrize(
    ("message", "schema", "match"),
    [
        pytest.param(recorded("extract_off_schema.json"), PERSON, "not of type", id="off-schema"),
        pytest.param(recorded("extract_truncated.json"), PERSON, "max_tokens", id="truncated"),
        pytest.param(AIMessage(content='{"name": "Ada"}'), PERSON, "no logprobs", id="no-logprobs"),
        pytest.param(
            recorded("extract_nested.json").model_copy(update={"content": "{}"}),
            NESTED_SCHEMA,
            "do not spell",
            id="tokens-differ-from-text",
        ),
    ],
)
def test_unusable_answers_are_upstream_errors(
    message: AIMessage, schema: dict[str, Any], match: str
) -> None:
    with pytest.raises(UpstreamError, match=match):
        extract_output(message, schema)


def test_answer_that_is_not_json_is_an_upstream_error() -> None:
    text = "Sure! name: Ada"
    tokens = [{"token": text, "logprob": -0.1, "bytes": list(text.encode()), "top_logprobs": []}]
    message = AIMessage(content=text, response_metadata={"logprobs": {"content": tokens}})
    with pytest.raises(UpstreamError, match="not valid JSON"):
        extract_output(message, PERSON)


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        pytest.param({"type": "array", "items": {}}, "root must be an object", id="array"),
        pytest.param({"properties": {"a": {}}}, "root must be an object", id="no-type"),
        pytest.param({"type": ["object", "null"]}, "root must be an object", id="nullable"),
        pytest.param({"type": "objekt"}, "not a valid JSON Schema", id="unknown-type"),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": 5}}},
            "not a valid JSON Schema",
            id="bad-nested-type",
        ),
        pytest.param({"type": "object", "required": "a"}, "not a valid JSON Schema", id="required"),
    ],
)
def test_bad_schemas_are_invalid_requests(schema: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=f"schema: .*{match}"):
        check_schema(schema)


@pytest.mark.parametrize(
    ("schema", "strict"),
    [
        pytest.param(PERSON, True, id="closed-object"),
        pytest.param({**PERSON, "required": ["name"]}, False, id="optional-property"),
        pytest.param({**PERSON, "additionalProperties": True}, False, id="open-object"),
        pytest.param(NESTED_SCHEMA, False, id="nested-open"),
        pytest.param(
            {**PERSON, "properties": {**PERSON["properties"], "age": {"oneOf": [{}, {}]}}},  # type: ignore[dict-item]
            False,
            id="unsupported-keyword",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"xs": {"type": "array", "items": {**PERSON, "required": []}}},
                "required": ["xs"],
                "additionalProperties": False,
            },
            False,
            id="open-object-in-array",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"type": {"type": "string"}, "allOf": {"$ref": "#/$defs/p"}},
                "required": ["type", "allOf"],
                "additionalProperties": False,
                "$defs": {"p": PERSON},
            },
            True,
            id="keyword-like-property-names-and-defs",
        ),
        pytest.param(
            {**PERSON, "$defs": {"p": {**PERSON, "additionalProperties": True}}},
            False,
            id="open-object-in-defs",
        ),
        pytest.param(
            {
                **PERSON,
                "properties": {
                    **PERSON["properties"],  # type: ignore[dict-item]
                    "name": {"anyOf": [{"type": "null"}, {"type": "object"}]},
                },
            },
            False,
            id="open-object-in-anyof",
        ),
    ],
)
def test_strict_only_when_the_schema_qualifies(schema: dict[str, Any], strict: bool) -> None:
    assert strict_compatible(schema) is strict


def test_unresolvable_ref_is_an_invalid_request() -> None:
    schema = {"type": "object", "properties": {"name": {"$ref": "https://example.com/a.json"}}}
    with pytest.raises(InvalidRequestError, match="schema: cannot resolve"):
        extract_output(recorded("extract_nested.json"), schema)


def test_leaf_pointers_escape_keys() -> None:
    data = {"a/b": {"c~d": [1, {}, []]}, "e": None}
    assert leaf_pointers(data) == ["/a~1b/c~0d/0", "/a~1b/c~0d/1", "/a~1b/c~0d/2", "/e"]
    assert leaf_pointers({}) == [""]


def test_wire_name_of_the_schema_field() -> None:
    assert ExtractInput.model_validate({"text": "t", "schema": PERSON}).json_schema == PERSON
    assert ExtractInput.model_validate({"text": "t", "json_schema": PERSON}).json_schema == PERSON
    assert "schema" in ExtractInput.model_json_schema()["properties"]


async def test_chain_sends_the_schema_in_extra_body_and_streams_one_event() -> None:
    model = RecordedChat(message=recorded("extract_nested.json"))
    chain = Extract(model=model, max_prompt_chars=5000)
    value = {"text": "Zoë ordered a pen and ink.", "schema": NESTED_SCHEMA, "instructions": "Hi"}
    out = await chain.ainvoke(value)
    assert out["data"]["color"] == "blue"
    spec = model.calls[0]["extra_body"]["response_format"]["json_schema"]
    assert spec == {"name": "extraction", "schema": NESTED_SCHEMA, "strict": False}
    prompt = model.calls[0]["messages"][0].content
    assert json.dumps(NESTED_SCHEMA) in prompt and "Zoë ordered" in prompt and "Hi" in prompt
    assert [event async for event in chain.astream(value)] == [out]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param({"text": "x", "schema": {"type": "string"}}, "schema", id="string-schema"),
        pytest.param({"text": "x"}, "schema", id="missing-schema"),
        pytest.param({"text": "x" * 5000, "schema": PERSON}, "input", id="too-long"),
    ],
)
def test_invalid_inputs(value: dict[str, Any], field: str) -> None:
    chain = Extract(model=RecordedChat(message=AIMessage(content="")), max_prompt_chars=5000)
    with pytest.raises(InvalidRequestError, match=field):
        chain.invoke(value)
