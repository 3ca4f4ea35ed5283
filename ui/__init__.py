"""A small page at ``/ui`` that streams ``/generate`` and colours every token by probability.

Plain HTML, CSS and JavaScript under ``ui/static/`` (no build step). The page calls the
routes with ``fetch`` relative to where it is served, so it also works behind a path
prefix, and it never renders model text as HTML.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


def mount_ui(app: FastAPI) -> None:
    """Serve the page at ``/ui`` and its assets under ``/ui/static``.

    Args:
        app: the service app; the page calls its ``/generate`` and ``/classify`` routes.
    """

    async def ui_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def ui_slash(request: Request) -> RedirectResponse:
        # The page's relative links assume it lives at /ui, not /ui/.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.scope.get('root_path', '')}/ui{query}")

    app.add_api_route("/ui", ui_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/", ui_slash, methods=["GET"], include_in_schema=False)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
