"""The schemas a route publishes are ones LangServe's playgrounds can use."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from langserve_logprobs.playground_schema import for_playground, published


def test_null_defaults_and_null_branches_go() -> None:
    schema: dict[str, Any] = {
        "properties": {
            "system": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "tags": {"type": "array", "items": {"type": "string"}, "default": None},
            "keep": {"type": "integer", "default": 3},
        }
    }
    props = for_playground(schema)["properties"]
    assert props["system"] == {"type": "string"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["keep"] == {"type": "integer", "default": 3}
    assert schema["properties"]["tags"]["default"] is None  # the input is not changed


def test_a_union_with_null_keeps_its_other_options() -> None:
    node = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    assert for_playground(node) == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_const_gets_an_enum_and_a_root_union_of_unions_is_flat() -> None:
    schema = {
        "anyOf": [
            {"$ref": "#/$defs/ItemError"},
            {"oneOf": [{"$ref": "#/$defs/AIMessage"}, {"$ref": "#/$defs/HumanMessage"}]},
        ],
        "$defs": {"AIMessage": {"properties": {"type": {"const": "ai", "type": "string"}}}},
    }
    out = for_playground(schema)
    assert out["anyOf"] == [
        {"$ref": "#/$defs/ItemError"},
        {"$ref": "#/$defs/AIMessage"},
        {"$ref": "#/$defs/HumanMessage"},
    ]
    assert out["$defs"]["AIMessage"]["properties"]["type"]["enum"] == ["ai"]


class _Input(BaseModel):
    """An input."""

    prompt: str = Field(description="p")
    system: str | None = Field(default=None, description="s")
    kind: Literal["a"] = Field(default="a", description="k")


def test_published_validates_the_same_and_answers_the_cleaned_schema() -> None:
    model = published(_Input)
    assert published(model) is model and published(_Input) is model  # once per model
    assert model.model_validate({"prompt": "x"}).model_dump()["system"] is None
    props: dict[str, Any] = model.model_json_schema()["properties"]
    assert "default" not in props["system"] and props["system"]["type"] == "string"
    assert props["kind"]["enum"] == ["a"]
    root = published(RootModel[int | None])
    assert root.model_validate(None).model_dump() is None
    assert root.model_json_schema()["type"] == "integer"


def test_root_unions_the_default_playground_cannot_draw_become_text_and_json() -> None:
    schema = {
        "properties": {
            "input": {"anyOf": [{"type": "string"}, {"type": "array"}], "title": "Input"},
            "questions": {
                "type": "array",
                "items": {"oneOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}]},
                "examples": [[{"type": "a"}]],
            },
            "labels": {"type": "array", "items": {"type": "string"}},
        }
    }
    props = for_playground(schema)["properties"]
    assert props["input"] == {"type": "string", "title": "Input"}
    # drawn as a JSON text area (an "object" type), still only a list for a validator
    assert props["questions"] == {
        "type": ["array", "object"],
        "not": {"type": "object"},
        "examples": [[{"type": "a"}]],
    }
    assert props["labels"] == schema["properties"]["labels"]  # a list of texts is kept
