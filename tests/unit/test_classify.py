"""Unit tests of chains.classify: the two answer methods (label, marker), the label
distribution read from the answer token's top_logprobs (recorded OpenAI-shaped answers in
tests/data), few-shot examples, input checks.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from chains.answer_token_labels import (
    MARKERS,
    Method,
    choose_method,
    label_bytes,
    label_of,
    marker_of,
    marker_table,
    markers_for,
)
from chains.classify import (
    Classify,
    ClassifyInput,
    answer_schema,
    classify_messages,
    classify_output,
    classify_prompt,
)
from langserve_logprobs.errors import InvalidRequestError, UpstreamError
from tests.helpers import RecordedChat, recorded

SENTIMENT = ["positive", "negative"]
THREE = ["positive", "negative", "neutral"]
FRUIT = ["apple", "apricot", "banana"]
THIRTY = [f"topic {i:02d}" for i in range(30)]


def answer_message(content: str, finish: str = "stop") -> AIMessage:
    """A message whose single-token-per-character logprobs spell ``content``."""
    tokens = [
        {"token": c, "logprob": -0.1, "bytes": list(c.encode()), "top_logprobs": []}
        for c in content
    ]
    metadata = {"logprobs": {"content": tokens}, "finish_reason": finish}
    return AIMessage(content=content, response_metadata=metadata)


def e(*logprobs: float) -> float:
    return math.fsum(math.exp(lp) for lp in logprobs)


@pytest.mark.parametrize(
    ("fixture", "labels", "mass", "label", "answer"),
    [
        pytest.param(
            "classify_glued_quote.json",
            SENTIMENT,
            [e(-0.105, -5.2, -6.1), e(-2.5)],
            "positive",
            "positive",
            id="marker-glued-to-quote-with-space-and-case-variants",
        ),
        pytest.param(
            "classify_split.json",
            THREE,
            [e(-1.6), e(-0.4, -3.0, -4.5, -7.5), e(-5.0)],
            "negative",
            "negative",
            id="marker-token-alone-closing-quote-variants",
        ),
        pytest.param(
            "classify_space_quote.json",
            THREE,
            [e(-1.9, -4.1), 0.0, e(-0.22, -5.3)],
            "neutral",
            "neutral",
            id="space-quote-prefix-and-no-space-variant",
        ),
        pytest.param(
            "classify_shared_prefix.json",
            FRUIT,
            [e(-1.0), e(-0.6), e(-3.5)],
            "apricot",
            "apricot",
            id="labels-sharing-first-token-stay-distinct",
        ),
        pytest.param(
            "classify_missing_top.json",
            THREE,
            [e(-0.5), e(-2.3), e(-2.0)],
            "positive",
            "negative",
            id="sampled-marker-missing-from-top-logprobs",
        ),
        pytest.param(
            "classify_many_labels.json",
            THIRTY,
            [0.0, e(-1.4)] + [0.0] * 24 + [e(-2.0), e(-0.7, -3.5), 0.0, 0.0],
            "topic 27",
            "topic 27",
            id="over-26-labels-case-is-not-merged",
        ),
    ],
)
def test_distribution_from_recorded_answers(
    fixture: str, labels: list[str], mass: list[float], label: str, answer: str
) -> None:
    out = classify_output(recorded(fixture), labels, "marker")
    total = math.fsum(mass)
    assert out["coverage"] == pytest.approx(total)
    assert 0.0 < out["coverage"] <= 1.0
    assert list(out["distribution"]) == labels
    assert list(out["distribution"].values()) == pytest.approx([m / total for m in mass])
    assert math.fsum(out["distribution"].values()) == pytest.approx(1.0)
    assert out["label"] == label
    assert out["answer"] == answer
    assert out["confidence"] == pytest.approx(max(mass) / total)
    assert out["marker"] == MARKERS[labels.index(label)]
    assert out["model"] == "gpt-4o-mini-2024-07-18"


def test_no_coverage_puts_all_on_the_answer_and_no_confidence() -> None:
    out = classify_output(recorded("classify_no_coverage.json"), SENTIMENT, "marker")
    assert out["coverage"] == 0.0
    assert out["confidence"] is None
    assert out["distribution"] == {"positive": 1.0, "negative": 0.0}
    assert (out["label"], out["answer"], out["marker"]) == ("positive", "positive", "A")


@pytest.mark.parametrize(
    ("piece", "prefix", "count", "expected"),
    [
        pytest.param(b'"B', b'"', 2, 1, id="glued"),
        pytest.param(b' "B', b'"', 2, 1, id="space-before-quote"),
        pytest.param(b'" B', b'"', 2, 1, id="space-after-quote"),
        pytest.param(b'"b', b'"', 2, 1, id="lower-case-merged"),
        pytest.param(b'"b', b'"', 30, 27, id="lower-case-is-another-label-past-26"),
        pytest.param(b'B"}', b"", 2, 1, id="closing-quote-and-brace"),
        pytest.param(b"B ", b"", 2, 1, id="trailing-space"),
        pytest.param(b"Bad", b"", 2, None, id="word-starting-with-marker"),
        pytest.param(b'"', b'"', 2, None, id="quote-only"),
        pytest.param(b"B", b'"', 2, None, id="missing-prefix"),
        pytest.param(b'"C', b'"', 2, None, id="marker-past-the-labels"),
        pytest.param(b':"A', b': "', 2, 0, id="whitespace-in-prefix-ignored"),
        pytest.param('"\u00c4'.encode(), b'"', 2, None, id="non-ascii"),
    ],
)
def test_marker_variants(piece: bytes, prefix: bytes, count: int, expected: int | None) -> None:
    assert marker_of(piece, prefix, marker_table(count)) == expected


def test_markers() -> None:
    assert markers_for(3) == ["A", "B", "C"]
    assert markers_for(50)[25:28] == ["Z", "a", "b"]
    assert markers_for(50)[-1] == "x"
    assert len(set(markers_for(50))) == 50
    schema = answer_schema(markers_for(2))
    assert schema["properties"]["answer"]["enum"] == ["A", "B"]
    assert schema["additionalProperties"] is False


def test_prompt_lists_the_options() -> None:
    data = ClassifyInput(text="I love it", labels=["good", "great\nthing"], instructions="Fair.")
    prompt = classify_prompt(data)
    assert "A. good\nB. great thing\n" in prompt
    assert "I love it" in prompt and "Fair." in prompt
    assert '{"answer": "<letter>"}' in prompt


def test_prompt_lists_the_labels() -> None:
    data = ClassifyInput(text="I love it", labels=["good", "bad\nthing"], instructions="Fair.")
    prompt = classify_prompt(data)
    assert "Labels:\n- good\n- bad thing\n" in prompt
    assert "I love it" in prompt and "Fair." in prompt
    assert '{"answer": "<label>"}' in prompt
    assert "A. good" not in prompt


@pytest.mark.parametrize(
    ("labels", "method"),
    [
        pytest.param(SENTIMENT, "label", id="distinct-first-letters"),
        pytest.param(THREE, "marker", id="negative-neutral-share-n"),
        pytest.param(FRUIT, "marker", id="apple-apricot"),
        pytest.param(["Yes", "yes sir"], "marker", id="case-insensitive"),
        pytest.param(["yes", "No"], "label", id="case-differs-letters-differ"),
        pytest.param(["\u00e9t\u00e9", "\u00e9cole"], "marker", id="shared-first-byte-of-e-acute"),
        pytest.param(["\u00e9t\u00e9", "hiver"], "label", id="non-ascii-distinct"),
        pytest.param(["x" * 49, "y"], "marker", id="long-label"),
        pytest.param(["x" * 48, "y"], "label", id="label-at-the-length-limit"),
    ],
)
def test_choose_method(labels: list[str], method: str) -> None:
    assert choose_method(labels) == method


YES_NO = ["yes", "no", "maybe", 'say "hi"', "\u00e9t\u00e9"]


@pytest.mark.parametrize(
    ("piece", "prefix", "expected"),
    [
        pytest.param(b'"yes', b'"', 0, id="whole-label-glued-to-quote"),
        pytest.param(b'"ye', b'"', 0, id="start-of-label"),
        pytest.param(b'"Y', b'"', 0, id="other-case"),
        pytest.param(b' "no', b'"', 1, id="space-before-quote"),
        pytest.param(b'" no', b'"', 1, id="space-after-quote"),
        pytest.param(b"m", b"", 2, id="first-letter-only"),
        pytest.param(b'maybe"}', b"", 2, id="label-with-closing-quote"),
        pytest.param(b'may"}', b"", None, id="closed-before-the-end"),
        pytest.param(b"mayday", b"", None, id="past-the-label"),
        pytest.param(b"nope", b"", None, id="diverges"),
        pytest.param(b'say \\"', b"", 3, id="escaped-quote-is-not-the-end"),
        pytest.param(b'say \\"hi\\""', b"", 3, id="escaped-quotes-then-closing"),
        pytest.param(b"\xc3", b"", 4, id="first-byte-of-a-split-character"),
        pytest.param("\u00e9t\u00e9".encode(), b"", 4, id="non-ascii-label"),
        pytest.param(b'"', b'"', None, id="quote-only"),
        pytest.param(b"yes", b'"', None, id="missing-prefix"),
        pytest.param(b"", b"", None, id="empty"),
    ],
)
def test_label_variants(piece: bytes, prefix: bytes, expected: int | None) -> None:
    lowered = [label_bytes(label).lower() for label in YES_NO]
    assert label_of(piece, prefix, lowered) == expected


def test_label_bytes_are_json_string_bytes() -> None:
    assert label_bytes('say "hi"') == b'say \\"hi\\"'
    assert label_bytes("\u00e9") == "\u00e9".encode()
    assert label_bytes("\U0001f600") == "\U0001f600".encode()


def label_answer(label: str, alternatives: list[tuple[str, float]]) -> AIMessage:
    """``{"answer": "<label>"}`` in three tokens; the label's token has ``alternatives``."""

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    first = [{**entry('{"answer": "', -0.01), "top_logprobs": [entry('{"answer": "', -0.01)]}]
    chosen = next(lp for tok, lp in alternatives if tok == label)
    middle = [{**entry(label, chosen), "top_logprobs": [entry(t, lp) for t, lp in alternatives]}]
    last = [{**entry('"}', -0.001), "top_logprobs": [entry('"}', -0.001)]}]
    content = '{"answer": "' + label + '"}'
    metadata = {
        "logprobs": {"content": first + middle + last},
        "finish_reason": "stop",
        "model_name": "m",
    }
    return AIMessage(content=content, response_metadata=metadata)


