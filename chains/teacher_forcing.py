"""Score given text on the upstream: the logprob of every token of a continuation.

Two requests, both plain OpenAI-compatible calls, so the same code serves the embedded model
and vLLM:

* a prompt string as context: ``POST /v1/completions`` with ``echo``, ``logprobs`` and all the
  prompts (``context + continuation``) in one request. The server finds their common token
  prefix and evaluates it once; ``score_only_continuation`` (our extension, ignored elsewhere)
  skips reporting it. ``max_tokens`` is 1 because vLLM refuses 0; generated tokens past the
  prompt are ignored (the embedded server generates none).
* chat messages as context: ``POST /v1/chat/completions`` with the continuation as the last
  assistant message and vLLM's ``prompt_logprobs``, one request per continuation.

A backend that answers neither (OpenAI refuses ``echo`` with ``logprobs``; llama.cpp and Ollama
echo no prompt logprobs) gets ``CannotScoreError``: a 400 saying it cannot score given text.
Whether it can is the capability cache's answer (``langserve_logprobs.capabilities``): a
refusal that may mean "cannot" is re-checked at once with a tiny probe request, and the
result is learned there (a "cannot" for a minute), never kept by a chain.

Only async code: a blocking caller runs it under ``asyncio.run`` on a ``fresh()`` scorer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai

from chains.continuation_math import continuation_tokens, token_bytes_of
from chains.logprobs import TokenLogprob
from langserve_logprobs.capabilities import Capabilities, learn_scoring, learned_scoring
from langserve_logprobs.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    to_service_error,
)
from langserve_logprobs.upstream import Upstream

_T = TypeVar("_T")
Message = tuple[str, str]
"""(role, content) of one chat message."""


class CannotScoreError(InvalidRequestError):
    """The configured backend does not return the logprobs of given text."""


def cannot_score(detail: str) -> CannotScoreError:
    msg = (
        "this backend cannot score given text: it returns no logprobs for a given prompt "
        f"(echo/prompt_logprobs); use the embedded model or vLLM ({detail})"
    )
    return CannotScoreError(msg)


@dataclass(frozen=True, slots=True)
class Scored:
    """The tokens of each continuation, with their logprobs, and the model's name."""

    continuations: list[list[TokenLogprob]]
    model: str | None
    prompt_tokens: int = 0
    """Prompt tokens the upstream reported evaluating (0 when it did not say)."""
    cached_tokens: int = 0
    """Of those, the ones it read from its cache (``prompt_tokens_details``; 0 when unsaid)."""


def _may_be_capability_error(exc: openai.APIStatusError) -> bool:
    """A refusal that may mean "this server cannot score given text" (an unknown endpoint or
    parameter), to be re-checked: not auth, rate limits, outages or a too-long prompt."""
    if exc.status_code not in (400, 404, 405, 422, 501):
        return False
    return not isinstance(to_service_error(exc), ContextLengthExceededError)


def _legacy_tokens(choice: Any, prompt: str, start: int) -> list[TokenLogprob]:
    """The continuation's tokens from a completions choice (OpenAI's legacy logprobs)."""
    lp = getattr(choice, "logprobs", None)
    tokens = list(getattr(lp, "tokens", None) or [])
    values = list(getattr(lp, "token_logprobs", None) or [])
    tops = list(getattr(lp, "top_logprobs", None) or [])
    extra = (getattr(lp, "model_extra", None) or {}).get("token_bytes")
    if not tokens or len(values) != len(tokens):
        raise cannot_score("no prompt logprobs in the answer")
    pieces = [bytes(b) for b in extra] if extra else [token_bytes_of(t) for t in tokens]
    span = continuation_tokens(pieces, prompt.encode("utf-8"), start)
    if span is None:
        raise cannot_score("the echoed tokens do not spell the prompt")
    out = []
    for i in span:
        top = tops[i] if i < len(tops) and tops[i] else {}
        alternatives = [
            {"token": t, "bytes": list(token_bytes_of(t)), "logprob": v} for t, v in top.items()
        ]
        token = {"token": tokens[i], "bytes": list(pieces[i]), "logprob": values[i]}
        out.append(TokenLogprob.model_validate({**token, "top_logprobs": alternatives}))
    return out


