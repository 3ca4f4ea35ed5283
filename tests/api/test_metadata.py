"""Client metadata and tags reach the server's runs (and so LangSmith traces)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import sse_events


def test_metadata_and_tags_reach_runs(client: TestClient):
    body = {
        "input": {"prompt": "hi"},
        "config": {
            "configurable": {"model": "ok"},
            "metadata": {"user_id": "u-42"},
            "tags": ["from-client"],
        },
    }
    response = client.post("/generate/stream_events", json=body)
    events = [data for name, data in sse_events(response.text) if name == "data"]
    model_runs = [e for e in events if e["event"] == "on_chat_model_start"]
    assert model_runs
    for event in model_runs:
        assert event["metadata"]["user_id"] == "u-42"
        assert "from-client" in event["tags"]