def test_label_method_sums_variants_of_each_label() -> None:
    alternatives = [
        ("positive", -0.9),
        ("Positive", -2.5),
        ("pos", -3.0),
        ("negative", -1.8),
        (" neg", -4.0),
        ("neutral", -2.5),  # names no label: left out, lowers the coverage
        ("I", -3.5),
    ]
    out = classify_output(label_answer("positive", alternatives), SENTIMENT)
    pos, neg = e(-0.9, -2.5, -3.0), e(-1.8, -4.0)
    assert out["method"] == "label"
    assert out["marker"] is None
    assert out["coverage"] == pytest.approx(pos + neg)
    assert out["distribution"]["positive"] == pytest.approx(pos / (pos + neg))
    assert math.fsum(out["distribution"].values()) == pytest.approx(1.0)
    assert (out["label"], out["answer"]) == ("positive", "positive")
    assert out["confidence"] == pytest.approx(pos / (pos + neg))


def test_label_method_can_prefer_a_label_it_did_not_write() -> None:
    # Sampled: the model wrote "no", but "yes" and its variants carry more mass.
    alternatives = [("no", -1.2), ("yes", -0.9), ("Yes", -1.0), ("y", -2.0)]
    out = classify_output(label_answer("no", alternatives), ["yes", "no"])
    assert (out["label"], out["answer"]) == ("yes", "no")
    assert out["distribution"]["yes"] > 0.5


