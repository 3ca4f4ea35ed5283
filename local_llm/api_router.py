"""HTTP routes of the local OpenAI-compatible server and the app factory.

Routes (inside the app; prefix them with the mount path when mounted):
``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/generations``, ``GET /health``.

The app carries its own exception handlers, so errors keep OpenAI's shape (400, not FastAPI's
422) when it is mounted inside another app. A mounted app's lifespan does not run: call
``engine.load()`` from the parent's lifespan (otherwise the first request loads it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from local_llm.completions import chat_extension
from local_llm.completions import router as completions_router
from local_llm.engine import LocalEngine
from local_llm.engine_api import ChatEngine
from local_llm.errors import EngineError, LocalLLMError, ServerBusyError
from local_llm.event_stream import EventStream
from local_llm.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ErrorDetail,
    ErrorResponse,
    GenerationList,
    ModelCard,
    ModelList,
)
from local_llm.serving import ChatService
from local_llm.validation import param_from_loc, parse_chat_request

logger = logging.getLogger(__name__)

router = APIRouter()


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(item, defs) for item in schema]
    return schema


def _request_body_doc() -> dict[str, Any]:
    schema = ChatCompletionRequest.model_json_schema(by_alias=True)
    inline = _inline_refs(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline}}}}


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.local_chat_service
    return service


@router.post(
    "/v1/chat/completions",
    openapi_extra=_request_body_doc(),
    responses={
        200: {"model": ChatCompletionResponse, "description": "Completion, or SSE chunks"},
        400: {"model": ErrorResponse, "description": "Invalid request"},
        500: {"model": ErrorResponse, "description": "Inference failed"},
    },
)
async def create_chat_completion(raw_request: Request) -> Response:
    """OpenAI chat completions, with logprobs, streaming and JSON-schema output."""
    request = parse_chat_request(await raw_request.body())
    service = _service(raw_request)
    scored = await chat_extension(raw_request, request)  # vLLM's prompt_logprobs (#11)
    try:
        prep = await service.prepare(request)
        if request.stream:
            cancel = threading.Event()
            events = service.submit(prep, cancel)  # 503 here, before any header, when busy
            return EventStream(service.stream(prep, events, cancel), cancel)
        response = await service.complete(prep, raw_request.is_disconnected)
    except LocalLLMError:
        raise
    except Exception as exc:
        logger.exception("local chat completion failed")
        msg = "The local model failed to generate a reply."
        raise EngineError(msg) from exc
    return JSONResponse({**response.model_dump(mode="json"), **scored})


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    """The one served model."""
    engine = _service(request).engine
    return ModelList(data=[ModelCard(id=engine.model_name, created=engine.loaded_at)])


@router.get("/v1/generations")
async def list_generations(request: Request) -> GenerationList:
    """The last 100 finished generations (newest last) and counters."""
    engine = _service(request).engine
    return GenerationList(data=engine.history(), counters=engine.counters())


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 once the model is loaded; 503 before, or with the reason it could not load."""
    engine = _service(request).engine
    if engine.is_loaded:
        return JSONResponse({"status": "ok"})
    if engine.startup_error:
        return JSONResponse({"status": "error", "reason": engine.startup_error}, status_code=503)
    return JSONResponse({"status": "loading"}, status_code=503)


def _error(status: int, detail: ErrorDetail) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=detail).model_dump(mode="json"), status_code=status)


async def _local_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LocalLLMError)
    detail = ErrorDetail(message=exc.message, type=exc.error_type, param=exc.param, code=exc.code)
    response = _error(exc.status_code, detail)
    if isinstance(exc, ServerBusyError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = param_from_loc(tuple(first["loc"])[1:])
    message = f"Invalid '{param}': {first['msg']}." if param else str(first["msg"])
    return _error(400, ErrorDetail(message=message, type="invalid_request_error", param=param))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return _error(exc.status_code, ErrorDetail(message=str(exc.detail), type=kind))


def install_error_handlers(app: FastAPI) -> None:
    """Give ``app`` OpenAI-shaped errors: 400 for validation, no stack traces."""
    app.add_exception_handler(LocalLLMError, _local_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def create_local_app(
    engine: ChatEngine | None = None,
    *,
    model_path: str | None = None,
    n_ctx: int = 4096,
    n_threads: int | None = None,
) -> FastAPI:
    """Build the local OpenAI-compatible app.

    Args:
        engine: an engine to serve (loaded or not); the caller keeps ownership of it.
            Without one, a ``LocalEngine`` is created and closed with the app.
        model_path: GGUF file for the created engine (default: the bundled Gemma 3 270M).
        n_ctx: context window of the created engine.
        n_threads: threads of the created engine (default: half the cores).

    Returns:
        A FastAPI app whose lifespan loads the model in a thread. When mounted, that lifespan
        does not run: call ``engine.load()`` from the parent app's lifespan.
    """
    owned = engine is None
    served: ChatEngine = engine or LocalEngine(model_path, n_ctx=n_ctx, n_threads=n_threads)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(served.load)
        try:
            yield
        finally:
            if owned:
                await anyio.to_thread.run_sync(served.close)

    app = FastAPI(
        title="Local LLM",
        description="OpenAI-compatible chat completions with logprobs from a local model.",
        lifespan=lifespan,
    )
    app.state.local_chat_service = ChatService(served)
    app.state.local_engine = served
    app.include_router(router)
    app.include_router(completions_router)
    install_error_handlers(app)
    return app