def _chat_tokens(response: Any, continuation: str, top_k: int) -> list[TokenLogprob]:
    """The continuation's tokens from vLLM's ``prompt_logprobs`` of a chat request."""
    extra = response.model_extra or {}
    entries, ids = extra.get("prompt_logprobs"), extra.get("prompt_token_ids")
    if not entries or not ids or len(entries) != len(ids):
        raise cannot_score("no prompt_logprobs in the answer")
    # The reported tail: the final turn (earlier turns may be left out, as null).
    first = len(entries)
    while first > 0 and entries[first - 1] is not None:
        first -= 1
    rows = [(int(ids[i]), entries[i]) for i in range(first, len(entries))]
    given = [row.get(str(t)) or row.get(t) or {} for t, row in rows]
    pieces = [token_bytes_of(str(g.get("decoded_token") or "")) for g in given]
    joined = b"".join(pieces)
    target = continuation.encode("utf-8")
    at = joined.rfind(target)
    if at < 0:
        raise cannot_score("the scored tokens do not spell the continuation")
    span = continuation_tokens(pieces, joined[: at + len(target)], at)
    assert span is not None
    out = []
    for i in span:
        (_, row), scored = rows[i], given[i]
        alternatives = sorted(
            (v for k, v in row.items() if isinstance(v, dict)),
            key=lambda v: v.get("rank") or 0,
        )[:top_k]
        token = {"token": scored.get("decoded_token") or "", "logprob": scored.get("logprob")}
        top = [
            {"token": a.get("decoded_token") or "", "logprob": a.get("logprob")}
            for a in alternatives
        ]
        data = {**token, "bytes": list(pieces[i]), "top_logprobs": top}
        out.append(TokenLogprob.model_validate(data))
    return out