def test_examples_become_earlier_turns() -> None:
    data = ClassifyInput(
        text="Cold soup.",
        labels=SENTIMENT,
        examples=[{"text": "Loved it", "label": "positive"}, {"text": "Bad", "label": "negative"}],
    )
    messages = classify_messages(data)
    assert [m.type for m in messages] == ["human", "ai", "human", "ai", "human"]
    assert "Loved it" in str(messages[0].content)
    assert messages[1].content == '{"answer": "positive"}'
    assert messages[3].content == '{"answer": "negative"}'
    assert "Cold soup." in str(messages[4].content)
    fruit = ClassifyInput(text="x", labels=FRUIT, examples=[{"text": "y", "label": "apricot"}])
    assert classify_messages(fruit)[1].content == '{"answer": "B"}'


@pytest.mark.parametrize(
    ("content", "method"),
    [
        pytest.param('{"answer": "Z"}', "marker", id="not-a-marker"),
        pytest.param('{"answer": "a"}', "marker", id="lower-case-answer"),
        pytest.param('{"label": "A"}', "marker", id="wrong-key"),
        pytest.param('{"answer": "A"', "marker", id="unfinished-json"),
        pytest.param('```json\n{"answer": "A"}\n```', "marker", id="code-fence"),
        pytest.param('["A"]', "marker", id="not-an-object"),
        pytest.param('{"answer": "neutral"}', "label", id="not-a-label"),
        pytest.param('{"answer": "Positive"}', "label", id="label-in-other-case"),
        pytest.param('{"answer": "A"}', "label", id="marker-where-a-label-is-due"),
    ],
)
def test_bad_answers_are_upstream_errors(content: str, method: Method) -> None:
    with pytest.raises(UpstreamError, match="not one of the options"):
        classify_output(answer_message(content), SENTIMENT, method)


