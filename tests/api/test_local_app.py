"""The local model server's app in-process, without a model: request validation, response and
stream shapes, errors. A fake engine stands in for ``LocalEngine``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from local_llm import create_local_app
from local_llm.engine_api import Emit, Finished, GenerationEvent, SamplingParams, TextDelta
from local_llm.errors import ServerBusyError
from local_llm.protocol import ChatCompletionTokenLogprob, GenerationRecord

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def _entry(token: str) -> ChatCompletionTokenLogprob:
    return ChatCompletionTokenLogprob(
        token=token, logprob=-0.5, bytes=list(token.encode()), top_logprobs=[]
    )


class FakeEngine:
    """Replies "Hello world" in two tokens; a prompt token per whitespace-separated word."""

    model_name = "fake-model"
    n_ctx = 64
    is_loaded = True
    loaded_at = 1
    startup_error: str | None = None

    def __init__(self) -> None:
        self.params: list[SamplingParams] = []
        self._history: list[GenerationRecord] = []

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    def tokenize_chat(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        return [0] * sum(len(text.split()) + 4 for _, text in messages)

    def check_grammar(self, grammar: str) -> None:
        pass

    def submit(
        self,
        request_id: str,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: Any,
        emit: Emit,
    ) -> None:
        try:
            for event in self.generate(request_id, prompt_tokens, params, cancel):
                emit(event)
        except Exception as exc:  # like the scheduler: the error is an event
            emit(exc)

    def generate(
        self, request_id: str, prompt_tokens: list[int], params: SamplingParams, cancel: Any
    ) -> Iterator[GenerationEvent]:
        self.params.append(params)
        want = params.top_logprobs is not None
        for token in ("Hello", " world"):
            yield TextDelta(token, [_entry(token)] if want else [])
        self._history.append(
            GenerationRecord(
                id=request_id,
                prompt_tokens=len(prompt_tokens),
                completion_tokens=2,
                finish_reason="stop",
            )
        )
        yield Finished("stop", len(prompt_tokens), 2)

    def history(self) -> list[GenerationRecord]:
        return list(self._history)

    def counters(self) -> dict[str, int]:
        return {"requests": len(self._history)}


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def local_client(engine: FakeEngine) -> Iterator[TestClient]:
    with TestClient(create_local_app(engine)) as test_client:
        yield test_client


def _body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": MESSAGES, **fields}


BAD_REQUESTS = [
    pytest.param(b'{"messages": [', None, id="malformed-json"),
    pytest.param(b'{"messages": "\xff"}', None, id="invalid-utf8"),
    pytest.param(b"[1, 2]", None, id="body-not-object"),
    pytest.param(b"{}", "messages", id="missing-messages"),
    pytest.param(_body(messages=[]), "messages", id="empty-messages"),
    pytest.param(_body(messages="hi"), "messages", id="messages-not-list"),
    pytest.param(
        _body(messages=[{"role": "tool", "content": "x"}]), "messages[0].role", id="unknown-role"
    ),
    pytest.param(_body(messages=[{"content": "x"}]), "messages[0].role", id="missing-role"),
    pytest.param(
        _body(messages=[{"role": "user", "content": 5}]),
        "messages[0].content",
        id="content-not-text",
    ),
    pytest.param(
        _body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
        "messages[0].content[0].type",
        id="image-content-part",
    ),
    pytest.param(_body(model=3), "model", id="model-not-string"),
    pytest.param(_body(logprobs=True, top_logprobs=21), "top_logprobs", id="top-logprobs-21"),
    pytest.param(_body(logprobs=True, top_logprobs=-1), "top_logprobs", id="top-logprobs-neg"),
    pytest.param(_body(top_logprobs=3), "top_logprobs", id="top-logprobs-without-logprobs"),
    pytest.param(_body(logprobs="true"), "logprobs", id="logprobs-string"),
    pytest.param(_body(max_tokens=0), "max_tokens", id="max-tokens-zero"),
    pytest.param(_body(max_tokens="10"), "max_tokens", id="max-tokens-string"),
    pytest.param(
        _body(max_completion_tokens=0), "max_completion_tokens", id="max-completion-tokens-zero"
    ),
    pytest.param(
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        "temperature",
        id="temperature-nan",
    ),
    pytest.param(
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1e999}',
        "temperature",
        id="temperature-inf",
    ),
    pytest.param(_body(temperature=2.5), "temperature", id="temperature-too-high"),
    pytest.param(_body(temperature="hot"), "temperature", id="temperature-string"),
    pytest.param(_body(top_p=1.5), "top_p", id="top-p-too-high"),
    pytest.param(_body(seed=1.5), "seed", id="seed-float"),
    pytest.param(_body(stream="yes"), "stream", id="stream-string"),
    pytest.param(_body(stop=["a", "b", "c", "d", "e"]), "stop", id="five-stops"),
    pytest.param(_body(n=2), "n", id="n-2"),
    pytest.param(
        _body(response_format={"type": "xml"}), "response_format", id="response-format-unknown"
    ),
    pytest.param(
        _body(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
        "response_format.json_schema.schema",
        id="json-schema-missing",
    ),
    pytest.param(
        _body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        "response_format.json_schema.name",
        id="json-schema-name-missing",
    ),
    pytest.param(
        _body(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
            }
        ),
        "response_format.json_schema.schema",
        id="json-schema-invalid",
    ),
    pytest.param(
        _body(stream_options={"include_usage": "yes"}),
        "stream_options.include_usage",
        id="include-usage-string",
    ),
]


@pytest.mark.parametrize(("body", "param"), BAD_REQUESTS)
def test_bad_request_is_openai_400(
    local_client: TestClient, body: bytes | dict[str, Any], param: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = local_client.post(CHAT, content=content, headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] is None
    if param is not None:
        assert param in error["message"]


def test_context_length_exceeded(local_client: TestClient) -> None:
    reply = local_client.post(CHAT, json=_body(messages=[{"role": "user", "content": "w " * 100}]))
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"


def test_max_tokens_clipped_to_window(local_client: TestClient, engine: FakeEngine) -> None:
    assert local_client.post(CHAT, json=_body(max_tokens=1000)).status_code == 200
    assert (
        local_client.post(CHAT, json=_body(max_completion_tokens=7, max_tokens=3)).status_code
        == 200
    )
    assert [p.max_tokens for p in engine.params] == [64 - 5, 7]


def test_unknown_openai_fields_are_ignored(local_client: TestClient, engine: FakeEngine) -> None:
    extras = {
        "parallel_tool_calls": False,
        "user": "u",
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "logit_bias": {"5": 1},
        "service_tier": "auto",
        "metadata": {"a": "b"},
        "store": False,
    }
    reply = local_client.post(CHAT, json=_body(**extras, stop="x", seed=3, temperature=0))
    assert reply.status_code == 200, reply.text
    assert engine.params[0] == SamplingParams(max_tokens=59, temperature=0.0, seed=3, stop=("x",))


def test_completion_shape(local_client: TestClient) -> None:
    reply = local_client.post(CHAT, json=_body(logprobs=True, top_logprobs=2))
    data = reply.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "m"
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello world",
        "refusal": None,
    }
    assert data["choices"][0]["finish_reason"] == "stop"
    assert [e["token"] for e in data["choices"][0]["logprobs"]["content"]] == ["Hello", " world"]
    assert data["choices"][0]["logprobs"]["refusal"] is None
    assert data["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_no_logprobs_gives_null(local_client: TestClient) -> None:
    assert local_client.post(CHAT, json=_body()).json()["choices"][0]["logprobs"] is None


def test_stream_shape(local_client: TestClient) -> None:
    body = _body(stream=True, logprobs=True, stream_options={"include_usage": True})
    with local_client.stream("POST", CHAT, json=body) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in reply.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = chunks[1:3]
    assert [c["choices"][0]["delta"]["content"] for c in tokens] == ["Hello", " world"]
    assert [len(c["choices"][0]["logprobs"]["content"]) for c in tokens] == [1, 1]
    assert chunks[3]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"]["total_tokens"] == 7


def test_models_health_generations(local_client: TestClient) -> None:
    assert local_client.get("/health").json() == {"status": "ok"}
    assert local_client.get("/v1/models").json()["data"][0]["id"] == "fake-model"
    local_client.post(CHAT, json=_body())
    records = local_client.get("/v1/generations").json()["data"]
    assert records[-1]["finish_reason"] == "stop"
    assert records[-1]["id"].startswith("chatcmpl-")


def test_mounted_app_keeps_openai_errors(engine: FakeEngine) -> None:
    main = FastAPI()
    main.mount("/local", create_local_app(engine))
    with TestClient(main) as main_client:
        reply = main_client.post("/local" + CHAT, json={"messages": []})
        assert reply.status_code == 400
        assert reply.json()["error"]["param"] == "messages"
        assert main_client.post("/local" + CHAT, json=_body()).status_code == 200
        missing = main_client.get("/local/v1/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "invalid_request_error"


class BrokenEngine(FakeEngine):
    """Fails inside generation, with a message that must not reach the client."""

    def generate(
        self, request_id: str, prompt_tokens: list[int], params: SamplingParams, cancel: Any
    ) -> Iterator[GenerationEvent]:
        yield TextDelta("Hel")
        msg = "secret /etc/model/path"
        raise RuntimeError(msg)


def test_engine_failure_is_openai_500_without_details() -> None:
    with TestClient(create_local_app(BrokenEngine())) as broken:
        reply = broken.post(CHAT, json=_body())
        assert reply.status_code == 500
        assert reply.json()["error"]["type"] == "server_error"
        assert "secret" not in reply.text
        with broken.stream("POST", CHAT, json=_body(stream=True)) as stream:
            events = [line for line in stream.iter_lines() if line]
        assert json.loads(events[-1].removeprefix("data: "))["error"]["type"] == "server_error"
        assert "secret" not in "".join(events)


class BusyEngine(FakeEngine):
    """Every slot and waiting place is taken."""

    def submit(
        self,
        request_id: str,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: Any,
        emit: Emit,
    ) -> None:
        raise ServerBusyError("The local model is busy: retry in a moment.", retry_after=1)


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_full_queue_is_503_with_retry_after_before_any_header(stream: bool) -> None:
    with TestClient(create_local_app(BusyEngine())) as busy:
        reply = busy.post(CHAT, json=_body(stream=stream))
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"] == {
        "message": "The local model is busy: retry in a moment.",
        "type": "server_error",
        "param": None,
        "code": "server_busy",
    }
