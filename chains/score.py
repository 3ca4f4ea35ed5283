"""``/score``: the probability the model gives to given text, token by token (teacher forcing).

Input: a context (a prompt string, or chat messages) and one or more continuations. Each
continuation is scored after the context: its tokens with their logprobs and top
alternatives (aligned by bytes), the sum, the mean per token and per byte and the
perplexity. Across continuations, ``exp(sum)`` normalised gives the model's choice among
them (``probability``) and ``rank``. With one continuation and no context: the perplexity of a
text (its first token, after BOS only, is scored too).

Backends. A prompt string goes to the upstream's ``/v1/completions`` with ``echo`` (one
request; the context is evaluated once); chat messages go to ``/v1/chat/completions`` with
the continuation as the assistant's reply and vLLM's ``prompt_logprobs`` (one request per
continuation). The embedded model and vLLM answer both; other upstreams get a 400 saying
this backend cannot score given text. Logprobs are the raw distribution (temperature 1).

Caveats: a token that straddles the boundary between context and continuation (rare: most
continuations start a word) counts for the continuation. On the embedded model, several
continuations are evaluated together and may differ from one scored alone by the CPU
kernels' batch-shape noise (up to ~0.2 nats measured); one continuation alone is scored token
by token, exactly as generation computes it. Streaming yields one event with the whole output.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import BaseModel, Field, WithJsonSchema, field_validator

from chains.continuation_math import normalise, ranks, totals
from chains.logprobs import TokenLogprob
from chains.runnable import ChainRunnable, check_prompt_size
from chains.teacher_forcing import Scored, TextScorer
from langserve_logprobs.errors import UpstreamError, validated
from langserve_logprobs.knobs import Knobs, knobs_model
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream

MAX_CONTINUATIONS = 20


class ScoreMessage(BaseModel):
    """One chat message of the context."""

    role: Literal["system", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(description="What is said.")


class ScoreInput(BaseModel):
    """A context and the continuations to score after it."""

    # Published as a string: LangServe's playground crashes on this union (``t.map is not a
    # function``); the list of messages is still accepted and documented.
    context: Annotated[str | list[ScoreMessage], WithJsonSchema({"type": "string"})] = Field(
        default="",
        description="A prompt string (empty: score the continuation alone, e.g. a text's "
        "perplexity), or a list of chat messages {role: system|user|assistant, content} "
        "(each continuation is then scored as the assistant's reply).",
    )
    continuations: list[str] = Field(
        min_length=1,
        max_length=MAX_CONTINUATIONS,
        description=f"1 to {MAX_CONTINUATIONS} non-empty texts, each scored after the context.",
    )

    @field_validator("continuations")
    @classmethod
    def _non_empty(cls, values: list[str]) -> list[str]:
        for i, value in enumerate(values):
            if not value:
                msg = f"continuations[{i}] is empty"
                raise ValueError(msg)
        return values


class ContinuationScore(BaseModel):
    """One continuation's tokens and totals."""

    continuation: str = Field(description="The scored continuation, as given.")
    probability: float = Field(
        description="exp(sum_logprob) normalised over the continuations (1 with one): the "
        "model's choice among them."
    )
    rank: int = Field(description="1 for the most likely continuation (ties share a rank).")
    num_tokens: int = Field(description="Number of tokens.")
    num_bytes: int = Field(description="UTF-8 length of the continuation.")
    sum_logprob: float = Field(
        description="Sum of the token logprobs: the log-probability of the whole continuation."
    )
    mean_logprob_per_token: float | None = Field(description="sum_logprob / num_tokens.")
    mean_logprob_per_byte: float | None = Field(
        description="sum_logprob / num_bytes (comparable across tokenizers)."
    )
    perplexity: float | None = Field(description="exp(-mean_logprob_per_token).")
    tokens: list[TokenLogprob] = Field(
        description="Its tokens (those that write it, aligned by bytes), each with its raw "
        "logprob given everything before it and the top alternatives at its position."
    )


