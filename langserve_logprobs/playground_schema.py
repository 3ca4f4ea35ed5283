"""The schemas a route publishes, in the form LangServe's playgrounds can use.

LangServe's playgrounds build their forms from ``/input_schema``, ``/output_schema`` and
``/config_schema`` (also embedded in the playground page), and they read pydantic's JSON
Schema in ways pydantic does not write it:

* the default playground (JSON Forms + ajv) validates each field's default against its type:
  ``"default": null`` on a string, array or object field (pydantic's ``X | None = None``, and
  the ``tags``/``metadata``/``configurable`` of every config schema) shows "must be string" /
  "must be array" / "must be object" and keeps Start disabled;
* it throws ``Unknown type: {"type":"null"}`` on the ``null`` branch of ``X | None``;
* the chat playground accepts an output schema only when one option of its top-level
  ``anyOf``/``oneOf`` has ``properties.type.enum`` holding ``"ai"``; pydantic writes a
  one-value ``Literal`` as ``const``, and our output is a union nested in another one
  (the route's output or an ``ItemError``, ``langserve_logprobs.routes``);
* it has no renderer for a union of a text and a list (it draws the list's table, and the
  text cannot be typed), nor for a list whose items are a union (``/decide``'s questions:
  predicate, choice or score): an input of the first kind is offered as its text, one of
  the second as a JSON list typed in a text area (its ``examples`` show the shape; the
  text area is drawn for ``"object"`` types only, so the list's ``type`` is
  ``["array", "object"]`` with ``not: {"type": "object"}``: still a list for validators).

``for_playground`` rewrites a schema for them (the validation by pydantic is unchanged: only
what ``model_json_schema`` answers changes) and ``published`` gives a model class that
answers it. ``tests/unit/test_playground_schema.py`` pins each rewrite;
``tests/live/test_playground.py`` drives the playgrounds in a browser.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

_NULL = {"type": "null"}


def _without_null(options: list[Any]) -> list[Any]:
    return [o for o in options if o != _NULL]


def _clean(node: Any) -> Any:
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _clean(value) for key, value in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and _NULL in options:
            rest = _without_null(options)
            if len(rest) == 1 and isinstance(rest[0], dict):
                del out[key]
                out = {**rest[0], **out}  # the field's own title, description, default win
            else:
                out[key] = rest
    if out.get("default", 0) is None:
        del out["default"]  # no default rather than one that fails its own type
    if "const" in out and "enum" not in out:
        out["enum"] = [out["const"]]
    return out


def _flatten_root(schema: dict[str, Any]) -> dict[str, Any]:
    """A root ``anyOf`` whose options are themselves bare unions becomes one flat list."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    flat: list[Any] = []
    for option in options:
        inner = option.get("anyOf") or option.get("oneOf") if isinstance(option, dict) else None
        bare = isinstance(option, dict) and set(option) <= {"anyOf", "oneOf", "title"}
        flat.extend(inner if inner and bare else [option])
    return {**schema, "anyOf": flat}


def _is_union(node: Any) -> bool:
    options = [node.get(key) or () for key in ("anyOf", "oneOf")] if isinstance(node, dict) else []
    return any(len(o) > 1 for o in options)


def _for_form(field: Any) -> Any:
    """A root input the default playground can render (see the module docstring)."""
    if not isinstance(field, dict):
        return field
    options = field.get("anyOf")
    if isinstance(options, list) and {"type": "string"} in options:
        if any(isinstance(o, dict) and o.get("type") == "array" for o in options):
            rest = {k: v for k, v in field.items() if k != "anyOf"}
            return {"type": "string", **rest}
    if field.get("type") == "array" and _is_union(field.get("items")):
        # "object" among the types gets the JSON text area; ``not`` keeps objects out
        rest = {k: v for k, v in field.items() if k != "items"}
        return {**rest, "type": ["array", "object"], "not": {"type": "object"}}
    return field


def _forms(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    return {**schema, "properties": {k: _for_form(v) for k, v in properties.items()}}


def for_playground(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as LangServe's playgrounds can read it (see the module docstring).

    Args:
        schema: a JSON Schema as pydantic writes it (``model_json_schema()``).

    Returns:
        A new schema: no ``null`` defaults or ``null`` branches, ``enum`` beside every
        ``const``, a root union of unions flattened, a root input that is a text or a list
        offered as its text, one that is a list of a union as a JSON value. ``schema`` is
        not changed.
    """
    cleaned: dict[str, Any] = _clean(schema)
    return _forms(_flatten_root(cleaned))


@lru_cache(maxsize=256)
def published(model: type[BaseModel]) -> type[BaseModel]:
    """A subclass of ``model`` (same validation) whose JSON Schema is ``for_playground``'s."""
    if getattr(model, "__published__", False):
        return model

    def model_json_schema(cls: type[BaseModel], *args: Any, **kwargs: Any) -> dict[str, Any]:
        return for_playground(model.model_json_schema(*args, **kwargs))

    namespace = {
        "__doc__": model.__doc__,
        "__module__": model.__module__,
        "__published__": True,
        "model_json_schema": classmethod(model_json_schema),
    }
    return type(model.__name__, (model,), namespace)
