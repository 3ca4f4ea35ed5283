"""Structured access logs: one JSON line per request on ``langserve_logprobs.access``.

Each line holds the route (its template, e.g. ``/generate/stream``), the path (never the
query string), method, status, duration, time to the first stream event, tokens generated
(when the chains counted them), the key id (a short hash, never the key), the client
address and, for a refused request, why. ``python server.py`` prints them to stderr as
bare JSON lines and turns uvicorn's own access log off (it prints query strings).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

from langserve_logprobs.edge import RequestInfo

logger = logging.getLogger("langserve_logprobs.access")


def log_access(
    *,
    route: str,
    path: str,
    method: str,
    status: int,
    duration: float,
    info: RequestInfo,
    client: str | None,
    first_event: float | None,
) -> None:
    """Write the request's line (at INFO)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    line = {
        "route": route,
        "path": path,
        "method": method,
        "status": status,
        "duration_ms": round(duration * 1000, 1),
        "first_event_ms": None if first_event is None else round(first_event * 1000, 1),
        "tokens": info.tokens,
        "key_id": info.key_id,
        "client": client,
        "rejected": info.rejected,
    }
    logger.info(json.dumps(line, separators=(",", ":")))


def configure_access_log(stream: TextIO | None = None) -> None:
    """Print access lines as they are (bare JSON) to ``stream`` (stderr), not via root."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
