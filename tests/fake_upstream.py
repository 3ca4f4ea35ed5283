"""A fault-injecting OpenAI-compatible upstream, for tests only.

The request's ``model`` picks the behaviour:
``ok`` (a short answer whose logprobs hold a -9999 sentinel, a -3.4e38 and a NaN),
``status:<code>`` (that HTTP error, OpenAI-shaped; 429 sends ``Retry-After: 7``;
``status:401`` echoes the key in its message as OpenAI does), ``context`` (400
context_length_exceeded), ``flaky:<code>:<n>`` (fails n times, then ok), ``garbage``
(200 with a body that is not JSON), ``hang`` (never answers), ``drop`` (streams two
chunks, then cuts the connection), ``slow`` (streams 500 tokens, one per 20 ms, and
records in ``closed`` the time at which its client went away), ``interrupting`` (streams
slowly, and like llama-cpp-python's server with its default flags cuts a running stream
when another ``interrupting`` request arrives; ``interrupting`` (a ``Streams``) holds how
many streamed at once). ``hits`` counts requests per model. ``/v1/completions`` cannot score
(``completions`` counts its requests), except for the models ``scores`` (echoes every prompt
token with a logprob of -0.1 per character: an upstream that scores given text) and
``scores-404-once`` (the same, after one 404 to its first request).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

TOKENS: list[dict[str, Any]] = [
    {"token": "Hello", "logprob": -0.1, "top": [("Hello", -0.1), ("Hi", -2.5)]},
    {"token": " there", "logprob": -9999.0, "top": [(" world", -0.5), (" there", -9999.0)]},
    {"token": " friend", "logprob": -3.4e38, "top": [(" friend", -3.4e38)]},
    {"token": "!", "logprob": math.nan, "top": [("!", math.nan), (".", -1.0)]},
    {"token": " Bye", "logprob": -0.7, "top": [(" Bye", -0.7), (" See", -1.2)]},
]


DATA = Path(__file__).resolve().parent / "data"


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    def one(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {**one(item["token"], item["logprob"]), "top_logprobs": [one(*t) for t in item["top"]]}


def _error(status: int, message: str, code: str | None = None, **headers: str) -> Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_fake_upstream() -> FastAPI:
    app = FastAPI()
    app.state.hits = Counter()
    app.state.completions = Counter()
    app.state.closed = []
    app.state.interrupting = Streams()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model"))
        app.state.hits[model] += 1
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if model.startswith("flaky:"):
            _, code, times = model.split(":")
            if app.state.hits[model] <= int(times):
                return _error(int(code), "temporarily unavailable")
        elif model.startswith("status:"):
            status = int(model.split(":")[1])
            if status == 401:
                return _error(401, f"Incorrect API key provided: {key}.", "invalid_api_key")
            if status == 429:
                return _error(
                    429, "Rate limit reached", "rate_limit_exceeded", **{"Retry-After": "7"}
                )
            return _error(status, f"upstream failure {status}")
        elif model == "echo-key":  # a 400 that quotes the key back, as some servers do
            return _error(400, f"bad request from {key}")
        elif model == "context":
            return _error(
                400, "This model's maximum context length is 8 tokens.", "context_length_exceeded"
            )
        elif model == "garbage":
            return PlainTextResponse("this is not json{", media_type="application/json")
        elif model == "hang":
            await asyncio.sleep(60)
        if model.startswith("recorded:"):
            recorded = json.loads((DATA / model.split(":", 1)[1]).read_text(encoding="utf-8"))
            if body.get("stream"):
                return StreamingResponse(_replay(recorded), media_type="text/event-stream")
            return JSONResponse(recorded)
        if model == "interrupting" and body.get("stream"):
            streams: Streams = app.state.interrupting
            streams.latest = ticket = app.state.hits[model]
            stream = _interrupting(ticket, streams)
            return StreamingResponse(stream, media_type="text/event-stream")
        if model == "slow" and body.get("stream"):
            return StreamingResponse(_slow_stream(app.state.closed), media_type="text/event-stream")
        if body.get("stream"):
            return StreamingResponse(_stream(model), media_type="text/event-stream")
        text = "".join(t["token"] for t in TOKENS)
        completion = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": {"content": [_entry(t) for t in TOKENS]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }
        # allow_nan: a real backend bug we must survive (NaN is not JSON, Python reads it).
        return Response(json.dumps(completion, allow_nan=True), media_type="application/json")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        # An upstream that cannot score: ``status:<code>`` fails, anything else answers like
        # llama.cpp or Ollama do, with a completion and no echoed prompt logprobs.
        body = await request.json()
        model = str(body.get("model"))
        app.state.completions[model] += 1
        if model.startswith("status:"):
            status = int(model.split(":")[1])
            return _error(status, f"upstream refused completions ({status})")
        if model.startswith("scores"):
            if model == "scores-404-once" and app.state.completions[model] == 1:
                return _error(404, "Not Found")
            return JSONResponse(_echo_scores(model, body.get("prompt")))
        prompts = body.get("prompt")
        count = len(prompts) if isinstance(prompts, list) else 1
        choices = [
            {"index": i, "text": "Hello", "logprobs": None, "finish_reason": "length"}
            for i in range(count)
        ]
        completion = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
        }
        return JSONResponse(completion)

    return app


def _echo_scores(model: str, prompt: Any) -> dict[str, Any]:
    """A completions answer that echoes each prompt's tokens (words with their leading
    spaces) with logprobs, like vLLM or the embedded model asked for ``echo``."""
    prompts = prompt if isinstance(prompt, list) else [prompt]
    choices = []
    for index, text in enumerate(prompts):
        tokens = re.findall(r"\s*\S+|\s+", str(text))
        values = [-0.1 * len(t) if i else None for i, t in enumerate(tokens)]
        offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
        logprobs = {
            "tokens": tokens,
            "token_logprobs": values,
            "top_logprobs": [
                None if v is None else {t: v} for t, v in zip(tokens, values, strict=True)
            ],
            "text_offset": offsets,
            "token_bytes": [list(t.encode()) for t in tokens],
        }
        choices.append(
            {"index": index, "text": text, "logprobs": logprobs, "finish_reason": "length"}
        )
    used = sum(len(c["logprobs"]["tokens"]) for c in choices)
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": used, "completion_tokens": 0, "total_tokens": used},
    }


async def _stream(model: str) -> AsyncIterator[bytes]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    for i, item in enumerate(TOKENS):
        if model == "drop" and i == 2:
            msg = "connection dropped on purpose"
            raise ConnectionResetError(msg)
        choice = {
            "index": 0,
            "delta": {"content": item["token"]},
            "logprobs": {"content": [_entry(item)]},
            "finish_reason": None,
        }
        chunk = {**base, "choices": [choice]}
        yield f"data: {json.dumps(chunk, allow_nan=True)}\n\n".encode()
        await asyncio.sleep(0.01)
    last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield f"data: {json.dumps(last)}\n\n".encode()
    yield b"data: [DONE]\n\n"


@dataclass
class Streams:
    """The ``interrupting`` streams: the latest request's ticket, those streaming now, and
    the most that ever streamed at once (a test sets a new ``Streams`` to start counting)."""

    latest: int = 0
    live: set[int] = field(default_factory=set)
    peak: int = 0


async def _interrupting(ticket: int, streams: Streams) -> AsyncIterator[bytes]:
    """``_stream``, slower, cut (the connection dropped) once a later request has arrived."""
    streams.live.add(ticket)
    streams.peak = max(streams.peak, len(streams.live))
    try:
        async for chunk in _stream("interrupting"):
            if streams.latest != ticket:
                msg = "interrupted by a newer request"
                raise ConnectionResetError(msg)
            yield chunk
            await asyncio.sleep(0.04)
    finally:
        streams.live.discard(ticket)


async def _slow_stream(closed: list[float]) -> AsyncIterator[bytes]:
    base = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 0, "model": "slow"}
    try:
        for _ in range(500):
            item = {"token": " la", "logprob": -0.2, "top": [(" la", -0.2)]}
            choice = {
                "index": 0,
                "delta": {"content": item["token"]},
                "logprobs": {"content": [_entry(item)]},
                "finish_reason": None,
            }
            yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()
            await asyncio.sleep(0.02)
        yield b"data: [DONE]\n\n"
    finally:
        closed.append(time.monotonic())


async def _replay(recorded: dict[str, Any]) -> AsyncIterator[bytes]:
    """A recorded completion as its stream: a chunk per token, then finish, then usage."""
    base = {k: recorded[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    choice = recorded["choices"][0]
    for item in choice["logprobs"]["content"]:
        delta = {"index": 0, "delta": {"content": item["token"]}, "finish_reason": None}
        chunk = {**base, "choices": [{**delta, "logprobs": {"content": [item]}}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": choice["finish_reason"]}
    yield f"data: {json.dumps({**base, 'choices': [last]})}\n\n".encode()
    usage = {**base, "choices": [], "usage": recorded["usage"]}
    yield f"data: {json.dumps(usage)}\n\n".encode()
    yield b"data: [DONE]\n\n"
