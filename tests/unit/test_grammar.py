"""JSON-schema grammars allow only what JSON allows."""

from __future__ import annotations

import re

from local_llm.grammar import schema_grammar

SCHEMA = {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]}


def _char_class(grammar: str) -> str:
    match = re.search(r"^char ::= (\[[^\]]*\])", grammar, re.MULTILINE)
    assert match, grammar
    return match.group(1)


def test_string_characters_exclude_raw_control_characters() -> None:
    # A raw newline inside a JSON string is not JSON: the grammar must not let the model write one.
    assert _char_class(schema_grammar(SCHEMA)) == r'[^"\\\x7F\x00-\x1F]'


def test_the_root_value_ends_the_reply() -> None:
    root = next(ln for ln in schema_grammar(SCHEMA).splitlines() if ln.startswith("root ::= "))
    assert not root.endswith(" space")
