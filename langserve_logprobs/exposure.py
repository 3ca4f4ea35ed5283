"""Everything that makes the app safe to expose, put on it in one call (``server.py``).

From the outside in: ``ObserveMiddleware`` (metrics and the access log see every request,
refused ones too), CORS (``LOGPROBS_CORS_ORIGINS``; it answers preflights before the key
check), ``ApiKeyMiddleware`` (``LOGPROBS_API_KEYS``), ``LimitsMiddleware`` (per key or
client address) and ``BodySizeLimit``; inside them the error middleware and the routes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from fastapi import FastAPI
from pydantic import SecretStr
from starlette.middleware.cors import CORSMiddleware

from langserve_logprobs.auth import ApiKeyMiddleware, KeyChecker, add_login_routes, load_api_keys
from langserve_logprobs.metrics import ObserveMiddleware, ServiceMetrics, add_metrics_route
from langserve_logprobs.quotas import BodySizeLimit, ClientLimits, LimitsMiddleware
from langserve_logprobs.settings import Settings


@dataclass
class Exposure:
    """The keys and the per-process key of the embedded model's private port."""

    api_keys: list[str] = field(default_factory=list)
    private_key: str | None = None

    @property
    def secrets(self) -> list[str]:
        """Strings that must never reach a log or a client."""
        return [*self.api_keys, *([self.private_key] if self.private_key else [])]

    def chain_settings(self, settings: Settings) -> Settings:
        """``settings`` with the private key as the upstream key, when there is one."""
        if self.private_key is None:
            return settings
        return settings.model_copy(update={"openai_api_key": SecretStr(self.private_key)})


def plan_exposure(settings: Settings, embedded: bool) -> Exposure:
    """Read the keys (fail at startup on a bad ``LOGPROBS_API_KEYS``) and, with keys and the
    embedded model, make the private port's key."""
    keys = load_api_keys(settings)
    private = secrets.token_urlsafe(32) if keys and embedded else None
    return Exposure(api_keys=keys, private_key=private)


def install_exposure(
    app: FastAPI, settings: Settings, exposure: Exposure, metrics: ServiceMetrics
) -> None:
    """Add the edge middlewares, ``/login`` (with keys) and ``/metrics`` (unless it has a
    port of its own) to ``app``. Call after ``install_error_handling``: the middlewares
    added last run first."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.max_concurrent is not None or settings.rate_limit is not None:
        limits = ClientLimits(settings.max_concurrent, settings.rate_limit)
        app.add_middleware(LimitsMiddleware, limits=limits)
    if exposure.api_keys:
        checker = KeyChecker(exposure.api_keys)
        app.add_middleware(ApiKeyMiddleware, checker=checker)
        add_login_routes(app, checker)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
            expose_headers=["Retry-After"],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(ObserveMiddleware, metrics=metrics)
    if settings.metrics_port is None:
        add_metrics_route(app, metrics)
