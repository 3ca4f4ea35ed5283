"""``POST /v1/completions`` and vLLM's ``prompt_logprobs`` on chat, over ``Scorer``.

Scoring: ``echo`` or ``prompt_logprobs`` set with ``max_tokens`` 0, 1 (what vLLM clients send;
nothing is generated) or left out. Several prompts that share a token prefix evaluate it once
(``Scorer.score``). Scoring runs in a worker thread on the scorer's own context, created on
first use from the engine's model. Anything else generates (``completions_generate.py``).
Prompts are tokenized with special tokens parsed, as llama.cpp's server and vLLM do.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from local_llm.completions_generate import CompletionsGenerator, check_generation, prepare_prompts
from local_llm.completions_protocol import (
    MAX_LOGPROBS,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionUsage,
    LegacyLogprobs,
    PromptLogprob,
    PromptLogprobs,
    PromptTokensDetails,
)
from local_llm.engine import drop_second_bos
from local_llm.errors import BadRequestError
from local_llm.event_stream import EventStream
from local_llm.logprobs import token_string
from local_llm.scoring import (
    MAX_SEQUENCES,
    Scorer,
    TokenScore,
    common_prefix_length,
    piece_bytes,
)

router = APIRouter()
_scorer_lock = threading.Lock()


class ScoringBackend:
    """The scorer, tokenizer and token pieces of a loaded engine (created on first use)."""

    def __init__(self, engine: Any) -> None:
        import llama_cpp

        model, params = engine.scoring_source()
        self.scorer = Scorer(model, params)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._pieces: dict[int, bytes] = {}

    def piece(self, token: int) -> bytes:
        """Bytes of a token (cached)."""
        data = self._pieces.get(token)
        if data is None:
            data = self._pieces[token] = piece_bytes(self._vocab, token)
        return data

    def tokenize(self, text: str) -> list[int]:
        """Tokens of a text prompt: BOS (not twice), special tokens parsed (like vLLM and
        llama.cpp's server: ``<start_of_turn>`` is one token)."""
        import llama_cpp

        data = text.encode("utf-8")
        size = len(data) + 2
        buf = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, size, True, True)
        bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        return drop_second_bos([int(t) for t in buf[:n]], bos)

    def score_prompts(
        self, prompts: Sequence[list[int]], top_k: int, *, only_continuation: bool
    ) -> list[list[TokenScore | None]]:
        """Per prompt, per token: its score (None first, and for skipped tokens).

        One prompt is scored as a whole; several share their common prefix, evaluated once
        (its tokens are reported unless ``only_continuation``).

        Raises:
            BadRequestError: empty prompts, or several prompts with no common first token.
        """
        return self.score_counted(prompts, top_k, only_continuation=only_continuation)[0]

    def score_counted(
        self, prompts: Sequence[list[int]], top_k: int, *, only_continuation: bool
    ) -> tuple[list[list[TokenScore | None]], int]:
        """``score_prompts``, and how many prompt tokens were read from the cache."""
        if any(not p for p in prompts):
            msg = "Invalid 'prompt': a prompt has no tokens."
            raise BadRequestError(msg, param="prompt")
        if len(prompts) == 1:
            result = self.scorer.score(prompts[0], [], top_k, prefix_logprobs=not only_continuation)
            return [result.prefix], result.cached
        shared = common_prefix_length(prompts)
        if shared == 0:
            msg = "Invalid 'prompt': prompts scored together must share their first token (BOS)."
            raise BadRequestError(msg, param="prompt")
        prefix = prompts[0][:shared]
        out: list[list[TokenScore | None]] = []
        cached = 0
        group = MAX_SEQUENCES - 1
        for start in range(0, len(prompts), group):
            conts = [p[shared:] for p in prompts[start : start + group]]
            result = self.scorer.score(
                prefix, conts, top_k, prefix_logprobs=not only_continuation and start == 0
            )
            cached += result.cached
            head = result.prefix if start == 0 else [None] * shared
            out += [[*head, *cont] for cont in result.continuations]
        if only_continuation:
            return out, cached
        return [[*out[0][:shared], *row[shared:]] for row in out], cached

    def legacy(self, tokens: list[int], scores: list[TokenScore | None]) -> LegacyLogprobs:
        """OpenAI's legacy logprobs object for a scored prompt."""
        texts, offsets, values, tops, raw = [], [], [], [], []
        offset = 0
        for token, score in zip(tokens, scores, strict=True):
            data = self.piece(token)
            texts.append(token_string(data))
            raw.append(list(data))
            offsets.append(offset)
            offset += len(data.decode("utf-8", errors="replace"))
            values.append(None if score is None else score.logprob)
            tops.append(
                None if score is None else {token_string(self.piece(t)): v for t, v in score.top}
            )
        return LegacyLogprobs(
            tokens=texts,
            token_logprobs=values,
            top_logprobs=tops,
            text_offset=offsets,
            token_bytes=raw,
        )

    def vllm(self, scores: list[TokenScore | None]) -> PromptLogprobs:
        """vLLM's prompt_logprobs: per position the given token and the top alternatives."""
        out: PromptLogprobs = []
        for score in scores:
            if score is None:
                out.append(None)
                continue
            entry = {
                t: PromptLogprob(logprob=v, rank=r + 1, decoded_token=self._text(t))
                for r, (t, v) in enumerate(score.top)
            }
            if score.token not in entry:
                entry[score.token] = PromptLogprob(
                    logprob=score.logprob, rank=score.rank, decoded_token=self._text(score.token)
                )
            out.append(entry)
        return out

    def _text(self, token: int) -> str:
        return token_string(self.piece(token))


