"""The edge of the app in one ordered list, and what makes it safe to expose.

``edge_middleware`` returns the whole middleware stack, outermost first, as Starlette's
``build_middleware_stack`` takes it (``FastAPI(middleware=...)``; Starlette adds its own
``ServerErrorMiddleware`` outside and ``ExceptionMiddleware`` inside):

1. ``ObserveMiddleware``: metrics and the access log see every request, refused ones too;
2. CORS (``LOGPROBS_CORS_ORIGINS``): it answers preflights before the key check;
3. ``ApiKeyMiddleware`` (``LOGPROBS_API_KEYS``);
4. ``LimitsMiddleware`` (per key or client address);
5. ``BodySizeLimit``;
6. ``ErrorMiddleware``: typed errors from here in (``workarounds.hidden_errors``);
7. ``CancelOnDisconnect`` (``workarounds.work_after_disconnect``);
8. ``EnvelopeCheck``, innermost: the body LangServe is about to read
   (``workarounds.unchecked_envelope``).

``install_exposure`` adds the routes that go with it: ``/login`` (with keys) and ``/metrics``
(unless it has a port of its own).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from langserve_logprobs.auth import ApiKeyMiddleware, KeyChecker, add_login_routes, load_api_keys
from langserve_logprobs.metrics import ObserveMiddleware, ServiceMetrics, add_metrics_route
from langserve_logprobs.quotas import BodySizeLimit, ClientLimits, LimitsMiddleware
from langserve_logprobs.settings import Settings
from langserve_logprobs.workarounds.hidden_errors import ErrorMiddleware
from langserve_logprobs.workarounds.unchecked_envelope import EnvelopeCheck
from langserve_logprobs.workarounds.work_after_disconnect import CancelOnDisconnect


@dataclass
class Exposure:
    """The keys and the per-process key of the embedded model's private port."""

    api_keys: list[str] = field(default_factory=list)
    private_key: str | None = None
    checker: KeyChecker | None = None

    @property
    def secrets(self) -> list[str]:
        """Strings that must never reach a log or a client."""
        return [*self.api_keys, *([self.private_key] if self.private_key else [])]


def plan_exposure(settings: Settings, embedded: bool) -> Exposure:
    """Read the keys (fail at startup on a bad ``LOGPROBS_API_KEYS``) and, with keys and the
    embedded model, make the private port's key."""
    keys = load_api_keys(settings)
    private = secrets.token_urlsafe(32) if keys and embedded else None
    checker = KeyChecker(keys) if keys else None
    return Exposure(api_keys=keys, private_key=private, checker=checker)


def edge_middleware(
    settings: Settings, exposure: Exposure, metrics: ServiceMetrics, secrets: list[str]
) -> list[Middleware]:
    """The middleware stack, outermost first (the order in the module docstring)."""
    stack = [Middleware(ObserveMiddleware, metrics=metrics)]
    if settings.cors_origin_list:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origin_list,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
                expose_headers=["Retry-After"],
                allow_credentials=False,
                max_age=600,
            )
        )
    if exposure.checker is not None:
        stack.append(Middleware(ApiKeyMiddleware, checker=exposure.checker))
    if settings.max_concurrent is not None or settings.rate_limit is not None:
        limits = ClientLimits(settings.max_concurrent, settings.rate_limit)
        stack.append(Middleware(LimitsMiddleware, limits=limits))
    stack += [
        Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        Middleware(ErrorMiddleware, secrets=secrets),
        Middleware(CancelOnDisconnect),
        Middleware(EnvelopeCheck),
    ]
    return stack


def install_exposure(
    app: FastAPI, settings: Settings, exposure: Exposure, metrics: ServiceMetrics
) -> None:
    """Add ``/login`` (with keys) and ``/metrics`` (unless it has a port of its own)."""
    if exposure.checker is not None:
        add_login_routes(app, exposure.checker)
    if settings.metrics_port is None:
        add_metrics_route(app, metrics)
