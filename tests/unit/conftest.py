"""Unit tests are pure functions: no app, no I/O, each done within a few milliseconds."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A short per-test timeout (the global one is for live tests); a test marked
    # with its own timeout keeps it.
    for item in items:
        if item.path.parent.name == "unit" and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(5))
