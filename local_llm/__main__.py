"""Run the local OpenAI-compatible server alone: ``python -m local_llm --port 8001``."""

from __future__ import annotations

import argparse

import uvicorn

from local_llm.api_router import create_local_app
from local_llm.engine import LocalEngine


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m local_llm", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8001, help="port to bind")
    parser.add_argument("--model", default=None, help="GGUF path (default: bundled Gemma 3 270M)")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens")
    parser.add_argument("--n-threads", type=int, default=None, help="threads (default: cores // 2)")
    parser.add_argument("--parallel", type=int, default=8, help="requests decoded together")
    parser.add_argument("--max-queue", type=int, default=32, help="requests that may wait")
    parser.add_argument(
        "--deterministic", action="store_true", help="decode each request on its own"
    )
    args = parser.parse_args(argv)
    engine = LocalEngine(
        args.model,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        parallel=args.parallel,
        max_queue=args.max_queue,
        deterministic=args.deterministic,
    )
    app = create_local_app(engine)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
