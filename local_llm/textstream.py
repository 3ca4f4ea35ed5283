"""Token bytes -> text deltas, with stop strings and per-token entries kept in step.

Tokens arrive as raw bytes that may hold half a UTF-8 character; an incremental decoder makes
sure released text never contains a broken character. Text that might be the start of a stop
string is held back until it is known not to be one. Each token carries an entry (its logprob
record); an entry is released together with the first text of its token, or at once when its
token adds no text and nothing is held back (the half-character case: content ``""``).

When a stop string appears, the text from its first character on is dropped, as are the entries
of tokens that start at or after it; a token whose text straddles the stop keeps its entry.
"""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class TextAssembler(Generic[T]):
    """Assemble generated tokens into released text and released entries."""

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stops if s)
        self._text = ""
        self._released = 0
        self._pending: deque[tuple[int, T]] = deque()
        self.stopped = False

    @property
    def text(self) -> str:
        """All text released so far."""
        return self._text[: self._released]

    def push(self, piece: bytes, entry: T | None = None) -> tuple[str, list[T]]:
        """Add one token; return the text and entries it releases.

        After a stop string is found, ``stopped`` is true and later pushes release nothing.
        """
        if self.stopped:
            return "", []
        start = len(self._text)
        self._text += self._decoder.decode(piece)
        if entry is not None:
            self._pending.append((start, entry))
        stop_at = self._find_stop()
        if stop_at is not None:
            self.stopped = True
            return self._release(stop_at, drop_rest=True)
        return self._release(len(self._text) - self._holdback())

    def finish(self) -> tuple[str, list[T]]:
        """Flush the decoder and everything held back; return what that releases."""
        if self.stopped:
            return "", []
        self._text += self._decoder.decode(b"", final=True)
        stop_at = self._find_stop()
        if stop_at is not None:
            self.stopped = True
            return self._release(stop_at, drop_rest=True)
        return self._release(len(self._text), drop_rest=False, flush=True)

    def _find_stop(self) -> int | None:
        # Held-back text guarantees a stop string never starts before the released boundary.
        hits = [i for i in (self._text.find(s, self._released) for s in self._stops) if i >= 0]
        return min(hits) if hits else None

    def _holdback(self) -> int:
        tail = self._text[self._released :]
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(tail)), best, -1):
                if tail.endswith(stop[:k]):
                    best = k
                    break
        return best

    def _release(
        self, boundary: int, *, drop_rest: bool = False, flush: bool = False
    ) -> tuple[str, list[T]]:
        text = self._text[self._released : boundary]
        self._released = boundary
        entries: list[T] = []
        at_end = boundary == len(self._text)
        while self._pending:
            start, entry = self._pending[0]
            if start < boundary or flush or (at_end and not drop_rest and start == boundary):
                entries.append(entry)
                self._pending.popleft()
            else:
                break
        if drop_rest:
            self._pending.clear()
            self._text = self._text[:boundary]
        return text, entries