def scoring_backend(state: Any, engine: Any) -> ScoringBackend:
    """The app's scoring backend, created once (thread-safe) after the engine has loaded."""
    with _scorer_lock:
        backend: ScoringBackend | None = getattr(state, "local_scoring", None)
        if backend is None:
            if not engine.is_loaded:
                engine.load()
            backend = ScoringBackend(engine)
            state.local_scoring = backend
        return backend


def _token_lists(backend: ScoringBackend, prompt: Any) -> list[list[int]]:
    if isinstance(prompt, str):
        return [backend.tokenize(prompt)]
    if prompt and all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    return [backend.tokenize(p) if isinstance(p, str) else list(p) for p in prompt]


def is_scoring(request: CompletionRequest) -> bool:
    """Scoring only: echo or prompt_logprobs with max_tokens 0, 1 or unset (nothing generated;
    1 because vLLM refuses 0 and its clients send 1)."""
    scoring = request.echo or request.prompt_logprobs is not None
    return scoring and (request.max_tokens or 0) <= 1


def _check(request: CompletionRequest) -> int:
    if request.stream:
        msg = "Invalid 'stream': scoring (echo with max_tokens 0 or 1) is not streamed."
        raise BadRequestError(msg, param="stream")
    if request.n not in (None, 1):
        msg = f"Invalid 'n': only n=1 is supported, got {request.n}."
        raise BadRequestError(msg, param="n")
    if not request.prompt:
        msg = "Invalid 'prompt': no prompt given."
        raise BadRequestError(msg, param="prompt")
    wanted = [k for k in (request.logprobs, request.prompt_logprobs) if k is not None]
    return max(wanted, default=0)


def complete(backend: ScoringBackend, request: CompletionRequest) -> CompletionResponse:
    """Score the prompts of a completions request (blocking)."""
    top_k = _check(request)
    prompts = _token_lists(backend, request.prompt)
    scored, cached = backend.score_counted(
        prompts, top_k, only_continuation=request.score_only_continuation
    )
    choices = []
    for index, (tokens, scores) in enumerate(zip(prompts, scored, strict=True)):
        text = b"".join(backend.piece(t) for t in tokens).decode("utf-8", errors="replace")
        legacy = (
            backend.legacy(tokens, scores)
            if request.echo and request.logprobs is not None
            else None
        )
        vllm = backend.vllm(scores) if request.prompt_logprobs is not None else None
        choices.append(
            CompletionChoice(
                index=index,
                text=text if request.echo else "",
                logprobs=legacy,
                finish_reason="length",
                prompt_logprobs=vllm,
                prompt_token_ids=tokens if vllm is not None else None,
            )
        )
    used = sum(len(p) for p in prompts)
    return CompletionResponse(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=request.model or "local",
        choices=choices,
        usage=CompletionUsage(
            prompt_tokens=used,
            completion_tokens=0,
            total_tokens=used,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        ),
    )


