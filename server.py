"""The LangServe app: every chain published with invoke, batch, stream and playground.

Run with ``python server.py`` or ``uvicorn --factory server:create_app``. With no
upstream configured, the embedded model is loaded in the lifespan and served on a
private loopback port (``langserve_logprobs.backend``), where the chains call it like any
OpenAI-compatible server; it is also mounted at ``/local/v1`` for users.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from types import ModuleType
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from langchain_core.runnables import Runnable
from langserve import add_routes

from chains import chat, classify, decide, extract, generate, score
from langserve_logprobs.access_log import configure_access_log
from langserve_logprobs.backend import EmbeddedModel
from langserve_logprobs.calibration.api import install_calibration
from langserve_logprobs.decisions_api import add_decisions_route
from langserve_logprobs.exposure import edge_middleware, install_exposure, plan_exposure
from langserve_logprobs.metrics import ServiceMetrics, serve_metrics
from langserve_logprobs.routes import wrap_route
from langserve_logprobs.settings import LOCAL_PREFIX, Settings, get_settings
from langserve_logprobs.upstream import Upstream
from langserve_logprobs.workarounds.input_echo import validation_error
from langserve_logprobs.workarounds.invoke_encoding import add_invoke_route
from ui import mount_ui

# path, chain module, playground type
ROUTES: list[tuple[str, ModuleType, str]] = [
    ("/chat", chat, "chat"),
    ("/generate", generate, "default"),
    ("/classify", classify, "default"),
    ("/extract", extract, "default"),
    ("/score", score, "default"),
]

# Every LangServe playground: the routes above and /decide (built apart: it shares its
# decision engine with /v1/decisions). tests/live/test_playground.py walks this list.
PLAYGROUNDS: list[tuple[str, str]] = [(path, kind) for path, _, kind in ROUTES]
PLAYGROUNDS.append(("/decide", "default"))

# What a request's config may set (LangServe's ``config_keys``).
CONFIG_KEYS = ("configurable", "metadata", "tags")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: routes for every chain, the embedded model when it is the backend."""
    settings = settings or get_settings()
    exposure = plan_exposure(settings, settings.use_local)
    embedded = EmbeddedModel(settings, exposure.private_key) if settings.use_local else None
    metrics = ServiceMetrics(embedded.engine if embedded is not None else None)
    # The chains are plain OpenAI clients: of the upstream, or of the embedded model's
    # own address (behind its private key when the service has keys).
    upstream = Upstream.for_app(
        settings, embedded.base_url if embedded is not None else None, exposure.private_key
    )
    secrets = [*Upstream.from_settings(settings).secrets, *exposure.secrets]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        port = settings.metrics_port
        metrics_server = serve_metrics(metrics, settings.host, port) if port else nullcontext()
        async with metrics_server, embedded.serving() if embedded is not None else nullcontext():
            app.state.ready = True
            yield
        calibration.store.database.dispose()

    app = FastAPI(
        title="langserve-logprobs",
        version="0.1.0",
        description="Token log-probabilities for remote LangChain clients.",
        lifespan=lifespan,
        middleware=edge_middleware(settings, exposure, metrics, secrets),
        exception_handlers={RequestValidationError: validation_error},
    )
    app.state.ready = False
    app.state.settings = settings
    app.state.backend_url = embedded.base_url if embedded is not None else None
    install_exposure(app, settings, exposure, metrics)
    calibration = install_calibration(app, settings)
    if embedded is not None:
        app.mount(LOCAL_PREFIX.removesuffix("/v1"), embedded.app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        """200 once the model is loaded and the routes can answer."""
        if not app.state.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        if embedded is not None and embedded.startup_error:
            body = {"status": "error", "backend": "local", "reason": embedded.startup_error}
            return JSONResponse(body, status_code=503)
        backend = "local" if embedded is not None else settings.upstream_base_url
        return JSONResponse({"status": "ok", "backend": backend, "model": settings.model_name})

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    for path, module, playground in ROUTES:
        build: Callable[[Settings, Upstream], Runnable[Any, Any]] = module.build_chain
        # /classify's method score applies learned calibrations (calibration_name) too
        chain = (
            classify.build_chain(settings, upstream, calibration) if module is classify else None
        )
        route = wrap_route(chain or build(settings, upstream), secrets)
        add_invoke_route(app, route, path, CONFIG_KEYS)
        add_routes(
            app,
            route,
            path=path,
            config_keys=CONFIG_KEYS,
            playground_type=playground,  # type: ignore[arg-type]
        )
    # One decision engine (and its content-free cache) behind /decide and /v1/decisions.
    engine = decide.build_engine(settings, upstream, calibrations=calibration)
    decide_route = wrap_route(decide.build_chain(settings, upstream, engine), secrets)
    add_invoke_route(app, decide_route, "/decide", CONFIG_KEYS)
    add_routes(
        app, decide_route, path="/decide", config_keys=CONFIG_KEYS, playground_type="default"
    )
    add_decisions_route(app, engine, secrets)
    mount_ui(app)
    return app


def main() -> None:
    """Serve on HOST:PORT with uvicorn."""
    import uvicorn

    settings = get_settings()
    logging.basicConfig(level=logging.INFO)
    configure_access_log()  # one JSON line per request replaces uvicorn's access log
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False)


if __name__ == "__main__":
    main()