@dataclass
class TextScorer:
    """Scores continuations of a context on the configured upstream (clients made on use)."""

    upstream: Upstream
    _async: openai.AsyncOpenAI | None = field(default=None, repr=False)

    def _refuse(self, caps: Capabilities) -> None:
        """Raise CannotScoreError for a known kind of upstream that cannot score (from the
        capability table; llama-cpp-python answers the request with a bare 500)."""
        if caps.kind != "generic" and not caps.can_score:
            raise cannot_score(f"a {caps.kind} server")

    async def acheck_can_score(self) -> None:
        """CannotScoreError if the capability cache says this upstream cannot score: what
        scoring requests showed lately, else the table's row for its kind."""
        learned = learned_scoring(self.upstream.base_url)
        if learned is False:
            raise cannot_score("it did not score given text when last checked")
        if learned is None:
            self._refuse(await self.upstream.acapabilities())

    async def _probe(self) -> bool:
        """Does the upstream score given text at all? One tiny echo request, default model."""
        try:
            response = await self.async_client().completions.create(
                model=self.upstream.model,
                prompt="Hi there",
                echo=True,
                logprobs=0,
                max_tokens=1,
                temperature=0.0,
            )
            lp = response.choices[0].logprobs if response.choices else None
            return any(v is not None for v in (lp.token_logprobs or [])) if lp else False
        except (openai.OpenAIError, ValueError):
            return False

    async def _send(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """Send a scoring request; a capability error is re-checked at once (``_probe``):
        the upstream that cannot score is remembered as such (CannotScoreError); one that
        can gets the request once more, and its error stands if it fails again."""
        base_url = self.upstream.base_url
        try:
            return await call()
        except openai.APIStatusError as exc:
            if not _may_be_capability_error(exc):
                raise
            if not await self._probe():
                learn_scoring(base_url, False)
                raise cannot_score(f"status {exc.status_code}") from None
        learn_scoring(base_url, True)
        return await call()

    def _learn_from(self, read: Callable[[], Scored]) -> Scored:
        """Read an answer; one without prompt logprobs (echo ignored) teaches "cannot"."""
        try:
            scored = read()
        except CannotScoreError:
            learn_scoring(self.upstream.base_url, False)
            raise
        learn_scoring(self.upstream.base_url, True)
        return scored

    def fresh(self) -> TextScorer:
        """A scorer of the same upstream with a client of its own, for another event loop
        (a blocking caller's ``asyncio.run``): an async client belongs to the loop that made it."""
        return TextScorer(self.upstream)

    def async_client(self) -> openai.AsyncOpenAI:
        if self._async is None:
            self._async = openai.AsyncOpenAI(**self.upstream.client_options())
        return self._async

    @staticmethod
    def _prompts(
        context: str, continuations: Sequence[str], every_token: bool
    ) -> tuple[list[str], bool]:
        """The prompts to send, and whether their common token prefix may go unreported.

        ``every_token``: with a context, the context alone is sent first, so that the common
        prefix never reaches into a continuation and every continuation token is reported.
        Without it, tokens that all continuations start with may come back without a logprob
        (they are evaluated once, as part of the prefix: cheaper).
        """
        if not every_token and len(continuations) > 1:
            return [context + c for c in continuations], True
        if context:
            return [context, *(context + c for c in continuations)], True
        return list(continuations), False

    def _completion_args(
        self,
        context: str,
        continuations: Sequence[str],
        top_k: int,
        model: str,
        every_token: bool,
    ) -> tuple[list[str], dict[str, Any]]:
        prompts, only = self._prompts(context, continuations, every_token)
        args = {
            "model": model,
            "prompt": prompts,
            "echo": True,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": top_k,
            "extra_body": {"score_only_continuation": only},
        }
        return prompts, args

    def _read(
        self, response: Any, context: str, continuations: Sequence[str], prompts: list[str]
    ) -> Scored:
        choices = sorted(response.choices or [], key=lambda c: c.index)
        if len(choices) != len(prompts):
            raise cannot_score("one answer per prompt was expected")
        skip = len(prompts) - len(continuations)
        start = len(context.encode("utf-8"))
        tokens = [
            _legacy_tokens(choice, prompt, start)
            for choice, prompt in zip(choices[skip:], prompts[skip:], strict=True)
        ]
        usage = getattr(response, "usage", None)
        used = int(getattr(usage, "prompt_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        return Scored(tokens, getattr(response, "model", None), used, cached)

    async def ascore(
        self,
        context: str,
        continuations: Sequence[str],
        top_k: int,
        model: str,
        *,
        every_token: bool = True,
    ) -> Scored:
        """Score each continuation after a prompt string (one completions request).

        With ``every_token`` false, the tokens all continuations start with may have no
        logprob (``None``): enough to compare the continuations, and cheaper.
        """
        await self.acheck_can_score()
        prompts, args = self._completion_args(context, continuations, top_k, model, every_token)
        client = self.async_client()
        response = await self._send(lambda: client.completions.create(**args))
        return self._learn_from(lambda: self._read(response, context, continuations, prompts))

    def _chat_args(
        self, messages: Sequence[Message], continuation: str, top_k: int, model: str
    ) -> dict[str, Any]:
        turns = [{"role": r, "content": c} for r, c in messages]
        return {
            "model": model,
            "messages": [*turns, {"role": "assistant", "content": continuation}],
            "max_tokens": 1,
            "temperature": 0.0,
            "extra_body": {"prompt_logprobs": top_k, "score_only_continuation": True},
        }

    async def ascore_chat(
        self, messages: Sequence[Message], continuations: Sequence[str], top_k: int, model: str
    ) -> Scored:
        """Score each continuation as the assistant's reply to ``messages``."""
        await self.acheck_can_score()
        client = self.async_client()

        async def one(continuation: str) -> Any:
            args = self._chat_args(messages, continuation, top_k, model)
            return await self._send(lambda: client.chat.completions.create(**args))

        responses = await asyncio.gather(*(one(c) for c in continuations))

        def read() -> Scored:
            pairs = zip(responses, continuations, strict=True)
            tokens = [_chat_tokens(r, c, top_k) for r, c in pairs]
            return Scored(tokens, responses[0].model if responses else None)

        return self._learn_from(read)
