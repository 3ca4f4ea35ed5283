"""API keys: with ``LOGPROBS_API_KEYS`` set, every route but a few public ones needs one.

A client sends its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (an
OpenAI SDK pointed at ``/local/v1`` sends the first by itself). Browser pages cannot add a
header when they load, so ``/login`` takes the key once in a form (a POST: the key never
shows in a URL or an access log) and sets an HttpOnly, SameSite=Strict session cookie,
which the playgrounds and ``/docs`` then send with their own API calls. The cookie holds a
hash of the key, not the key. ``/ui`` itself is a static shell (no data): its script asks
for the key on the first 401 and sends it as a header (``ui/static/auth.js``).

Keys are compared in constant time (``hmac.compare_digest`` against every configured key,
no early exit) and never logged or echoed: logs carry a key id, a short hash.

The embedded model's private loopback port (``langserve_logprobs.backend``) is not behind
these keys; when they are set it takes a random per-process key of its own instead, which
only the chains know (``PrivateKeyGuard``), so a local process cannot go around them.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from langserve_logprobs.edge import request_info, route_path, send_body, send_error
from langserve_logprobs.errors import UnauthorizedError
from langserve_logprobs.settings import Settings

SESSION_COOKIE = "logprobs_session"
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/logout", "/ui", "/ui/"})
"""Open with keys set: health, the login form, and /ui's static shell."""
PUBLIC_PREFIXES = ("/ui/static/",)
_MISSING = "an API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key'"
_WRONG = "the API key is not valid"


def load_api_keys(settings: Settings) -> list[str]:
    """The configured keys: ``LOGPROBS_API_KEYS`` split on commas, or read from a file.

    A value that names an existing file (or contains a ``/``) is read as a file with one
    key a line; blank lines and ``#`` comments are skipped.

    Raises:
        ValueError: the file is missing, or it holds no key (never fail open).
    """
    if settings.api_keys is None:
        return []
    raw = settings.api_keys.get_secret_value().strip()
    path = Path(raw)
    if "/" in raw or path.is_file():
        if not path.is_file():
            msg = "LOGPROBS_API_KEYS names a file that does not exist"
            raise ValueError(msg)
        lines = path.read_text(encoding="utf-8").splitlines()
        keys = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    else:
        keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        msg = "LOGPROBS_API_KEYS is set but holds no key"
        raise ValueError(msg)
    return keys


def key_id(key: str) -> str:
    """A short, stable id of ``key`` for logs and limits (never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _session_value(key: str) -> str:
    return hashlib.sha256(b"langserve-logprobs session\0" + key.encode()).hexdigest()


def _match(candidate: str, digests: dict[str, str]) -> str | None:
    """The id of the entry of ``digests`` equal to ``candidate``; every entry is compared."""
    found = None
    for ident, digest in digests.items():
        if hmac.compare_digest(candidate.encode(), digest.encode()):
            found = ident
    return found


class KeyChecker:
    """The configured keys, kept as hashes; answers which key (id) a request carries."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = {key_id(k): hashlib.sha256(k.encode()).hexdigest() for k in keys}
        self._sessions = {key_id(k): _session_value(k) for k in keys}
        self._by_id = {key_id(k): k for k in keys}

    def check_key(self, key: str) -> str | None:
        """The key id of ``key`` if it is a configured key, else None."""
        return _match(hashlib.sha256(key.encode()).hexdigest(), self._keys)

    def check_session(self, value: str) -> str | None:
        """The key id a session cookie value stands for, else None."""
        return _match(value, self._sessions)

    def session_for(self, ident: str) -> str:
        """The session cookie value of the key ``ident``."""
        return _session_value(self._by_id[ident])


def is_public(path: str) -> bool:
    """Whether ``path`` (relative to the app's root) is open even with keys set."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def presented_key(headers: Headers) -> str | None:
    """The key a request sends in ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


class ApiKeyMiddleware:
    """Refuses every non-public request without a valid key: 401, JSON (HTML login form
    for a browser's page load). Sets ``RequestInfo.key_id`` on the ones it lets through."""

    def __init__(self, app: ASGIApp, checker: KeyChecker) -> None:
        self.app = app
        self.checker = checker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(route_path(scope)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = presented_key(headers)
        ident: str | None = None
        if key is not None:
            ident = self.checker.check_key(key)
        else:
            cookie = _cookie(headers, SESSION_COOKIE)
            ident = self.checker.check_session(cookie) if cookie else None
        if ident is None:
            request_info(scope).rejected = "unauthorized"
            await self._refuse(
                scope, send, headers, _WRONG if key or _has_cookie(headers) else _MISSING
            )
            return
        request_info(scope).key_id = ident
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, headers: Headers, message: str) -> None:
        challenge = {"WWW-Authenticate": 'Bearer realm="langserve-logprobs"'}
        if scope.get("method") == "GET" and "text/html" in headers.get("accept", ""):
            query = scope.get("query_string", b"").decode("latin-1")
            target = route_path(scope) + (f"?{query}" if query else "")
            page = login_page(scope.get("root_path", ""), target, "")
            await send_body(send, 401, page.encode(), "text/html; charset=utf-8", challenge)
            return
        await send_error(send, UnauthorizedError(message), challenge)


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name and v:
            return v
    return None


def _has_cookie(headers: Headers) -> bool:
    return _cookie(headers, SESSION_COOKIE) is not None


def _safe_next(target: str) -> str:
    # Only paths on this server: no scheme, no //host (an open redirect otherwise).
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/docs"
    return target


def login_page(root: str, target: str, error: str) -> str:
    """The login form: one password field, POSTed to ``/login``."""
    note = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>langserve-logprobs: API key</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 28rem; margin: 4rem auto">
<h1>API key</h1>{note}
<p>This server needs an API key. It is kept for this browser session in an HttpOnly cookie.</p>
<form method="post" action="{html.escape(root)}/login">
<input type="hidden" name="next" value="{html.escape(_safe_next(target))}">
<label>Key <input type="password" name="api_key" autocomplete="current-password" required
autofocus></label> <button type="submit">Continue</button></form></body></html>"""


def add_login_routes(app: FastAPI, checker: KeyChecker) -> None:
    """``GET/POST /login`` (form, sets the session cookie) and ``POST /logout``."""

    async def login_form(request: Request, next: str = "/docs") -> HTMLResponse:
        return HTMLResponse(login_page(request.scope.get("root_path", ""), next, ""))

    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("api_key") or [""])[0]
        target = _safe_next((form.get("next") or ["/docs"])[0])
        ident = checker.check_key(key) if key else None
        root = request.scope.get("root_path", "")
        if ident is None:
            request_info(request.scope).rejected = "unauthorized"
            return HTMLResponse(login_page(root, target, _WRONG), status_code=401)
        response = RedirectResponse(root + target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            checker.session_for(ident),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse(request.scope.get("root_path", "") + "/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    app.add_api_route("/login", login_form, methods=["GET"], include_in_schema=False)
    app.add_api_route("/login", login, methods=["POST"], include_in_schema=False)
    app.add_api_route("/logout", logout, methods=["POST"], include_in_schema=False)


class PrivateKeyGuard:
    """In front of the embedded model's private port: only ``Bearer <key>`` gets in."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self._digest = hashlib.sha256(key.encode()).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = presented_key(Headers(scope=scope)) or ""
            digest = hashlib.sha256(key.encode()).hexdigest()
            if not hmac.compare_digest(digest.encode(), self._digest.encode()):
                await send_error(send, UnauthorizedError(_WRONG))
                return
        await self.app(scope, receive, send)
