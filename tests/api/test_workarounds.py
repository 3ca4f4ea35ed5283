"""Canaries: each upstream behaviour that a module of ``langserve_logprobs.workarounds``
corrects, shown on the stock library. A failure here means a new version changed that
behaviour: read the named module's docstring and delete the workaround if it is no longer
needed (or adapt it).
"""

from __future__ import annotations

import inspect
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.testclient import TestClient
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler
from langchain_core.utils._merge import merge_dicts
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models._client_utils import StreamChunkTimeoutError
from langchain_openai.chat_models.base import BaseChatOpenAI
from langserve import APIHandler, add_routes
from openai._httpx2 import request_exceptions, timeout_exceptions
from pydantic import BaseModel, SecretStr
from starlette.types import Message


class _Small(BaseModel):
    kept: int


def _stock(runnable: Any, **kwargs: Any) -> TestClient:
    app = FastAPI()
    add_routes(app, runnable, path="/r", **kwargs)
    return TestClient(app, raise_server_exceptions=False)


def test_langserve_validates_invoke_output_again() -> None:
    """workarounds.invoke_encoding: LangServe's /invoke validates the output against the
    declared type a second time (an unknown key is dropped on the way)."""
    lam: Any = RunnableLambda(lambda _: {"kept": 1, "dropped": 2})
    runnable = lam.with_types(input_type=str, output_type=_Small)
    reply = _stock(runnable).post("/r/invoke", json={"input": "x"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == {"kept": 1}


def test_langserve_reads_a_request_in_one_method() -> None:
    """workarounds.invoke_encoding: LangServe's APIHandler reads and checks an invoke
    request (config, input) in ``_get_config_and_input``, which our /invoke calls."""
    parameters = inspect.signature(APIHandler._get_config_and_input).parameters
    assert list(parameters)[:3] == ["self", "request", "config_hash"]
    assert "endpoint" in parameters
    assert inspect.iscoroutinefunction(APIHandler._get_config_and_input)


def _fails(value: str) -> str:
    if value == "bad":
        msg = "item failed"
        raise RuntimeError(msg)
    return value


def test_langserve_stream_errors_are_generic() -> None:
    """workarounds.hidden_errors: a failure is a bare 500, or in a stream LangServe's
    generic error frame (then the exception again)."""
    client = _stock(RunnableLambda(_fails))
    invoke = client.post("/r/invoke", json={"input": "bad"})
    assert invoke.status_code == 500
    assert invoke.text == "Internal Server Error"
    stream = client.post("/r/stream", json={"input": "bad"})
    frame = b'event: error\r\ndata: {"status_code": 500, "message": "Internal Server Error"}'
    assert frame in stream.content


def test_langserve_batch_fails_whole() -> None:
    """workarounds.all_or_nothing_batch: one failing item fails the whole batch."""
    reply = _stock(RunnableLambda(_fails)).post("/r/batch", json={"inputs": ["ok", "bad"]})
    assert reply.status_code == 500


def test_langserve_takes_a_string_as_batch_inputs() -> None:
    """workarounds.unchecked_envelope: a string ``inputs`` is iterated character by
    character, and ``"config": null`` is a 500."""
    client = _stock(RunnableLambda(lambda value: value).with_types(input_type=str))
    reply = client.post("/r/batch", json={"inputs": "ab"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == ["a", "b"]
    assert client.post("/r/invoke", json={"input": "a", "config": None}).status_code == 500


def test_fastapi_422_echoes_the_input() -> None:
    """workarounds.input_echo: FastAPI's 422 sends the offending input back."""
    app = FastAPI()

    @app.post("/p")
    async def post(body: _Small) -> int:
        return body.kept

    reply = TestClient(app).post("/p", json={"kept": "a long prompt"})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["input"] == "a long prompt"


async def test_starlette_endpoints_outlive_their_client() -> None:
    """workarounds.work_after_disconnect: an endpoint runs to its end after the client
    has gone (nothing cancels it)."""
    app = FastAPI()
    finished = anyio.Event()

    @app.post("/slow")
    async def slow() -> None:
        await anyio.sleep(0.05)
        finished.set()

    messages: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/slow", "headers": [],
             "query_string": b"", "root_path": "", "app": app}  # fmt: skip
    await app(scope, receive, send)
    assert finished.is_set()


def test_langchain_openai_dumps_a_model_per_chunk() -> None:
    """workarounds.sdk_chunk_models: langchain-openai's stream dumps the SDK's chunk model
    of every event back to a dict; and the private names that module uses are there."""
    assert "chunk.model_dump()" in inspect.getsource(BaseChatOpenAI._astream)
    assert issubclass(StreamChunkTimeoutError, Exception)
    assert all(issubclass(e, BaseException) for e in request_exceptions())
    assert all(issubclass(e, BaseException) for e in timeout_exceptions())
    assert merge_dicts({"content": [1]}, {"content": [2]}) == {"content": [1, 2]}


def test_a_streaming_model_streams_every_ainvoke() -> None:
    """workarounds.streaming_invoke: with ``streaming=True`` an ainvoke streams even with
    no listener; astream_events' handler is a ``_StreamingCallbackHandler``."""
    model = ChatOpenAI(api_key=SecretStr("x"), streaming=True)
    assert model._should_stream(async_api=True, run_manager=None)
    assert issubclass(_AstreamEventsCallbackHandler, _StreamingCallbackHandler)
