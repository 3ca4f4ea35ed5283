"""The OpenAI SDK builds a pydantic model per streamed token; we read the stream as dicts.

Upstream behaviour (openai SDK, langchain-openai 1.x): the SDK turns each server-sent event
into a pydantic ``ChatCompletionChunk`` that langchain-openai's ``_astream`` dumps straight
back to a dict (``model_dump``); with ``top_logprobs`` that round trip of every token was the
largest single cost of a request (``bench/bench_service.py``).

Correction: the SDK still sends the request (headers, retries, timeouts, status errors
mapped to its exceptions) but ``raw_chunks`` splits the body into events and
parses each once (pydantic-core's ``from_json``); ``merge_chunks`` sums a plain answer's
chunks as one.
It leans on three private names, each pinned by a canary: ``openai._httpx2``'s lists of
transport errors (the SDK's HTTP client), langchain-openai's ``StreamChunkTimeoutError``
(``_client_utils``) and langchain-core's ``merge_dicts`` (``utils._merge``).

Caveats: the dicts hold only the keys the upstream sent (the SDK's dump adds every field it
knows as ``None``); ``normalise`` puts back the one a caller can see, ``logprobs.refusal``.

Delete when: langchain-openai reads the stream without a model per chunk (the canary
``test_langchain_openai_dumps_a_model_per_chunk`` fails).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
from langchain_core.utils._merge import merge_dicts
from langchain_openai.chat_models._client_utils import StreamChunkTimeoutError

# The SDK's own lists of transport errors: its HTTP client is httpx2, not httpx.
from openai._httpx2 import request_exceptions, timeout_exceptions
from pydantic_core import from_json


def _stream_error(data: Any, request: Any) -> openai.APIError | None:
    """The SDK's error for an event that carries ``{"error": ...}`` instead of a chunk."""
    if not isinstance(data, dict) or not data.get("error"):
        return None
    error = data["error"]
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=request, body=error)


def normalise(chunk: dict[str, Any]) -> dict[str, Any]:
    """``chunk`` (in place) as the SDK's ``model_dump`` would show it to langchain-openai."""
    for choice in chunk.get("choices") or ():
        logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
        if isinstance(logprobs, dict):
            logprobs.setdefault("refusal", None)
    return chunk


async def raw_chunks(
    completions: Any, payload: dict[str, Any], chunk_timeout: float | None = None
) -> AsyncIterator[dict[str, Any]]:
    """POST ``payload`` (``stream: true``) and yield each event's JSON object.

    Args:
        completions: the SDK's ``AsyncOpenAI().chat.completions`` resource.
        payload: the request body, as langchain-openai builds it.
        chunk_timeout: most seconds between two chunks (langchain-openai's
            ``stream_chunk_timeout``: keep-alive comments do not reset it); None: no bound.

    Raises:
        openai.APIError: the upstream answered with an error status or an error event.
        StreamChunkTimeoutError: no chunk within ``chunk_timeout``.
    """
    loop = asyncio.get_running_loop()
    async with completions.with_streaming_response.create(**payload) as response:
        request = response.http_request
        received = 0
        # Whole network reads, split here: far fewer awaits than one per line.
        reads = response.iter_bytes()
        pending = b""
        data: list[bytes] = []
        deadline = loop.time() + (chunk_timeout or 0)
        while True:
            if chunk_timeout:
                try:
                    async with asyncio.timeout_at(deadline):
                        read = await _read(reads, request)
                except TimeoutError as e:
                    raise StreamChunkTimeoutError(
                        chunk_timeout, model_name=payload.get("model"), chunks_received=received
                    ) from e
            else:
                read = await _read(reads, request)
            if read is None:
                break
            *lines, pending = (pending + read).replace(b"\r\n", b"\n").split(b"\n")
            for line in lines:
                if line:
                    if line.startswith(b"data:"):
                        data.append(line[5:].removeprefix(b" "))
                    continue  # "event:", "id:", "retry:" and comments carry nothing we use
                if not data:
                    continue
                text, data = b"\n".join(data), []
                if text.startswith(b"[DONE]"):
                    # Read the rest (normally nothing): a drained HTTP/1.1 connection is reused.
                    while await _read(reads, request) is not None:
                        pass
                    return
                received += 1
                yield _chunk(text, request)
                deadline = loop.time() + (chunk_timeout or 0)  # per chunk, as langchain-openai
        if pending.startswith(b"data:"):
            data.append(pending[5:].removeprefix(b" "))
        if data and not data[0].startswith(b"[DONE]"):  # the body ended without a blank line
            yield _chunk(b"\n".join(data), request)


async def _read(reads: AsyncIterator[bytes], request: Any) -> bytes | None:
    """The next network read (None at the end), errors as the SDK's stream raises them."""
    try:
        return await anext(reads, None)
    except timeout_exceptions() as err:
        raise openai.APITimeoutError(request=request) from err
    except request_exceptions() as err:
        raise openai.APIConnectionError(request=request) from err


def _chunk(text: bytes, request: Any) -> dict[str, Any]:
    try:
        chunk = from_json(text)  # pydantic-core's parser: about 3x json.loads here
    except ValueError:
        chunk = json.loads(text)  # what it cannot read, read as before (JSONDecodeError)
    if (error := _stream_error(chunk, request)) is not None:
        raise error
    return normalise(chunk)


_PLAIN_DELTA = frozenset({"role", "content", "refusal"})


def merge_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One chunk that langchain-openai reads as the sum of ``chunks``' messages, or None.

    Only plain text answers are merged here (one choice, string content, at most one
    finishing chunk and one usage): anything else (tool calls, refusals) is None and the
    caller sums the chunks one by one, as a stream would.
    """
    texts: list[str] = []
    logprobs: list[dict[str, Any]] = []
    role: str | None = None
    finish: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    for chunk in chunks:
        if chunk.get("usage"):
            if usage is not None:
                return None
            usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices:
            continue
        if len(choices) > 1 or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        delta = choice.get("delta")
        if delta is None:
            continue
        if any(v for k, v in delta.items() if k not in _PLAIN_DELTA) or delta.get("refusal"):
            return None
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            return None
        role = role or delta.get("role")
        if content:
            texts.append(content)
        if choice.get("logprobs"):
            logprobs.append(choice["logprobs"])
        if choice.get("finish_reason"):
            if finish is not None:
                return None
            finish = chunk
    if role not in (None, "assistant"):
        return None
    merged = {
        "index": 0,
        "delta": {"role": role or "assistant", "content": "".join(texts)},
        "logprobs": merge_dicts(*logprobs) if logprobs else None,
        "finish_reason": None,
    }
    out: dict[str, Any] = {"choices": [merged], "usage": usage}
    if finish is not None:
        merged["finish_reason"] = finish["choices"][0]["finish_reason"]
        for key in ("model", "system_fingerprint", "service_tier"):
            out[key] = finish.get(key)
    return out
