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
  (the route's output or an ``ItemError``, ``langserve_logprobs.routes``).

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


def for_playground(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as LangServe's playgrounds can read it (see the module docstring).

    Args:
        schema: a JSON Schema as pydantic writes it (``model_json_schema()``).

    Returns:
        A new schema: no ``null`` defaults or ``null`` branches, ``enum`` beside every
        ``const``, a root union of unions flattened. ``schema`` is not changed.
    """
    cleaned: dict[str, Any] = _clean(schema)
    return _flatten_root(cleaned)


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
