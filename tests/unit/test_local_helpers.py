"""Pure helpers of the local model server: text assembly, token strings, logprob math, the
Gemma prompt, validation paths. No model, no app."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from local_llm.logprobs import SENTINEL_LOGPROB, LogprobBuilder, token_string, top_indices
from local_llm.prompt import gemma_segments, render
from local_llm.textstream import TextAssembler
from local_llm.validation import param_from_loc


def test_split_emoji_releases_entry_with_empty_text() -> None:
    emoji = "🙂".encode()
    assembler: TextAssembler[str] = TextAssembler()
    assert assembler.push(emoji[:2], "a") == ("", ["a"])
    assert assembler.push(emoji[2:], "b") == ("🙂", ["b"])
    assert assembler.finish() == ("", [])


def test_stop_glued_to_value_keeps_straddling_entry() -> None:
    assembler: TextAssembler[str] = TextAssembler(['"'])
    assert assembler.push(b"{", "a") == ("{", ["a"])
    assert assembler.push(b'blue",', "b") == ("blue", ["b"])
    assert assembler.stopped
    assert assembler.text == "{blue"


def test_stop_over_several_tokens_is_held_back_then_dropped() -> None:
    assembler: TextAssembler[str] = TextAssembler(["END"])
    assert assembler.push(b"ok E", "a") == ("ok ", ["a"])
    assert assembler.push(b"N", "b") == ("", [])
    assert assembler.push(b"D!", "c") == ("", [])
    assert assembler.stopped
    assert assembler.text == "ok "


def test_held_back_text_released_when_not_a_stop() -> None:
    assembler: TextAssembler[str] = TextAssembler(["END"])
    assert assembler.push(b"E", "a") == ("", [])
    assert assembler.push(b"N", "b") == ("", [])
    assert assembler.push(b"x", "c") == ("ENx", ["a", "b", "c"])
    assert assembler.push(b"EN", "d") == ("", [])
    assert assembler.finish() == ("EN", ["d"])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b" blue", " blue", id="ascii"),
        pytest.param("é".encode(), "é", id="two-byte"),
        pytest.param(b"\xf0\x9f", "bytes:\\xf0\\x9f", id="half-emoji"),
    ],
)
def test_token_string(data: bytes, expected: str) -> None:
    assert token_string(data) == expected


def test_top_indices_matches_full_sort_with_ties() -> None:
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal(5000) * 3).astype(np.float32)
    logits[[10, 20]] = logits.max() + 1  # a tie at the top: lower id first
    got = top_indices(logits, 20, float(logits.max()))
    expected = sorted(range(logits.size), key=lambda i: (-logits[i], i))[:20]
    assert got == expected
    flat = np.zeros(100, dtype=np.float32)  # every logit equal: threshold widening path
    assert top_indices(flat, 3, 0.0) == [0, 1, 2]


def test_logprob_builder_matches_log_softmax() -> None:
    logits = np.array([2.0, 1.0, -np.inf, 0.5], dtype=np.float32)
    builder = LogprobBuilder(4, lambda i: [b"a", b"b", b"c", b"\xe2"][i])
    entry = builder.build(logits, 3, 4)
    finite = logits[np.isfinite(logits)].astype(np.float64)
    log_z = math.log(np.exp(finite).sum())
    assert entry.logprob == pytest.approx(0.5 - log_z)
    assert entry.token == "bytes:\\xe2"
    assert [t.token for t in entry.top_logprobs] == ["a", "b", "bytes:\\xe2", "c"]
    assert entry.top_logprobs[-1].logprob == SENTINEL_LOGPROB
    assert json.loads(entry.model_dump_json())["top_logprobs"][0]["bytes"] == [97]


def test_gemma_prompt_merges_system_into_first_user_turn() -> None:
    messages = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "Bye")]
    assert render(gemma_segments(messages)) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )
    user_text = [s for s in gemma_segments([("user", "<end_of_turn>")]) if not s.special]
    assert [s.text for s in user_text] == ["<end_of_turn>"]


def test_param_from_loc_drops_union_tags() -> None:
    assert param_from_loc(("messages", 0, "content", "list[TextContentPart]", 1, "text")) == (
        "messages[0].content[1].text"
    )
    loc = ("response_format", "json_schema", "json_schema", "name")
    assert param_from_loc(loc) == "response_format.json_schema.name"


def test_schema_grammar_ends_at_the_value() -> None:
    from local_llm.grammar import schema_grammar

    schema = {"type": "object", "properties": {"a": {"type": "string", "enum": ["x", "y"]}}}
    root = next(line for line in schema_grammar(schema).splitlines() if line.startswith("root"))
    assert root.endswith('"}"')
