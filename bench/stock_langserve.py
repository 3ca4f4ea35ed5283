"""Stock LangServe, the baseline of ``bench.bench_service``: ChatOpenAI at ``/chat``, nothing else.

The same chat model our ``/chat`` serves (logprobs on, 5 alternatives), published with a
plain ``add_routes``: no checks, no middleware, no capabilities, no metrics.

    python -m bench.stock_langserve --port 9200 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI
from langchain_openai import ChatOpenAI
from langserve import add_routes


def create_stock_app(upstream: str, model: str = "zero-upstream") -> FastAPI:
    """The baseline app: ``ChatOpenAI(...).bind(logprobs=True, top_logprobs=5)`` at /chat."""
    app = FastAPI(title="stock langserve")
    chat = ChatOpenAI(base_url=upstream, api_key="x", model=model)
    add_routes(app, chat.bind(logprobs=True, top_logprobs=5), path="/chat")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", required=True, help="base URL, ending in /v1")
    args = parser.parse_args()
    uvicorn.run(
        create_stock_app(args.upstream),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
