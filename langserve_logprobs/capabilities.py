"""What differs between OpenAI-compatible upstreams: one table, and how we tell which one we call.

Every chain talks to its upstream through ``chains.model.UpstreamChatOpenAI``, which looks
the upstream up here and adapts each request and each answer to it; nothing else branches
on the kind of server. A row says:

* which length field the server honours (langchain-openai 1.x sends only
  ``max_completion_tokens``; llama-cpp-python's server ignores it and honours ``max_tokens``),
  and whether the server can be trusted to stop there (if not, the wrapper stops reading the
  stream at the limit and closes the request: ``finish_reason`` "length");
* its structured-output form: OpenAI's ``json_schema``, ``json_object`` with a ``schema``
  (llama-cpp-python), or none (the prompt asks for JSON and the answer is validated;
  outputs say ``constrained: false``);
* whether it sends ``bytes`` (if not, they are rebuilt from the token text and counted);
* how many ``top_logprobs`` it allows (more are clamped, and the answer says so);
* whether it can score given text (prompt logprobs), and which probability it reports;
* how many requests it serves at once without cutting one short (``max_concurrent``; None:
  as many as we send). ``langserve_logprobs.upstream.Upstream`` queues the rest.

``LOGPROBS_UPSTREAM_KIND=auto`` asks the server who it is: ``owned_by`` in ``/v1/models``
("me": llama-cpp-python, "llamacpp": llama.cpp's llama-server, "vllm", "local": the
embedded model), else llama-server's ``/props`` or Ollama's ``/api/version``; a server that
does not say gets the conservative ``generic`` row. The answer is cached per base URL.

Whether an upstream scores given text is this cache's answer too: the row's ``can_score``
for a known kind, corrected by what scoring requests showed (``learn_scoring``). A capability
error (the upstream refuses a scoring request, or echoes no prompt logprobs) is re-checked at
once with a small probe; "cannot" is remembered for ``SCORING_RECHECK_SECONDS`` and then tried
again. No chain keeps a flag of its own.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from langserve_logprobs.limits import TOP_LOGPROBS_MAX

UpstreamKind = Literal[
    "auto", "embedded", "openai", "vllm", "llama-cpp-python", "llama-server", "ollama", "generic"
]
LengthField = Literal["max_completion_tokens", "max_tokens", "both"]
StructuredForm = Literal["json_schema", "json_object_schema", "none"]

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Capabilities:
    """What one kind of upstream supports (see the module docstring)."""

    kind: str
    length_field: LengthField
    honours_length: bool
    structured: StructuredForm
    sends_bytes: bool
    max_top_logprobs: int
    can_score: bool
    probabilities: str
    max_concurrent: int | None


_RAW = "raw: the model's distribution before sampling and before any grammar"


def _row(kind: str, **fields: Any) -> Capabilities:
    base: dict[str, Any] = {
        "length_field": "max_completion_tokens",
        "honours_length": True,
        "structured": "json_schema",
        "sends_bytes": True,
        "max_top_logprobs": TOP_LOGPROBS_MAX,
        "can_score": False,
        "probabilities": _RAW,
        "max_concurrent": None,
    }
    return Capabilities(kind=kind, **{**base, **fields})


CAPABILITIES: dict[str, Capabilities] = {
    row.kind: row
    for row in (
        _row("embedded", can_score=True),
        _row("openai", probabilities="as OpenAI reports them (undocumented: raw or sampled)"),
        _row(
            "vllm",
            can_score=True,
            probabilities="raw with vLLM's default --logprobs-mode raw_logprobs (before "
            "temperature, top-k/top-p and structured-output masks); its --max-logprobs "
            "(default 20) caps top_logprobs",
        ),
        _row(
            "llama-cpp-python",
            length_field="max_tokens",
            honours_length=False,
            structured="json_object_schema",
            sends_bytes=False,
            # One at a time: by default (--interrupt_requests True) a second request cuts
            # the running one short; with it off the second waits anyway.
            max_concurrent=1,
        ),
        _row(
            "llama-server",
            probabilities=_RAW + " (its default post_sampling_probs false; true would give "
            "probabilities after the sampler chain)",
        ),
        _row(
            "ollama",
            length_field="both",
            honours_length=False,
            sends_bytes=False,
            probabilities="as Ollama reports them (undocumented)",
        ),
        _row(
            "generic",
            length_field="both",
            honours_length=False,
            sends_bytes=False,
            probabilities="as the upstream reports them (unknown server)",
        ),
    )
}

OWNERS: dict[str, str] = {
    "me": "llama-cpp-python",
    "llamacpp": "llama-server",
    "vllm": "vllm",
    "local": "embedded",
    "openai": "openai",
    "system": "openai",
    "openai-internal": "openai",
}

_cache: dict[tuple[str, str], Capabilities] = {}
_lock = threading.Lock()


def kind_from_models(body: Any) -> str | None:
    """The upstream kind that a ``/v1/models`` body names by its ``owned_by``, if any."""
    data = body.get("data") if isinstance(body, dict) else None
    for entry in data if isinstance(data, list) else []:
        owner = entry.get("owned_by") if isinstance(entry, dict) else None
        if isinstance(owner, str) and owner in OWNERS:
            return OWNERS[owner]
    return None


def _root(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


def _probes(base_url: str) -> list[tuple[str, str]]:
    """(URL, what it proves) in the order they are tried."""
    root = _root(base_url)
    return [
        (base_url.rstrip("/") + "/models", "models"),
        (root + "/props", "llama-server"),
        (root + "/api/version", "ollama"),
    ]


def _judge(what: str, response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if what == "models":
        return kind_from_models(body)
    if what == "llama-server":
        ok = isinstance(body, dict) and "default_generation_settings" in body
        return "llama-server" if ok else None
    return "ollama" if isinstance(body, dict) and "version" in body else None


def detect_kind(base_url: str, api_key: str | None = None) -> str:
    """Ask the server who it is (blocking); ``generic`` when it does not say."""
    if urlsplit(base_url).hostname == "api.openai.com":
        return "openai"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=PROBE_TIMEOUT, headers=headers) as client:
        for url, what in _probes(base_url):
            try:
                kind = _judge(what, client.get(url))
            except httpx.HTTPError:
                continue
            if kind:
                return kind
    return "generic"


async def adetect_kind(base_url: str, api_key: str | None = None) -> str:
    """``detect_kind`` without blocking the event loop."""
    if urlsplit(base_url).hostname == "api.openai.com":
        return "openai"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, headers=headers) as client:
        for url, what in _probes(base_url):
            try:
                kind = _judge(what, await client.get(url))
            except httpx.HTTPError:
                continue
            if kind:
                return kind
    return "generic"


def cached(base_url: str, configured: str) -> Capabilities | None:
    """The capabilities already known for this upstream and setting, if any."""
    if configured != "auto":
        return CAPABILITIES[configured]
    with _lock:
        return _cache.get((base_url, configured))


def remember(base_url: str, configured: str, kind: str) -> Capabilities:
    """Cache and return the row of ``kind`` for this upstream."""
    caps = CAPABILITIES[kind]
    with _lock:
        _cache[(base_url, configured)] = caps
    return caps


def capabilities_for(base_url: str, configured: str, api_key: str | None = None) -> Capabilities:
    """The row for an upstream: the configured kind, or the detected one (cached)."""
    caps = cached(base_url, configured)
    return caps or remember(base_url, configured, detect_kind(base_url, api_key))


async def acapabilities_for(
    base_url: str, configured: str, api_key: str | None = None
) -> Capabilities:
    """``capabilities_for`` without blocking the event loop."""
    caps = cached(base_url, configured)
    return caps or remember(base_url, configured, await adetect_kind(base_url, api_key))


def adapt_request(payload: dict[str, Any], caps: Capabilities) -> dict[str, Any]:
    """Rewrite a chat-completions payload (in place) for ``caps``; return what was changed.

    The length goes in the field the server honours; ``top_logprobs`` is clamped to its
    limit; a ``response_format`` in ``extra_body`` (json_schema, as the chains send it)
    becomes the server's form, or is dropped when it has none (the prompt asks for JSON).
    """
    notes: dict[str, Any] = {}
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if limit is not None:
        if caps.length_field == "max_tokens":
            payload.pop("max_completion_tokens", None)
            payload["max_tokens"] = limit
        elif caps.length_field == "both":
            payload["max_tokens"] = payload["max_completion_tokens"] = limit
    top = payload.get("top_logprobs")
    if isinstance(top, int) and top > caps.max_top_logprobs:
        payload["top_logprobs"] = caps.max_top_logprobs
        notes["top_logprobs_clamped_to"] = caps.max_top_logprobs
    extra = payload.get("extra_body")
    fmt = extra.get("response_format") if isinstance(extra, dict) else None
    if isinstance(extra, dict) and isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        # A copy: the dict is the one bound to the model, shared by every request.
        payload["extra_body"] = extra = dict(extra)
        notes["constrained"] = caps.structured != "none"
        if caps.structured == "none":
            extra.pop("response_format")
        elif caps.structured == "json_object_schema":
            schema = (fmt.get("json_schema") or {}).get("schema", {})
            extra["response_format"] = {"type": "json_object", "schema": schema}
    return notes


def adapt_logprobs(content: list[dict[str, Any]], top_n: int | None) -> int:
    """Fix one answer's ``logprobs.content`` (in place); return how many bytes were rebuilt.

    Missing ``bytes`` are rebuilt as the UTF-8 of the token text (not exact: a token holding
    part of a character has lost it), and ``top_logprobs`` longer than asked (llama-cpp-python
    adds the sampled token to N alternatives) keep the ``top_n`` most likely.
    """
    rebuilt = 0
    for item in content:
        entries = [item, *(item.get("top_logprobs") or [])]
        for entry in entries:
            if isinstance(entry, dict) and entry.get("bytes") is None:
                entry["bytes"] = list(str(entry.get("token") or "").encode("utf-8"))
                rebuilt += 1
        top = item.get("top_logprobs")
        if top_n is not None and isinstance(top, list) and len(top) > top_n:
            best = sorted(top, key=lambda t: -float(t.get("logprob") or -1e30))
            item["top_logprobs"] = best[:top_n]
    return rebuilt


SCORING_RECHECK_SECONDS = 60.0
"""How long a learned "cannot score given text" holds before scoring is tried again."""

_scoring: dict[str, tuple[bool, float]] = {}


def learn_scoring(base_url: str, can: bool) -> None:
    """Remember what a scoring request (or the probe after a capability error) showed."""
    with _lock:
        _scoring[base_url] = (can, time.monotonic())


def learned_scoring(base_url: str) -> bool | None:
    """Whether this upstream scores given text, as last seen: True until a capability error
    says otherwise, False for ``SCORING_RECHECK_SECONDS``, None when unknown (the table's
    row answers)."""
    with _lock:
        seen = _scoring.get(base_url)
    if seen is None:
        return None
    can, when = seen
    if not can and time.monotonic() - when > SCORING_RECHECK_SECONDS:
        return None
    return can


def forget_scoring() -> None:
    """Forget what scoring requests showed (every upstream): for tests."""
    with _lock:
        _scoring.clear()
