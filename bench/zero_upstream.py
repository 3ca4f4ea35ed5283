"""A zero-latency OpenAI-compatible upstream for load runs: it answers at once.

``POST /v1/chat/completions`` returns ``tokens`` tokens (default 64), each with its
``logprob``, ``bytes`` and ``top_logprobs`` (as many as asked, at most 20), streamed
(``stream: true``, with a usage chunk when ``stream_options.include_usage``) or whole.
Every response is built once at start, so the upstream costs next to nothing and a load
run measures the service in front of it. ``GET /v1/models`` and ``GET /health`` answer too.

    python -m bench.zero_upstream --port 9100 [--tokens 64] [--token-delay 0]

``--token-delay S`` streams one token every S seconds instead (a fault run needs streams
that are still open when the upstream dies).

``create_zero_upstream()`` gives the ASGI app to run in-process. Any service that speaks
to an OpenAI-compatible server can be measured against it (``OPENAI_BASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "zero-upstream"
WORDS = [" alpha", " beta", " gamma", " delta", " epsilon", " zeta", " eta", " theta"]


def _entry(i: int, top: int) -> dict[str, Any]:
    token = WORDS[i % len(WORDS)]
    alternatives = [WORDS[(i + k) % len(WORDS)] for k in range(max(top, 1))]
    logprobs = [math.log(0.6)] + [math.log(0.4 / max(top - 1, 1))] * (len(alternatives) - 1)
    return {
        "token": token,
        "logprob": logprobs[0],
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode())}
            for t, lp in zip(alternatives[:top], logprobs, strict=False)
        ],
    }


class Answers:
    """The prebuilt bodies, per number of top logprobs asked for."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self._whole: dict[int, bytes] = {}
        self._stream: dict[tuple[int, bool], list[bytes]] = {}

    def whole(self, top: int) -> bytes:
        if top not in self._whole:
            entries = [_entry(i, top) for i in range(self.tokens)]
            body = {
                "id": "chatcmpl-zero",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "".join(e["token"] for e in entries),
                        },
                        "logprobs": {"content": entries},
                        "finish_reason": "length",
                    }
                ],
                "usage": self._usage(),
            }
            self._whole[top] = json.dumps(body).encode()
        return self._whole[top]

    def stream(self, top: int, usage: bool) -> bytes:
        return b"".join(self.frames(top, usage))

    def frames(self, top: int, usage: bool) -> list[bytes]:
        """The stream's SSE frames, each a bytes object ending in a blank line."""
        if (top, usage) not in self._stream:
            base = {"id": "chatcmpl-zero", "object": "chat.completion.chunk", "created": 0}
            base["model"] = MODEL
            frames = []
            for i in range(self.tokens):
                entry = _entry(i, top)
                choice = {
                    "index": 0,
                    "delta": {"content": entry["token"]},
                    "logprobs": {"content": [entry]},
                    "finish_reason": None,
                }
                frames.append({**base, "choices": [choice]})
            last = {"index": 0, "delta": {}, "finish_reason": "length"}
            frames.append({**base, "choices": [last]})
            if usage:
                frames.append({**base, "choices": [], "usage": self._usage()})
            lines = [f"data: {json.dumps(f)}\n\n".encode() for f in frames]
            self._stream[(top, usage)] = [*lines, b"data: [DONE]\n\n"]
        return self._stream[(top, usage)]

    def _usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": 8,
            "completion_tokens": self.tokens,
            "total_tokens": 8 + self.tokens,
        }


def create_zero_upstream(tokens: int = 64, token_delay: float = 0.0) -> Starlette:
    """The upstream app: every completion has ``tokens`` tokens; a stream sends them at once,
    or one every ``token_delay`` seconds."""
    answers = Answers(tokens)

    async def chat(request: Request) -> Response:
        body = await request.json()
        top = min(int(body.get("top_logprobs") or 0), 20) if body.get("logprobs") else 0
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if token_delay <= 0:
                payload = answers.stream(top, usage)

                async def once() -> Any:
                    yield payload

                return StreamingResponse(once(), media_type="text/event-stream")
            frames = answers.frames(top, usage)

            async def paced() -> Any:
                for frame in frames:
                    yield frame
                    await asyncio.sleep(token_delay)

            return StreamingResponse(paced(), media_type="text/event-stream")
        return Response(answers.whole(top), media_type="application/json")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(
        create_zero_upstream(args.tokens, args.token_delay),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
