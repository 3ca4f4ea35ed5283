"""Continuous batching on the real model: requests join mid-stream, cancelling frees the slot,
a full queue answers 503 with Retry-After, grammar and plain requests share steps, and
concurrent streams all make progress."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from local_llm import LocalEngine, SamplingParams, create_local_app
from local_llm.engine_api import Finished, GenerationEvent, TextDelta
from local_llm.grammar import grammar_for
from local_llm.protocol import JsonSchemaSpec, ResponseFormatJsonSchema
from tests.servers import run_server

pytestmark = pytest.mark.live

N_CTX = 512
STORY = "Write a long story about a dragon who bakes bread."
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


class Run:
    """A generation submitted to an engine, its events collected as they arrive."""

    def __init__(self, engine: LocalEngine, text: str, params: SamplingParams) -> None:
        self.events: list[tuple[float, GenerationEvent | BaseException]] = []
        self.cancel = threading.Event()
        self.done = threading.Event()
        tokens = engine.tokenize_chat([("user", text)])
        engine.submit(f"test-{id(self)}", tokens, params, self.cancel, self._emit)

    def _emit(self, event: GenerationEvent | BaseException) -> None:
        self.events.append((time.monotonic(), event))
        if not isinstance(event, TextDelta):
            self.done.set()

    def wait(self, timeout: float = 60.0) -> Finished:
        assert self.done.wait(timeout), "generation did not finish"
        last = self.events[-1][1]
        assert isinstance(last, Finished), last
        return last

    def deltas(self) -> list[TextDelta]:
        return [e for _, e in self.events if isinstance(e, TextDelta)]

    def text(self) -> str:
        return "".join(d.text for d in self.deltas())

    def logprobs(self) -> list[tuple[str, float, list[float]]]:
        return [
            (e.token, e.logprob, [t.logprob for t in e.top_logprobs])
            for d in self.deltas()
            for e in d.logprobs
        ]

    def first_token_at(self) -> float:
        return next(t for t, e in self.events if isinstance(e, TextDelta) and e.text)


def _greedy(n: int, **fields: object) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, top_logprobs=5, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    """Four slots batched together (the default: results independent of load), a short queue."""
    engine = LocalEngine(n_ctx=N_CTX, parallel=4, max_queue=2)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def single_slot() -> Iterator[LocalEngine]:
    """One slot and one waiting place: the second request waits, the third is refused."""
    engine = LocalEngine(n_ctx=N_CTX, parallel=1, max_queue=1, selftest=False)
    engine.load()
    yield engine
    engine.close()


def test_request_joins_a_running_stream_and_matches_alone(engine: LocalEngine) -> None:
    alone = Run(engine, "Name three colours.", _greedy(12))
    alone.wait()
    long = Run(engine, STORY, _greedy(80, ignore_eos=True))
    deadline = time.monotonic() + 30
    while len(long.deltas()) < 5:
        assert time.monotonic() < deadline, "the first stream made no progress"
        time.sleep(0.01)
    joined = Run(engine, "Name three colours.", _greedy(12))
    joined.wait()
    assert not long.done.is_set(), "the joined request waited for the running one to finish"
    assert long.wait().completion_tokens == 80
    assert joined.text() == alone.text()
    assert joined.logprobs() == alone.logprobs()


def test_cancel_frees_the_slot_for_the_waiting_request(single_slot: LocalEngine) -> None:
    first = Run(single_slot, STORY, _greedy(400, ignore_eos=True))
    waiting = Run(single_slot, "Name three colours.", _greedy(8))
    deadline = time.monotonic() + 10
    while single_slot.load_info() != (1, 1):  # the scheduler admits the first at its next turn
        assert time.monotonic() < deadline, single_slot.load_info()
        time.sleep(0.01)
    assert not waiting.deltas()
    first.cancel.set()
    assert first.wait().finish_reason == "cancelled"
    assert first.wait().completion_tokens < 390
    assert waiting.wait(timeout=20).finish_reason in ("stop", "length")
    assert single_slot.load_info() == (0, 0)


def test_full_queue_is_503_with_retry_after(single_slot: LocalEngine) -> None:
    body = {"messages": [{"role": "user", "content": STORY}], "max_tokens": 300, "stream": True}
    body |= {"ignore_eos": True, "temperature": 0}
    with run_server(create_local_app(single_slot), health="/health") as url:
        running = Run(single_slot, STORY, _greedy(300, ignore_eos=True))
        queued = Run(single_slot, STORY, _greedy(300, ignore_eos=True))
        try:
            reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
        finally:
            running.cancel.set()
            queued.cancel.set()
        running.wait()
        queued.wait()
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "1"
    error = reply.json()["error"]
    assert error["code"] == "server_busy" and error["type"] == "server_error"
    assert "busy" in error["message"]


def test_grammar_and_plain_requests_share_steps_like_alone(engine: LocalEngine) -> None:
    fmt = ResponseFormatJsonSchema(
        type="json_schema", json_schema=JsonSchemaSpec(name="person", schema=PERSON)
    )
    grammar = grammar_for(fmt)
    ask = "Describe a person as JSON with name and age."
    alone_json = Run(engine, ask, _greedy(40, grammar=grammar))
    alone_json.wait()
    alone_plain = Run(engine, STORY, _greedy(40))
    alone_plain.wait()
    together = [Run(engine, ask, _greedy(40, grammar=grammar)), Run(engine, STORY, _greedy(40))]
    for run in together:
        run.wait()
    assert set(json.loads(together[0].text())) == {"name", "age"}
    assert together[0].text() == alone_json.text()
    assert together[0].logprobs() == alone_json.logprobs()
    assert together[1].text() == alone_plain.text()
    assert together[1].logprobs() == alone_plain.logprobs()


def test_four_concurrent_streams_all_make_progress() -> None:
    engine = LocalEngine(n_ctx=N_CTX, parallel=4, selftest=False)
    body = {"messages": [{"role": "user", "content": STORY}], "max_tokens": 48, "stream": True}
    body |= {"ignore_eos": True, "temperature": 0}

    def stream(url: str) -> tuple[float, float]:
        first = 0.0
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as s:
            for line in s.iter_lines():
                if not first and '"content":"' in line and '"role"' not in line:
                    first = time.monotonic()
        return first, time.monotonic()

    try:
        with (
            run_server(create_local_app(engine), health="/health") as url,
            ThreadPoolExecutor(4) as pool,
        ):
            times = list(pool.map(stream, [url] * 4))
    finally:
        engine.close()
    firsts, ends = [t[0] for t in times], [t[1] for t in times]
    assert all(firsts), "a stream sent no token"
    assert max(firsts) < min(ends), (firsts, ends)
    records = [r for r in engine.history() if r.completion_tokens == 48]
    assert len(records) == 4
