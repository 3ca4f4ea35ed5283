"""The LangServe app: every chain published with invoke, batch, stream and playground.

Run with ``python server.py`` or ``uvicorn --factory server:create_app``. With no
upstream configured, the embedded model is loaded in the lifespan and mounted at
``/local/v1``, and the chains call it over HTTP like any OpenAI-compatible server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from langchain_core.runnables import Runnable
from langserve import add_routes
from starlette.types import ASGIApp, Receive, Scope, Send

from chains import chat, classify, extract, generate
from langserve_logprobs.middleware import install_error_handling
from langserve_logprobs.routes import wrap_route
from langserve_logprobs.settings import LOCAL_PREFIX, Settings, get_settings
from ui import mount_ui

logger = logging.getLogger("langserve_logprobs")

# path, chain module, playground type
ROUTES: list[tuple[str, ModuleType, str]] = [
    ("/chat", chat, "chat"),
    ("/generate", generate, "default"),
    ("/classify", classify, "default"),
    ("/extract", extract, "default"),
]


def _secrets(settings: Settings) -> list[str]:
    key = settings.openai_api_key
    return [key.get_secret_value()] if key else []


class LearnListenAddress:
    """Tells the settings which address requests arrive on (for the embedded model's URL)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.settings.listen_address is None:
            server = scope.get("server")
            if server:
                self.settings.learn_listen_address(str(server[0]), server[1])
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: routes for every chain, the embedded model when it is the backend."""
    settings = settings or get_settings()
    engine: Any = None
    if settings.use_local:
        from local_llm import LocalEngine
        from local_llm.errors import EngineStartupError

        engine = LocalEngine(
            model_path=settings.local_model_path,
            n_ctx=settings.local_n_ctx,
            n_threads=settings.local_n_threads,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine is not None:
            try:
                await anyio.to_thread.run_sync(engine.load)
            except EngineStartupError as exc:
                # Stay up and say why on /healthz, rather than crash at the first request.
                logger.error("embedded model unavailable: %s", exc.message)
        app.state.ready = True
        yield
        if engine is not None:
            engine.close()

    app = FastAPI(
        title="langserve-logprobs",
        version="0.1.0",
        description="Token log-probabilities for remote LangChain clients.",
        lifespan=lifespan,
    )
    app.state.ready = False
    app.state.settings = settings
    install_error_handling(app, _secrets(settings))
    if engine is not None:
        from local_llm import create_local_app

        app.add_middleware(LearnListenAddress, settings=settings)

        app.mount(LOCAL_PREFIX.removesuffix("/v1"), create_local_app(engine))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        """200 once the model is loaded and the routes can answer."""
        if not app.state.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        if engine is not None and engine.startup_error:
            body = {"status": "error", "backend": "local", "reason": engine.startup_error}
            return JSONResponse(body, status_code=503)
        backend = "local" if engine is not None else settings.upstream_base_url
        return JSONResponse({"status": "ok", "backend": backend, "model": settings.model_name})

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    for path, module, playground in ROUTES:
        build: Callable[[Settings], Runnable[Any, Any]] = module.build_chain
        add_routes(
            app,
            wrap_route(build(settings), _secrets(settings)),
            path=path,
            config_keys=("configurable", "metadata", "tags"),
            playground_type=playground,  # type: ignore[arg-type]
        )
    mount_ui(app)
    return app


def main() -> None:
    """Serve on HOST:PORT with uvicorn."""
    import uvicorn

    settings = get_settings()
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
