"""The embedded model as a backend: its engine, its app and an address of its own.

With no upstream configured, ``create_app`` builds an ``EmbeddedModel``: a listening
socket on 127.0.0.1 (a free port, bound right away), whose URL the chains are built
with, so they are plain OpenAI clients of ``http://127.0.0.1:<port>/v1``. In the app's
lifespan ``serving()`` loads the model and runs a second uvicorn server for the local app
on that socket. The same local app is also mounted on the main app at ``/local/v1`` for
users; the chains never depend on the port the main server listens on.

Nothing here imports ``local_llm`` (numpy, llama.cpp) until an ``EmbeddedModel`` is built:
an upstream-only install never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI

from langserve_logprobs.auth import PrivateKeyGuard
from langserve_logprobs.settings import Settings

logger = logging.getLogger("langserve_logprobs")

LOCAL_HOST = "127.0.0.1"


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the main server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedModel:
    """The embedded llama.cpp model, served on a private loopback port.

    Attributes:
        engine: the ``local_llm.LocalEngine`` (loaded in ``serving()``).
        app: the OpenAI-compatible local app (``/v1/...``, ``/health``).
        base_url: where the chains reach it, ``http://127.0.0.1:<port>/v1``.
    """

    def __init__(self, settings: Settings, private_key: str | None = None) -> None:
        from local_llm import LocalEngine, create_local_app

        self.engine: Any = LocalEngine(
            model_path=settings.local_model_path,
            n_ctx=settings.local_n_ctx,
            n_threads=settings.local_n_threads,
            parallel=settings.local_parallel,
            max_queue=settings.local_max_queue,
            deterministic=settings.local_deterministic,
        )
        self.app: FastAPI = create_local_app(self.engine)
        # What the private port serves: the app, behind the per-process key when the
        # service has keys (``exposure.plan_exposure`` makes it; the chains send it).
        self.private_app: Any = (
            PrivateKeyGuard(self.app, private_key) if private_key is not None else self.app
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((LOCAL_HOST, 0))
        self._socket.listen()
        weakref.finalize(self, self._socket.close)
        port = self._socket.getsockname()[1]
        self.base_url = f"http://{LOCAL_HOST}:{port}/v1"

    @property
    def startup_error(self) -> str | None:
        """Why the model cannot serve on this machine (its self-test failed), or None."""
        error: str | None = self.engine.startup_error
        return error

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Load the model and serve the local app on the private socket until exit.

        A failed startup self-test does not raise: the server stays up and reports it
        (``startup_error``, 503 on ``/healthz`` and on the routes).
        """
        from local_llm.errors import EngineStartupError

        try:
            await anyio.to_thread.run_sync(self.engine.load)
        except EngineStartupError as exc:
            logger.error("embedded model unavailable: %s", exc.message)
        config = uvicorn.Config(
            self.private_app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = _QuietServer(config)
        # uvicorn closes the sockets it served: hand it a duplicate, keep the address.
        task = asyncio.create_task(server.serve(sockets=[self._socket.dup()]))
        try:
            yield
        finally:
            server.should_exit = True
            await task
            self.engine.close()
