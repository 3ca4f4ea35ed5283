"""Every module of ``langserve_logprobs.workarounds`` names its canary, and the canary exists."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import langserve_logprobs.workarounds as workarounds

MODULES = sorted(m.name for m in pkgutil.iter_modules(workarounds.__path__))
CANARIES = Path(__file__).resolve().parents[1] / "api" / "test_workarounds.py"


def _canaries() -> dict[str, str]:
    """Test function name -> its docstring, read from the canaries' file (not imported)."""
    tree = ast.parse(CANARIES.read_text(encoding="utf-8"))
    return {
        node.name: ast.get_docstring(node) or ""
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_there_are_workarounds() -> None:
    assert len(MODULES) >= 8, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_each_module_names_the_upstream_behaviour_and_its_canary(name: str) -> None:
    doc = importlib.import_module(f"langserve_logprobs.workarounds.{name}").__doc__ or ""
    assert "Upstream behaviour" in doc and "Correction" in doc and "Delete when" in doc, name
    canaries = re.findall(r"``(test_\w+)``", doc.split("Delete when", 1)[1])
    assert canaries, f"{name}: its 'Delete when' names no canary"
    tests = _canaries()
    for canary in canaries:
        assert canary in tests, f"{name}: no canary {canary} in tests/api/test_workarounds.py"
        assert f"workarounds.{name}" in tests[canary], canary
