"""Request knobs: one model per route, bounds from limits, defaults from the settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from chains import chat, classify, extract, generate, score
from chains.teacher_forcing import TextScorer
from langserve_logprobs.knobs import MODEL_KNOBS, knobs_model
from langserve_logprobs.limits import TEMPERATURE_MAX, TOP_LOGPROBS_MAX
from langserve_logprobs.routes import wrap_route
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream

UPSTREAM: dict[str, Any] = {"openai_base_url": "http://127.0.0.1:9/v1", "_env_file": None}


def _configurable(chain_module: Any, settings: Settings) -> dict[str, Any]:
    """The route's published ``configurable`` schema properties (what the playground shows)."""
    route = wrap_route(chain_module.build_chain(settings, Upstream.from_settings(settings)))
    schema = route.config_schema(include=["configurable"]).model_json_schema()
    return dict(schema["$defs"]["Configurable"]["properties"])


@pytest.mark.parametrize(
    ("module", "knobs"),
    [
        pytest.param(chat, set(MODEL_KNOBS), id="chat"),
        pytest.param(generate, {*MODEL_KNOBS, "low_prob_threshold"}, id="generate"),
        pytest.param(classify, set(MODEL_KNOBS), id="classify"),
        pytest.param(extract, set(MODEL_KNOBS), id="extract"),
        pytest.param(score, {"top_logprobs", "model"}, id="score"),
    ],
)
def test_each_route_publishes_its_knobs_with_the_shared_bounds(
    module: Any, knobs: set[str]
) -> None:
    props = _configurable(module, Settings(**UPSTREAM))
    assert set(props) == knobs
    assert props["top_logprobs"]["maximum"] == TOP_LOGPROBS_MAX
    if "temperature" in props:
        assert props["temperature"]["maximum"] == TEMPERATURE_MAX


def test_defaults_come_from_the_settings() -> None:
    settings = Settings(
        **UPSTREAM,
        LOGPROBS_TOP_LOGPROBS=7,
        LOGPROBS_TEMPERATURE=0.5,
        LOGPROBS_MAX_TOKENS=99,
        LOGPROBS_MAX_TOKENS_CAP=500,
        LOGPROBS_MODEL="other",
        LOGPROBS_LOW_PROB_THRESHOLD=0.1,
    )
    props = _configurable(generate, settings)
    assert props["top_logprobs"]["default"] == 7
    assert props["temperature"]["default"] == 0.5
    assert props["max_tokens"]["default"] == 99
    assert props["max_tokens"]["maximum"] == 500
    assert props["model"]["default"] == "other"
    assert props["low_prob_threshold"]["default"] == 0.1
    # /score honours LOGPROBS_TOP_LOGPROBS too (it had its own 5).
    assert _configurable(score, settings)["top_logprobs"]["default"] == 7
    # A route's own defaults: /classify reads 20 alternatives at temperature 0.
    props = _configurable(classify, settings)
    assert props["top_logprobs"]["default"] == TOP_LOGPROBS_MAX
    assert props["temperature"]["default"] == 0.0
    assert props["model"]["default"] == "other"


def test_score_reads_its_knobs_typed() -> None:
    settings = Settings(**UPSTREAM, LOGPROBS_TOP_LOGPROBS=3)
    chain = score.Score(
        scorer=TextScorer(Upstream.from_settings(settings)),
        knobs=knobs_model(settings, "ScoreKnobs", ("top_logprobs", "model")),
        max_prompt_chars=100,
    )
    assert chain._knobs({}) == (3, settings.model_name)
    assert chain._knobs({"configurable": {"top_logprobs": 9, "model": "m"}}) == (9, "m")


def test_knobs_of_a_config() -> None:
    knobs = knobs_model(Settings(**UPSTREAM), "K", ("temperature", "top_logprobs"))
    got = knobs.of({"configurable": {"temperature": "0.5", "top_logprobs": 2, "other": 1}})
    assert (got.temperature, got.top_logprobs) == (0.5, 2)
    assert got.model == Settings(**UPSTREAM).model_name  # not published: its default
    assert knobs.of({"configurable": {"model": "ignored"}}).model != "ignored"
    with pytest.raises(ValidationError):
        knobs.of({"configurable": {"top_logprobs": TOP_LOGPROBS_MAX + 1}})


def test_max_tokens_default_never_exceeds_the_cap() -> None:
    settings = Settings(**UPSTREAM, LOGPROBS_MAX_TOKENS=900, LOGPROBS_MAX_TOKENS_CAP=100)
    knobs = knobs_model(settings, "K", MODEL_KNOBS)
    assert knobs.of(None).max_tokens == 100