def test_cut_answer_and_missing_logprobs_are_upstream_errors() -> None:
    with pytest.raises(UpstreamError, match="max_tokens"):
        classify_output(answer_message('{"answer": "A"}', finish="length"), SENTIMENT, "marker")
    with pytest.raises(UpstreamError, match="no logprobs"):
        classify_output(AIMessage(content='{"answer": "A"}'), SENTIMENT, "marker")


def test_chain_sends_the_schema_in_extra_body_and_streams_one_event() -> None:
    model = RecordedChat(message=recorded("classify_split.json"))
    chain = Classify(model=model, max_prompt_chars=1000)
    data = {"text": "meh", "labels": THREE}
    out = chain.invoke(data)
    assert out["label"] == "negative"
    response_format = model.calls[0]["extra_body"]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"] == answer_schema(["A", "B", "C"])
    assert "C. neutral" in model.calls[0]["messages"][0].content
    assert list(chain.stream(data)) == [out]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param({"text": "x", "labels": ["a"]}, "labels", id="one-label"),
        pytest.param({"text": "x", "labels": ["a", "b", "a"]}, "labels", id="duplicate"),
        pytest.param({"text": "x", "labels": ["a", " "]}, "labels", id="blank-label"),
        pytest.param({"text": "x", "labels": [str(i) for i in range(51)]}, "labels", id="51"),
        pytest.param({"labels": ["a", "b"]}, "text", id="no-text"),
        pytest.param({"text": "x" * 1001, "labels": ["a", "b"]}, "input", id="too-long"),
        pytest.param(
            {"text": "x", "labels": ["a", "b"], "examples": [{"text": "y", "label": "c"}]},
            r"examples\[0\]\.label 'c' is not one of labels",
            id="example-label-not-a-label",
        ),
        pytest.param(
            {"text": "x", "labels": ["a", "b"], "examples": [{"label": "a"}]},
            "examples.0.text",
            id="example-without-text",
        ),
        pytest.param(
            {"text": "x", "labels": ["a", "b"], "examples": [{"text": "y" * 999, "label": "a"}]},
            "input",
            id="examples-count-toward-the-size",
        ),
    ],
)
def test_invalid_inputs(value: dict[str, Any], field: str) -> None:
    chain = Classify(model=RecordedChat(message=AIMessage(content="")), max_prompt_chars=1000)
    with pytest.raises(InvalidRequestError, match=field):
        chain.invoke(value)


def test_recorded_label_answer_from_the_embedded_model() -> None:
    # Gemma 3 270M, two few-shot examples; the answer token's top 20 hold "negative",
    # "positive", "neg" (a start of negative) and words that name no label ("neutral",
    # "no", "not", "none", "bad", ...).
    message = recorded("classify_label_gemma.json")
    top = {
        a["token"]: a["logprob"]
        for a in message.response_metadata["logprobs"]["content"][4]["top_logprobs"]
    }
    out = classify_output(message, SENTIMENT)
    neg = e(top["negative"], top["neg"])
    pos = e(top["positive"])
    assert out["method"] == "label"
    assert out["coverage"] == pytest.approx(neg + pos)
    assert out["distribution"] == pytest.approx(
        {"positive": pos / (neg + pos), "negative": neg / (neg + pos)}
    )
    assert (out["label"], out["answer"]) == ("negative", "negative")
    assert out["model"] == "gemma-3-270m-q4_k_m"