def chat_prompt_logprobs(
    backend: ScoringBackend,
    engine: Any,
    messages: list[tuple[str, str]],
    top_k: int,
    *,
    only_final: bool,
) -> tuple[PromptLogprobs, list[int]]:
    """vLLM's ``prompt_logprobs`` of a chat prompt (blocking).

    With ``only_final`` the tokens before the final message's turn are evaluated (once, cached)
    but not reported, and the rest is scored token by token, as generation would.
    """
    tokens = engine.tokenize_chat(messages)
    if only_final and len(messages) > 1:
        prefix = engine.tokenize_chat(messages[:-1])
        if tokens[: len(prefix)] == prefix:
            result = backend.scorer.score(prefix, [tokens[len(prefix) :]], top_k)
            return backend.vllm([*result.prefix, *result.continuations[0]]), tokens
    (scores,) = backend.score_prompts([tokens], top_k, only_continuation=False)
    return backend.vllm(scores), tokens


@router.post("/v1/completions")
async def create_completion(raw_request: Request) -> Response:
    """OpenAI completions: generation (stream or not, logprobs), or scoring (echo + logprobs,
    vLLM's prompt_logprobs)."""
    body = await raw_request.body()
    try:
        request = CompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        msg = f"Invalid '{param}': {first['msg']}." if param else str(first["msg"])
        raise BadRequestError(msg, param=param) from None
    state, engine = raw_request.app.state, raw_request.app.state.local_engine
    if not is_scoring(request):
        return await _generate(state, engine, request)

    def work() -> CompletionResponse:
        return complete(scoring_backend(state, engine), request)

    response = await anyio.to_thread.run_sync(work)
    return JSONResponse(response.model_dump(mode="json"))


async def _generate(state: Any, engine: Any, request: CompletionRequest) -> Response:
    check_generation(request)
    prompts = await prepare_prompts(engine, request.prompt)
    echo = None
    if request.echo:
        top_k = request.logprobs

        def score() -> list[tuple[str, LegacyLogprobs | None]]:
            backend = scoring_backend(state, engine)
            out: list[tuple[str, LegacyLogprobs | None]] = []
            for tokens in prompts:
                text = b"".join(backend.piece(t) for t in tokens).decode("utf-8", "replace")
                legacy = None
                if top_k is not None:
                    (scores,) = backend.score_prompts([tokens], top_k, only_continuation=False)
                    legacy = backend.legacy(tokens, scores)
                out.append((text, legacy))
            return out

        echo = await anyio.to_thread.run_sync(score)
    generator = CompletionsGenerator(engine, request, prompts, echo)
    generator.submit()  # 503 here, before any header, when busy
    if request.stream:
        return EventStream(generator.stream(), generator.cancel)
    try:
        response = await generator.complete()
    finally:
        generator.cancel.set()
    return JSONResponse(response.model_dump(mode="json"))


async def chat_extension(raw_request: Request, request: Any) -> dict[str, Any]:
    """vLLM's ``prompt_logprobs`` and ``prompt_token_ids`` for a chat request that asks for them.

    Returns ``{}`` when the request does not. ``score_only_continuation`` reports only the
    final message's turn.

    Raises:
        BadRequestError: bad value, or asked with ``stream``.
    """
    extra = request.model_extra or {}
    top_k = extra.get("prompt_logprobs")
    if top_k is None:
        return {}
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= MAX_LOGPROBS:
        msg = f"Invalid 'prompt_logprobs': an integer from 0 to {MAX_LOGPROBS}."
        raise BadRequestError(msg, param="prompt_logprobs")
    if request.stream:
        msg = "Invalid 'prompt_logprobs': not available with stream."
        raise BadRequestError(msg, param="prompt_logprobs")
    only_final = extra.get("score_only_continuation") is True
    state, engine = raw_request.app.state, raw_request.app.state.local_engine
    messages = [(m.role, m.text()) for m in request.messages]

    def work() -> tuple[PromptLogprobs, list[int]]:
        backend = scoring_backend(state, engine)
        return chat_prompt_logprobs(backend, engine, messages, top_k, only_final=only_final)

    scores, tokens = await anyio.to_thread.run_sync(work)
    entries = [
        None if s is None else {str(k): v.model_dump() for k, v in s.items()} for s in scores
    ]
    return {"prompt_logprobs": entries, "prompt_token_ids": tokens}
