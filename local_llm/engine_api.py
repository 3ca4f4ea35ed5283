"""What the HTTP layer needs from an engine: ``LocalEngine`` implements it, tests fake it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from local_llm.protocol import ChatCompletionTokenLogprob, GenerationRecord

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to generate; ``top_logprobs`` is None when logprobs are not requested."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int | None = None
    grammar: str | None = None
    ignore_eos: bool = False


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text released after one generated token, with the logprob entries released with it."""

    text: str
    logprobs: list[ChatCompletionTokenLogprob] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Finished:
    """Last event of a generation."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


GenerationEvent = TextDelta | Finished
Emit = Callable[[GenerationEvent | BaseException], None]
"""Receives a generation's events (or the exception that ended it); called from any thread."""


class ChatEngine(Protocol):
    """A loaded chat model that generates several requests at once."""

    @property
    def model_name(self) -> str:
        """Name reported by /v1/models."""
        ...

    @property
    def n_ctx(self) -> int:
        """Context window in tokens."""
        ...

    @property
    def is_loaded(self) -> bool:
        """True once ``load`` has finished."""
        ...

    @property
    def startup_error(self) -> str | None:
        """Why the model could not be loaded, or None."""
        ...

    @property
    def loaded_at(self) -> int:
        """Unix time the model was loaded (0 before)."""
        ...

    def load(self) -> None:
        """Load the model (idempotent, thread-safe, blocking)."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...

    def tokenize_chat(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        """Format ``(role, text)`` messages as a prompt and tokenize it (thread-safe)."""
        ...

    def check_grammar(self, grammar: str) -> None:
        """Raise ``BadRequestError`` if llama.cpp cannot parse the GBNF grammar."""
        ...

    def submit(
        self,
        request_id: str,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        emit: Emit,
    ) -> None:
        """Queue a generation and return at once; ``emit`` gets its events, ending with one
        ``Finished`` or an exception. Stops within one step once ``cancel`` is set.

        Raises ``ServerBusyError`` at once when the wait queue is full.
        """
        ...

    def generate(
        self,
        request_id: str,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event,
    ) -> Iterator[GenerationEvent]:
        """Blocking generator: ``TextDelta`` per token, then one ``Finished``.

        ``submit`` as a blocking generator; stops within one step once ``cancel`` is set.
        """
        ...

    def history(self) -> list[GenerationRecord]:
        """The last finished generations, newest last."""
        ...

    def counters(self) -> dict[str, int]:
        """Totals since start."""
        ...