class ScoreOutput(BaseModel):
    """Every continuation scored, in input order."""

    best: int = Field(description="Index of the most likely continuation.")
    coverage: float = Field(
        description="Sum of exp(sum_logprob) over the continuations: how much of the model's "
        "probability after the context they hold together (raw, not normalised)."
    )
    model: str | None = Field(description="The model that scored, as the upstream named it.")
    scores: list[ContinuationScore] = Field(description="One per continuation, in input order.")


def score_result(data: ScoreInput, scored: Scored) -> dict[str, Any]:
    """Totals, distribution and ranks of the scored continuations.

    Raises:
        UpstreamError: a continuation token came back without a logprob.
    """
    sums, rows = [], []
    for continuation, tokens in zip(data.continuations, scored.continuations, strict=True):
        values = [t.logprob for t in tokens]
        known = [v for v in values if v is not None]
        if len(known) != len(values):
            msg = "the model server sent a continuation token without a logprob"
            raise UpstreamError(msg)
        size = len(continuation.encode("utf-8"))
        total = totals(known, size)
        sums.append(total.sum_logprob)
        rows.append((continuation, tokens, size, total))
    probabilities, log_mass = normalise(sums)
    order = ranks(sums)
    scores = [
        ContinuationScore(
            continuation=continuation,
            tokens=tokens,
            num_tokens=len(tokens),
            num_bytes=size,
            sum_logprob=total.sum_logprob,
            mean_logprob_per_token=total.mean_per_token,
            mean_logprob_per_byte=total.mean_per_byte,
            perplexity=total.perplexity,
            probability=p,
            rank=r,
        )
        for (continuation, tokens, size, total), p, r in zip(
            rows, probabilities, order, strict=True
        )
    ]
    best = min(range(len(scores)), key=lambda i: (order[i], i))
    coverage = min(1.0, math.exp(max(log_mass, -700.0)))
    return ScoreOutput(scores=scores, best=best, coverage=coverage, model=scored.model).model_dump()


class Score(ChainRunnable):
    """Scores continuations of a context on the upstream (completions echo or prompt_logprobs)."""

    scorer: TextScorer
    knobs: type[Knobs]
    max_prompt_chars: int

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return self.knobs.specs()

    def _knobs(self, config: RunnableConfig) -> tuple[int, str]:
        knobs = self.knobs.of(config)
        return knobs.top_logprobs, knobs.model

    def _input(self, value: Any) -> ScoreInput:
        data = validated(ScoreInput, value)
        context = data.context
        parts = [context] if isinstance(context, str) else [m.content for m in context]
        check_prompt_size(self.max_prompt_chars, *parts, *data.continuations)
        return data

    async def _ascore(
        self, scorer: TextScorer, value: Any, config: RunnableConfig
    ) -> dict[str, Any]:
        data = self._input(value)
        top_k, model = self._knobs(config)
        if isinstance(data.context, str):
            scored = await scorer.ascore(data.context, data.continuations, top_k, model)
        else:
            turns = [(m.role, m.content) for m in data.context]
            scored = await scorer.ascore_chat(turns, data.continuations, top_k, model)
        return score_result(data, scored)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        return await self._ascore(self.scorer, value, config)

    def _invoke(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        # Derived from the async path (one implementation), on a client of this loop's own.
        return asyncio.run(self._ascore(self.scorer.fresh(), value, config))


def build_chain(settings: Settings, upstream: Upstream) -> Runnable[Any, Any]:
    """The /score chain: top_logprobs (LOGPROBS_TOP_LOGPROBS by default) and model knobs."""
    chain = Score(
        scorer=TextScorer(upstream),
        knobs=knobs_model(settings, "ScoreKnobs", ("top_logprobs", "model")),
        max_prompt_chars=settings.max_prompt_chars,
    )
    return chain.with_types(input_type=ScoreInput, output_type=ScoreOutput)
