"""Starlette (so LangServe) keeps computing a request whose client has gone away.

Upstream behaviour (starlette, langserve 0.3): an endpoint runs to its end whatever the
connection does; nothing listens for ``http.disconnect`` during an ``/invoke`` or a
``/batch``, so the upstream request (or the embedded model's decoding) goes on for nobody.

Correction: ``CancelOnDisconnect``: once the request body has been read, it alone listens on
the connection; a disconnect before the response is complete cancels the app (the upstream
request is closed, the embedded model stops). The app's own later ``receive()`` calls
(sse-starlette listens for disconnects) are answered from what it saw.

Delete when: an endpoint is cancelled when its client leaves (the canary
``test_starlette_endpoints_outlive_their_client`` fails).
"""

from __future__ import annotations

import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("langserve_logprobs")


class CancelOnDisconnect:
    """Cancels a request's work as soon as its client goes away."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = anyio.Event()
        disconnected = anyio.Event()
        response_complete = False

        async def app_receive() -> Message:
            if not body_read.is_set():
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_read.set()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                return message
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def app_send(message: Message) -> None:
            nonlocal response_complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_complete = True
            await send(message)

        # The app runs in this task (no scheduling hop before its first byte); the watcher
        # beside it cancels the group's scope, which covers the app too.
        async with anyio.create_task_group() as tasks:

            async def watch() -> None:
                await body_read.wait()
                if disconnected.is_set():
                    tasks.cancel_scope.cancel()
                    return
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    if not response_complete:
                        method, path = scope.get("method"), scope.get("path")
                        logger.info("%s %s: client went away, work cancelled", method, path)
                        tasks.cancel_scope.cancel()

            tasks.start_soon(watch)
            await self.app(scope, app_receive, app_send)
            tasks.cancel_scope.cancel()
