"""A server-sent-events response that cancels its generation however the response ends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncGenerator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class EventStream(StreamingResponse):
    """SSE response that sets ``cancel`` and closes its generator when it ends, for any reason
    (done, client gone, server shutting down)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[str, None], cancel: threading.Event) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._content = content
        self._cancel = cancel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._cancel.set()
            with contextlib.suppress(RuntimeError):
                await self._content.aclose()
