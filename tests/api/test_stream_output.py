"""What a stream reports as its run's output (callbacks, tracers, ``astream_log``).

langchain-core adds a stream's chunks up into the output it hands to ``on_chain_end``; plain
dict events cannot be added, so it used to keep only the last one. /generate's events add
up to the invoke output, /decide's to the decision's answers in question order.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.runnables import RunnableConfig
from langserve.serialization import WellKnownLCSerializer

from chains import decide, generate
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream

_SERIALIZER = WellKnownLCSerializer()


class _Outputs(AsyncCallbackHandler):
    """The outputs of root runs (no parent), as on_chain_end receives them."""

    def __init__(self) -> None:
        self.outputs: list[Any] = []

    async def on_chain_end(
        self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if parent_run_id is None:
            self.outputs.append(outputs)


async def _streamed(chain: Any, value: Any, config: RunnableConfig) -> tuple[list[Any], Any]:
    handler = _Outputs()
    events = [e async for e in chain.astream(value, {**config, "callbacks": [handler]})]
    (output,) = handler.outputs
    return events, output


async def test_a_generate_stream_reports_its_invoke_output(settings: Settings) -> None:
    chain = generate.build_chain(settings, Upstream.from_settings(settings))
    config: RunnableConfig = {"configurable": {"model": "ok"}}
    value = {"prompt": "Say hello."}
    events, output = await _streamed(chain, value, config)
    assert len(events) > 2  # several token events, then the closing one
    invoked = await chain.ainvoke(value, config)
    assert output == invoked
    assert [type(e) for e in events] == [generate.GenerateEvent] * len(events)
    # On the wire (LangServe's serializer) an event is the plain object it holds.
    wire = [json.loads(_SERIALIZER.dumps(e)) for e in events]
    assert wire == [json.loads(json.dumps(dict(e))) for e in events]


async def test_a_decide_stream_reports_every_answer_in_order(settings: Settings) -> None:
    chain = decide.build_chain(settings, Upstream.from_settings(settings))
    questions = [
        {"type": "predicate", "instructions": "Is it good?"},
        {"type": "choice", "instructions": "Which?", "choices": [{"value": "a"}, {"value": "b"}]},
        {"type": "predicate", "instructions": "Is it long?"},
    ]
    value = {"model": "scores", "input": "A fine film.", "questions": questions}
    events, output = await _streamed(chain, value, {})
    assert [e["index"] for e in events] == [0, 1, 2]
    assert output == {
        "id": events[0]["id"],
        "object": "decision",
        "answers": [e["answer"] for e in events],
    }
    invoked = await chain.ainvoke({**value, "calibration": "none"})
    streamed, _ = await _streamed(chain, {**value, "calibration": "none"}, {})
    assert [e["answer"] for e in streamed] == invoked["answers"]
