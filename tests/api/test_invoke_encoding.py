"""Our ``/invoke`` answers what LangServe's would, without its second validation pass."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from langserve import APIHandler
from langserve.api_handler import _json_encode_response
from langserve.lzstring import LZString
from langserve.schema import InvokeResponseMetadata
from langserve.serialization import WellKnownLCSerializer

from langserve_logprobs.routes import wrap_route
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream
from langserve_logprobs.workarounds.invoke_encoding import invoke_body
from server import CONFIG_KEYS, ROUTES

INPUTS: dict[str, Any] = {
    "/chat": "hi",
    "/generate": {"prompt": "hi"},
    "/classify": {"text": "awful", "labels": ["positive", "negative"]},
}
MODELS = {
    "/chat": "ok",
    "/generate": "ok",
    "/classify": "recorded:classify_label_gemma.json",
}


@pytest.mark.parametrize("path", list(INPUTS))
async def test_the_body_is_langserves(settings: Settings, path: str) -> None:
    module = next(m for p, m, _ in ROUTES if p == path)
    route = wrap_route(module.build_chain(settings, Upstream.from_settings(settings)))
    config: Any = {"configurable": {"model": MODELS[path]}}
    output = await route.ainvoke(INPUTS[path], config)
    run_id = uuid.uuid4()
    handler = APIHandler(route, path=path, config_keys=CONFIG_KEYS)
    theirs = _json_encode_response(
        handler.InvokeResponse(
            output=WellKnownLCSerializer().dumpd(output),
            callback_events=[],
            metadata=InvokeResponseMetadata(run_id=run_id, feedback_tokens=[]),
        )
    ).body
    ours = json.loads(invoke_body(output, run_id))
    # The same value: every key, string and number (floats compare exactly).
    assert ours == json.loads(bytes(theirs))
    assert ours["output"]


def test_invoke_is_served_by_ours_with_langserves_checks(client: TestClient) -> None:
    reply = client.post("/generate/invoke", json={"input": {"prompt": "hi"}})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"output", "metadata"}
    assert uuid.UUID(body["metadata"]["run_id"])
    assert body["output"]["tokens"]
    bad = client.post("/generate/invoke", json={"input": {"promptt": "hi"}})
    assert bad.status_code == 422, bad.text
    assert json.loads(bad.text)["error"]["type"] == "invalid_input"


def test_invoke_with_a_config_hash_reads_that_config(client: TestClient) -> None:
    """Playground share links: /c/{config_hash}/invoke, the config LZString-compressed."""
    config = {"configurable": {"max_tokens": 0}}  # out of range: only a read config fails
    packed = LZString.compressToEncodedURIComponent(json.dumps(config))
    body = {"input": {"prompt": "hi"}}
    reply = client.post(f"/generate/c/{packed}/invoke", json=body)
    assert reply.status_code == 400, reply.text
    assert "max_tokens" in reply.json()["error"]["message"]
    config = {"configurable": {"max_tokens": 3}}
    packed = LZString.compressToEncodedURIComponent(json.dumps(config))
    reply = client.post(f"/generate/c/{packed}/invoke", json=body)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["output"]["tokens"]) <= 3
