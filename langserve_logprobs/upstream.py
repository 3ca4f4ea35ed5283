"""The upstream: one value for the OpenAI-compatible server that every chain calls.

``create_app`` builds it once (``Upstream.for_app``) and hands it to the chains: the base URL,
the key (for the embedded model: its private address, and its private key when the service
has keys), the configured kind and the capabilities of that kind (``auto``: asked once and
cached, ``langserve_logprobs.capabilities``), the timeout and the retries. The chat model and
the scorer build their OpenAI clients from ``client_options()``; nothing else reads the key.

It also decides how many requests the upstream serves at once. llama-cpp-python's server,
with its default flags (``--interrupt_requests True``), cuts a running stream short as soon
as another request arrives: two batch items sent together lost one (``503``, "connection
failed"). The capability table says how many requests each kind takes at once
(``max_concurrent``: 1 for that server, no limit for the others), ``LOGPROBS_UPSTREAM_CONCURRENCY``
overrides it, and every request to the upstream takes a ``turn()``: past the limit it waits,
first come first served, for a request to finish, so nothing is cut or lost.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from langserve_logprobs.capabilities import (
    Capabilities,
    UpstreamKind,
    acapabilities_for,
    capabilities_for,
)
from langserve_logprobs.settings import Settings

LOCAL_API_KEY = "local-no-key"
"""What the OpenAI SDK is given when the upstream needs no key (the SDK insists on one)."""


@dataclass(eq=False)
class Upstream:
    """The server the chains call, and how (see the module docstring)."""

    base_url: str
    api_key: SecretStr | None
    model: str
    """The model name sent when a request names none (``LOGPROBS_MODEL``)."""
    kind: UpstreamKind
    timeout: float
    retries: int
    concurrency: int | None = None
    """Most requests in flight at once; None: what the kind takes (``max_concurrent``)."""

    def __post_init__(self) -> None:
        # Not fields: the turns are this object's own, never copied (one gate per loop).
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._gates = weakref.WeakKeyDictionary()
        self._sync_gate: threading.Semaphore | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Upstream:
        """The upstream the settings name: ``OPENAI_BASE_URL`` (else OpenAI) and its key."""
        return cls(
            base_url=settings.upstream_base_url,
            api_key=settings.openai_api_key,
            model=settings.model_name,
            kind=settings.upstream_kind,
            timeout=settings.request_timeout,
            retries=settings.max_retries,
            concurrency=settings.upstream_concurrency,
        )

    @classmethod
    def for_app(
        cls, settings: Settings, embedded_url: str | None, private_key: str | None
    ) -> Upstream:
        """What ``create_app``'s chains call: the configured upstream, or the embedded model
        at ``embedded_url`` (behind ``private_key`` when the service has keys)."""
        upstream = cls.from_settings(settings)
        if embedded_url is None:
            return upstream
        upstream.base_url = embedded_url
        upstream.api_key = SecretStr(private_key) if private_key else None
        if upstream.kind == "auto":  # no need to ask: we run it
            upstream.kind = "embedded"
        return upstream

    @property
    def key(self) -> str:
        """The key sent to the upstream (a placeholder when it needs none)."""
        return self.api_key.get_secret_value() if self.api_key else LOCAL_API_KEY

    @property
    def secrets(self) -> list[str]:
        """The key, when there is one: it must never reach a log or a client."""
        return [self.key] if self.api_key else []

    def client_options(self) -> dict[str, Any]:
        """``openai.OpenAI``/``AsyncOpenAI`` (and ChatOpenAI) arguments for this upstream."""
        return {
            "base_url": self.base_url,
            "api_key": self.key,
            "timeout": self.timeout,
            "max_retries": self.retries,
        }

    def _probe_key(self) -> str | None:
        return self.key if self.api_key else None

    def capabilities(self) -> Capabilities:
        """What the upstream supports (blocking the first time its kind is asked)."""
        return capabilities_for(self.base_url, self.kind, self._probe_key())

    async def acapabilities(self) -> Capabilities:
        """``capabilities`` without blocking the event loop."""
        return await acapabilities_for(self.base_url, self.kind, self._probe_key())

    def limit(self, caps: Capabilities) -> int | None:
        """How many requests may be in flight at once (None: no limit)."""
        return self.concurrency if self.concurrency is not None else caps.max_concurrent

    def _gate(self, limit: int) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(limit)
            return gate

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Capabilities]:
        """Hold one of the upstream's places for a request (waiting for one if need be);
        yields its capabilities."""
        caps = await self.acapabilities()
        limit = self.limit(caps)
        if limit is None:
            yield caps
            return
        async with self._gate(limit):
            yield caps

    @contextmanager
    def sync_turn(self) -> Iterator[Capabilities]:
        """``turn`` for a blocking caller (its own count: sync callers wait for sync ones)."""
        caps = self.capabilities()
        limit = self.limit(caps)
        if limit is None:
            yield caps
            return
        with self._lock:
            if self._sync_gate is None:
                self._sync_gate = threading.Semaphore(limit)
            gate = self._sync_gate
        with gate:
            yield caps
