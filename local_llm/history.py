"""Thread-safe record of finished generations and running totals (``GET /v1/generations``)."""

from __future__ import annotations

import threading
from collections import Counter, deque

from local_llm.engine_api import FinishReason
from local_llm.protocol import GenerationRecord


class GenerationLog:
    """The last ``maxlen`` finished generations (newest last) and counters since start."""

    def __init__(self, maxlen: int = 100) -> None:
        self._lock = threading.Lock()
        self._records: deque[GenerationRecord] = deque(maxlen=maxlen)
        self._counters: Counter[str] = Counter()

    def started(self) -> None:
        """Count a generation request."""
        with self._lock:
            self._counters["requests"] += 1

    def finished(
        self, request_id: str, prompt_tokens: int, completion_tokens: int, reason: FinishReason
    ) -> None:
        """Record a finished generation."""
        record = GenerationRecord(
            id=request_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=reason,
        )
        with self._lock:
            self._records.append(record)
            self._counters[f"finished_{reason}"] += 1
            self._counters["prompt_tokens"] += prompt_tokens
            self._counters["completion_tokens"] += completion_tokens

    def records(self) -> list[GenerationRecord]:
        """The kept records, newest last."""
        with self._lock:
            return list(self._records)

    def counters(self) -> dict[str, int]:
        """Totals since start: requests, tokens and finishes by reason."""
        with self._lock:
            return dict(self._counters)
