"""Wire schemas of ``POST /v1/completions`` (generation and scoring) and of vLLM's
``prompt_logprobs``.

A prompt is tokenized with a BOS token and special tokens parsed (``<start_of_turn>`` is one
token), as llama.cpp's server and vLLM do; a prompt that starts with ``<bos>`` gets no second.

OpenAI's legacy completions shape: ``echo`` with ``logprobs: N`` returns the prompt's tokens
with ``tokens``, ``token_logprobs``, ``top_logprobs`` (dicts token -> logprob) and
``text_offset``. vLLM's extension ``prompt_logprobs: N`` adds, per choice (completions) or on
the response (chat), a list with ``null`` for the first token and then, per token, a dict
token id -> ``{logprob, rank, decoded_token}`` holding the prompt token and the top N.
``score_only_continuation`` is our extension (vLLM ignores it): skip the logprobs of the
tokens all prompts share (completions) or that precede the final message (chat); they are
still evaluated once, but not reported (``null``), which saves most of the cost.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_LOGPROBS = 20


class CompletionRequest(BaseModel):
    """Body of POST /v1/completions: generate after prompts, or score them (echo)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = Field(default=None, description="Model name; any name is accepted.")
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text, texts, a token list or token lists; several prompts sharing a "
        "prefix evaluate it once."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=0,
        description="Tokens to generate (default 16); with echo or prompt_logprobs, 0, 1 or "
        "unset scores the prompts only and generates nothing.",
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature (default 1; 0 is greedy)."
    )
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling mass.")
    seed: int | None = Field(default=None, description="Seed of the sampler.")
    stop: str | list[str] | None = Field(
        default=None, description="Up to 4 strings that end the generation (not returned)."
    )
    ignore_eos: bool = Field(
        default=False, description="vLLM: keep generating past the end-of-turn token."
    )
    stream_options: dict[str, bool] | None = Field(
        default=None, description="{'include_usage': true} adds a last chunk with usage."
    )
    echo: bool = Field(default=False, description="Return the prompt's tokens with logprobs.")
    logprobs: int | None = Field(
        default=None, ge=0, le=MAX_LOGPROBS, description="Alternatives per token (0-20)."
    )
    prompt_logprobs: int | None = Field(
        default=None, ge=0, le=MAX_LOGPROBS, description="vLLM: alternatives per prompt token."
    )
    score_only_continuation: bool = Field(
        default=False,
        description="Extension: report logprobs only after the prompts' common token prefix.",
    )
    stream: bool | None = Field(
        default=None, description="Server-sent events, one chunk per token (generation only)."
    )
    n: int | None = Field(default=None, description="Only 1.")


class LegacyLogprobs(BaseModel):
    """OpenAI's completions logprobs: parallel lists, one entry per token."""

    tokens: list[str] = Field(description="Token texts ('bytes:\\x..' when not UTF-8 alone).")
    token_logprobs: list[float | None] = Field(description="Logprob of each token; null first.")
    top_logprobs: list[dict[str, float] | None] = Field(
        description="Most likely tokens at each position (token text -> logprob)."
    )
    text_offset: list[int] = Field(description="Character offset of each token in the text.")
    token_bytes: list[list[int]] = Field(description="Extension: UTF-8 bytes of each token.")


class PromptLogprob(BaseModel):
    """vLLM's logprob of one token at a prompt position."""

    logprob: float = Field(description="Natural-log probability (raw distribution).")
    rank: int | None = Field(description="1 + the number of tokens more likely.")
    decoded_token: str | None = Field(description="Token text.")


PromptLogprobs = list[dict[int, PromptLogprob] | None]


class CompletionChoice(BaseModel):
    """One prompt's result."""

    index: int = Field(description="Index of the prompt.")
    text: str = Field(description="The generated text, after the prompt when echo is set.")
    logprobs: LegacyLogprobs | None = Field(description="When logprobs is set.")
    finish_reason: str | None = Field(description="stop, length; null in a stream's chunks.")
    prompt_logprobs: PromptLogprobs | None = Field(
        default=None, description="vLLM: per prompt token; null first."
    )
    prompt_token_ids: list[int] | None = Field(default=None, description="vLLM: prompt tokens.")


class PromptTokensDetails(BaseModel):
    """Where the prompt tokens came from (OpenAI's ``prompt_tokens_details``)."""

    cached_tokens: int = Field(
        description="Prompt tokens read from the cache (left by an earlier request or an "
        "earlier part of this one), not evaluated again."
    )


class CompletionUsage(BaseModel):
    """Token counts."""

    prompt_tokens: int = Field(description="Tokens in all prompts.")
    completion_tokens: int = Field(description="Tokens generated.")
    total_tokens: int = Field(description="Sum of both.")
    prompt_tokens_details: PromptTokensDetails | None = Field(
        default=None, description="Scoring only: the prompt tokens read from the cache."
    )


class CompletionResponse(BaseModel):
    """Response of POST /v1/completions."""

    id: str = Field(description="cmpl-... identifier.")
    object: str = Field(default="text_completion", description="Type.")
    created: int = Field(description="Unix time in seconds.")
    model: str = Field(description="The requested model name, echoed.")
    choices: list[CompletionChoice] = Field(description="One per prompt.")
    usage: CompletionUsage | None = Field(
        default=None, description="Token counts (a stream's last chunk, if asked)."
    )
    system_fingerprint: str | None = Field(
        default=None, description="Names the engine and its numerics."
    )
