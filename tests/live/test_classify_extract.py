"""/classify and /extract against the real embedded model over a real uvicorn server."""

from __future__ import annotations

import math
from typing import Any

import httpx
import jsonschema
import pytest
from langchain_core.runnables import RunnableConfig
from langserve import RemoteRunnable

from chains.extract import leaf_pointers

pytestmark = pytest.mark.live

SENTIMENT = ["positive", "negative"]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "tags"],
}
# A 270M model can loop in an open array: bound the answer so a loop fails fast.
EXTRACT_CONFIG: RunnableConfig = {"configurable": {"max_tokens": 96}}


def remote(url: str) -> RemoteRunnable[Any, Any]:
    return RemoteRunnable(url)


def _check_classification(out: dict[str, Any], labels: list[str], method: str) -> None:
    assert out["label"] in labels
    assert out["answer"] in labels
    assert list(out["distribution"]) == labels
    assert math.fsum(out["distribution"].values()) == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 for p in out["distribution"].values())
    assert 0.0 < out["coverage"] <= 1.0
    assert out["confidence"] == out["distribution"][out["label"]]
    assert out["confidence"] == max(out["distribution"].values())
    assert out["method"] == method
    if method == "marker":
        assert out["marker"] == "ABCDEFGHIJ"[labels.index(out["label"])]
    else:
        assert out["marker"] is None
    assert out["model"]


def test_classify_invoke(live_url: str):
    out = remote(live_url + "/classify").invoke(
        {"text": "I absolutely loved this movie!", "labels": SENTIMENT, "method": "label"}
    )
    _check_classification(out, SENTIMENT, "label")


def test_classify_with_examples_follows_them(live_url: str):
    examples = [
        {"text": "I loved it, fantastic!", "label": "positive"},
        {"text": "Awful, a waste of money.", "label": "negative"},
        {"text": "Great staff and tasty food.", "label": "positive"},
        {"text": "It broke after one day. Very disappointed.", "label": "negative"},
    ]
    classify = remote(live_url + "/classify")
    outs = classify.batch(
        [
            {"text": text, "labels": SENTIMENT, "examples": examples, "method": "label"}
            for text in ("What a wonderful, lovely day!", "Horrible. I hate it, a total waste.")
        ]
    )
    for out in outs:
        _check_classification(out, SENTIMENT, "label")
    assert [out["label"] for out in outs] == ["positive", "negative"]


def test_classify_labels_sharing_a_first_token(live_url: str):
    labels = ["apple", "apricot", "banana", "blueberry"]
    out = remote(live_url + "/classify").invoke(
        {
            "text": "A small orange stone fruit.",
            "labels": labels,
            "instructions": "Pick a fruit.",
            "method": "marker",
        }
    )
    _check_classification(out, labels, "marker")


def test_classify_batch_of_two(live_url: str):
    classify = remote(live_url + "/classify")
    outs = classify.batch(
        [
            {"text": "What a wonderful day!", "labels": SENTIMENT, "method": "label"},
            {
                "text": "The soup was cold.",
                "labels": ["food", "weather", "sport"],
                "method": "label",
            },
        ]
    )
    assert len(outs) == 2
    _check_classification(outs[0], SENTIMENT, "label")
    _check_classification(outs[1], ["food", "weather", "sport"], "label")


def test_classify_stream_gives_the_whole_output(live_url: str):
    classify = remote(live_url + "/classify")
    value = {"text": "Terrible service, I want a refund.", "labels": SENTIMENT, "method": "label"}
    events = list(classify.stream(value))
    assert len(events) == 1
    _check_classification(events[0], SENTIMENT, "label")
    assert events[0] == classify.invoke(value)  # temperature 0: same answer


def test_extract_invoke(live_url: str):
    text = "Ada Lovelace is 36 years old. Tags: math, poetry."
    out = remote(live_url + "/extract").invoke({"text": text, "schema": PERSON}, EXTRACT_CONFIG)
    jsonschema.validate(out["data"], PERSON)
    assert set(out["confidence"]) == set(leaf_pointers(out["data"]))
    for leaf in out["confidence"].values():
        assert 0.0 <= leaf["prob"] <= 1.0
        assert leaf["num_tokens"] >= 1
    assert out["min_prob"] == min(leaf["prob"] for leaf in out["confidence"].values())
    assert out["model"]


@pytest.mark.parametrize(
    ("route", "value", "field"),
    [
        pytest.param("classify", {"text": "x", "labels": ["a"]}, "labels", id="one-label"),
        pytest.param("classify", {"text": "x", "labels": ["a", "a"]}, "labels", id="duplicate"),
        pytest.param(
            "classify", {"text": "x", "labels": [f"l{i}" for i in range(51)]}, "labels", id="51"
        ),
        pytest.param(
            "extract", {"text": "x", "schema": {"type": "array"}}, "schema", id="array-schema"
        ),
        pytest.param(
            "extract", {"text": "x", "schema": {"type": "objekt"}}, "schema", id="invalid-schema"
        ),
    ],
)
def test_bad_inputs_are_4xx_naming_the_field(
    live_url: str, route: str, value: dict[str, Any], field: str
):
    response = httpx.post(f"{live_url}/{route}/invoke", json={"input": value}, timeout=30)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.json()["error"]["message"]
