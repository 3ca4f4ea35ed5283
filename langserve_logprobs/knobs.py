"""Request knobs: what a caller may set per request in ``config.configurable``.

Each knob is declared once, in ``_declare``: its id, title and description, its bounds
(``langserve_logprobs.limits``, and ``LOGPROBS_MAX_TOKENS_CAP`` for ``max_tokens``) and its
default (the settings, or the route's own default where a route needs another one, e.g.
``/classify``'s temperature 0). A route's ``Knobs`` model (``knobs_model``) holds them
typed; from it come

* the route's ``ConfigurableField``s (``Knobs.fields``) and ``ConfigurableFieldSpec``s
  (``Knobs.specs``), which LangServe publishes in ``/config_schema`` and the playground;
* the check at the edge: ``langserve_logprobs.routes.RouteRunnable`` validates a request's
  ``configurable`` against that published schema once, before the chain runs (a bad value
  is a 400 naming the field);
* the typed read in a chain: ``knobs.of(config).top_logprobs``, never a dict lookup.

The embedded engine (``local_llm``) keeps its own copies of the bounds it enforces itself;
``tests/unit/test_limits.py`` pins every pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal, Self

from langchain_core.runnables import ConfigurableField, RunnableConfig
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import BaseModel, ConfigDict, Field, create_model

from langserve_logprobs.limits import (
    LOW_PROB_THRESHOLD_MAX,
    MODEL_NAME_MAX_CHARS,
    TEMPERATURE_MAX,
    TOP_LOGPROBS_MAX,
)
from langserve_logprobs.settings import Settings

KnobId = Literal["temperature", "max_tokens", "top_logprobs", "model", "low_prob_threshold"]
MODEL_KNOBS: tuple[KnobId, ...] = ("temperature", "max_tokens", "top_logprobs", "model")
"""The knobs every route that generates takes: those of the chat model."""

# ChatOpenAI's attribute for each knob it reads (``configurable_fields`` names attributes).
CHAT_MODEL_ATTRS: dict[str, str] = {
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "top_logprobs": "top_logprobs",
    "model": "model_name",
}


class Knobs(BaseModel):
    """A route's request knobs, typed and bounded; build one with ``knobs_model``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    published: ClassVar[tuple[KnobId, ...]] = ()
    """The knobs the route takes (its config schema); the others keep their defaults."""

    temperature: float
    max_tokens: int
    top_logprobs: int
    model: str
    low_prob_threshold: float

    @classmethod
    def of(cls, config: RunnableConfig | Mapping[str, Any] | None) -> Self:
        """The knobs of one call: its ``configurable`` values, the defaults for the rest.

        Raises:
            pydantic.ValidationError: a value out of its bounds (the edge has already
                refused those with a 400; this only runs again for in-process callers).
        """
        configurable = (config or {}).get("configurable") or {}
        return cls.model_validate({k: v for k, v in configurable.items() if k in cls.published})

    @classmethod
    def specs(cls) -> list[ConfigurableFieldSpec]:
        """The published knobs as ``ConfigurableFieldSpec``s (a chain's ``config_specs``)."""
        return [
            ConfigurableFieldSpec(
                id=knob,
                annotation=cls._annotation(knob),
                name=cls.model_fields[knob].title,
                description=cls.model_fields[knob].description,
                default=cls.model_fields[knob].default,
            )
            for knob in cls.published
        ]

    @classmethod
    def fields(cls, attrs: Mapping[str, str] = CHAT_MODEL_ATTRS) -> dict[str, ConfigurableField]:
        """``ConfigurableField``s for ``runnable.configurable_fields``: each published knob
        found in ``attrs`` (knob id -> the runnable's attribute), by that attribute."""
        return {
            attrs[knob]: ConfigurableField(
                id=knob,
                name=cls.model_fields[knob].title,
                description=cls.model_fields[knob].description,
                annotation=cls._annotation(knob),
            )
            for knob in cls.published
            if knob in attrs
        }

    @classmethod
    def defaults(cls, knobs: Sequence[str] = MODEL_KNOBS) -> dict[str, Any]:
        """The defaults of ``knobs``, by id: the chat model's keyword arguments."""
        return {knob: cls.model_fields[knob].default for knob in knobs}

    @classmethod
    def _annotation(cls, knob: str) -> Any:
        field = cls.model_fields[knob]
        return (
            Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        )


def _declare(settings: Settings, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Every knob: its type, bounds, title, description and default. The one place."""
    cap = settings.max_tokens_cap
    return {
        "temperature": (
            float,
            Field(
                default=defaults.get("temperature", settings.temperature),
                ge=0.0,
                le=TEMPERATURE_MAX,
                allow_inf_nan=False,
                title="Temperature",
                description=f"Sampling temperature, 0 to {TEMPERATURE_MAX:g} "
                "(0: always the most likely token).",
            ),
        ),
        "max_tokens": (
            int,
            Field(
                default=min(defaults.get("max_tokens", settings.max_tokens), cap),
                ge=1,
                le=cap,
                title="Max tokens",
                description=f"Most tokens to generate, 1 to {cap}.",
            ),
        ),
        "top_logprobs": (
            int,
            Field(
                default=defaults.get("top_logprobs", settings.top_logprobs),
                ge=0,
                le=TOP_LOGPROBS_MAX,
                title="Top logprobs",
                description=f"Alternatives returned per token, 0 to {TOP_LOGPROBS_MAX}.",
            ),
        ),
        "model": (
            str,
            Field(
                default=defaults.get("model", settings.model_name),
                min_length=1,
                max_length=MODEL_NAME_MAX_CHARS,
                title="Model",
                description="Model name sent to the upstream server.",
            ),
        ),
        "low_prob_threshold": (
            float,
            Field(
                default=defaults.get("low_prob_threshold", settings.low_prob_threshold),
                ge=0.0,
                le=LOW_PROB_THRESHOLD_MAX,
                allow_inf_nan=False,
                title="Low-probability threshold",
                description="Words whose weakest token is less likely than this are "
                f"flagged (0 to {LOW_PROB_THRESHOLD_MAX:g}).",
            ),
        ),
    }


def knobs_model(
    settings: Settings, name: str, published: Sequence[KnobId], **defaults: Any
) -> type[Knobs]:
    """A route's ``Knobs`` model.

    Args:
        settings: the service settings (defaults, and the ``max_tokens`` cap).
        name: the model's name, e.g. ``GenerateKnobs``.
        published: the knobs the route takes, in the order its config schema lists them.
        **defaults: the route's own defaults, where they are not the settings'.
    """
    model = create_model(name, __base__=Knobs, **_declare(settings, defaults))
    model.published = tuple(published)
    return model


@lru_cache(maxsize=1)
def default_knobs() -> type[Knobs]:
    """The model knobs with the declared defaults of ``Settings`` (no environment read): what
    a chain built by hand, without ``build_chain(settings)``, takes."""
    return knobs_model(Settings.model_construct(), "DefaultKnobs", MODEL_KNOBS)
