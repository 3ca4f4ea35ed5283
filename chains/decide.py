"""``/decide`` and the engine behind ``POST /v1/decisions`` and ``/classify``: typed questions
about one input, each answered with exact probabilities by teacher forcing.

For each question, every value's whole answer text is scored after the question's plain-text
prompt (``chains.decide_prompt``) in one completions request to the upstream (echo with
logprobs: the embedded model and vLLM). The input opens every question's prompt, so the
upstream evaluates it once per request and keeps it cached for the next question; each
question's own text is evaluated once for all its values. ``chains.decide_math`` turns the
scores into the typed answer (renormalised distribution, ``coverage``, ``confidence``).

Contextual calibration (``calibration: contextual``, the service default set by
``LOGPROBS_DECISION_CALIBRATION``) scores the same question once more after the
content-free input ``N/A``; that result depends only on the question and the model, so it is
cached (up to ``CONTENT_FREE_CACHE`` questions) and a repeated question costs nothing more.

Before any model work the request is checked: images, the prompt size and the total work
(``LOGPROBS_DECISION_MAX_WORK`` estimated token positions). A backend that cannot score
given text is a 400 that says so. Streaming yields one event per answer, in question order,
each as soon as it is computed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig

from chains.calibration_apply import CalibrationSource, LearnedFit, raw_answers
from chains.decide_first_token import approximate
from chains.decide_math import AnyQuestion, ValueScores, finish_answer
from chains.decide_prompt import CONTENT_FREE, Asked, ask, input_block, input_text
from chains.decide_schema import Calibration, DecideChunk, DecideInput, DecisionOutput
from chains.runnable import ChainRunnable, check_prompt_size
from chains.teacher_forcing import CannotScoreError, Scored, TextScorer
from langserve_logprobs.errors import InvalidRequestError, UpstreamError, validated
from langserve_logprobs.settings import Settings
from langserve_logprobs.upstream import Upstream

CONTENT_FREE_CACHE = 1024
"""Content-free distributions kept (one per question text, answers and model)."""
CONCURRENT_QUESTIONS = 1
"""Questions of one request in flight at once. One: the embedded model scores one request at
a time anyway, and measured (bench_decisions (a), side by side) 4 at once made a 3-question
request 1.23x slower than asking one by one, in order 0.92x."""


class TooMuchWorkError(InvalidRequestError):
    """A decision whose estimated work is over ``LOGPROBS_DECISION_MAX_WORK``."""


def estimated_tokens(text: str) -> int:
    """A generous token estimate for the work cap: one token per 3 UTF-8 bytes, at least 1."""
    return len(text.encode("utf-8")) // 3 + 1


def work_of(asked: Sequence[Asked], calibrate: bool) -> int:
    """Estimated token positions to evaluate: each question's prompt and every answer."""
    work = sum(
        estimated_tokens(a.shots + a.question) + sum(map(estimated_tokens, a.answers))
        for a in asked
    )
    return work * (2 if calibrate else 1)


@dataclass(frozen=True, slots=True)
class Used:
    """Prompt tokens the upstream reported for a decision, and how many it read from its
    cache (an earlier question's or request's input) instead of evaluating them."""

    tokens: int = 0
    cached: int = 0

    def __add__(self, other: Used) -> Used:
        return Used(self.tokens + other.tokens, self.cached + other.cached)


@dataclass(frozen=True, slots=True)
class Plan:
    """A checked request: the shared input block and each question as teacher-forced."""

    questions: list[AnyQuestion]
    asked: list[Asked]
    head: str
    calibrate: bool
    model: str
    calibration_name: str | None = None


def value_scores(scored: Scored) -> ValueScores:
    """Each continuation's whole logprob (the sum of its tokens').

    Raises:
        UpstreamError: a token came back without a logprob.
    """
    sums = []
    for tokens in scored.continuations:
        values = [t.logprob for t in tokens]
        if not values or any(v is None for v in values):
            msg = "the model server sent an answer token without a logprob"
            raise UpstreamError(msg)
        sums.append(sum(v for v in values if v is not None))
    return ValueScores(sums, exact=True)


@dataclass
class DecisionEngine:
    """Answers decisions on the upstream; holds the content-free cache."""

    scorer: TextScorer
    default_model: str
    calibration: Calibration
    max_work: int
    max_prompt_chars: int
    approximate: bool = True
    """On an upstream that cannot score: the first-token approximation (False: the
    CannotScoreError, for /classify, which has generation methods of its own)."""
    _content_free: OrderedDict[tuple[str, str, tuple[str, ...]], ValueScores] = field(
        default_factory=OrderedDict, repr=False
    )
    calibrations: CalibrationSource | None = None
    """Learned calibrations (``calibration_name``): fits in, answered decisions out."""

    def fresh(self) -> DecisionEngine:
        """The same engine with a client of its own, for another event loop (a blocking
        caller's ``asyncio.run``): an async client belongs to the loop that made it."""
        return DecisionEngine(
            self.scorer.fresh(),
            self.default_model,
            self.calibration,
            self.max_work,
            self.max_prompt_chars,
            self.approximate,
            calibrations=self.calibrations,
        )

    def plan(self, data: DecideInput) -> Plan:
        """Render and check a request (images, size, work) before any model work.

        Raises:
            InvalidRequestError: a 400 naming what is wrong.
        """
        text = input_text(data.input)
        questions: list[AnyQuestion] = list(data.questions)
        asked = [ask(q, i) for i, q in enumerate(questions)]
        check_prompt_size(self.max_prompt_chars, text, what="input")
        calibrate = (data.calibration or self.calibration) == "contextual"
        work = work_of(asked, calibrate)
        if work > self.max_work:
            twice = ", twice with calibration" if calibrate else ""
            msg = (
                f"this decision is too much work: about {work} token positions to evaluate "
                f"(questions x values x their tokens{twice}), over the cap of "
                f"{self.max_work} (LOGPROBS_DECISION_MAX_WORK); ask fewer questions or "
                "values per request"
            )
            raise TooMuchWorkError(msg)
        model = data.model or self.default_model
        if data.calibration_name is not None and self.calibrations is None:
            msg = "calibration_name: this service keeps no learned calibrations"
            raise InvalidRequestError(msg)
        return Plan(questions, asked, input_block(text), calibrate, model, data.calibration_name)

    async def learned(self, plan: Plan) -> LearnedFit | None:
        """The learned calibration the request names, fetched once for all its answers."""
        if plan.calibration_name is None or self.calibrations is None:
            return None
        return await self.calibrations.fitted(plan.calibration_name)

    async def keep(self, plan: Plan, ident: str, answers: Sequence[dict[str, Any]]) -> None:
        """Record a decision made with a calibration name, so that outcomes can name it."""
        if plan.calibration_name is not None and self.calibrations is not None:
            raw = raw_answers(answers)
            await self.calibrations.record_decision(ident, plan.calibration_name, raw)

    async def _scores(self, context: str, asked: Asked, model: str) -> tuple[ValueScores, Used]:
        """Each value's whole answer teacher-forced after ``context``; on an upstream that
        cannot score, the first-token approximation (``exact`` false), or its 400."""
        try:
            scored = await self.scorer.ascore(context, asked.answers, 0, model)
        except CannotScoreError:
            if not self.approximate:
                raise
            client = self.scorer.async_client()
            async with self.scorer.upstream.turn() as caps:  # what the upstream takes at once
                return await approximate(client, caps, model, context, asked.answers), Used()
        return value_scores(scored), Used(scored.prompt_tokens, scored.cached_tokens)

    async def _content_free_scores(self, asked: Asked, model: str) -> tuple[ValueScores, Used]:
        key = (model, asked.shots + asked.question, tuple(asked.answers))
        hit = self._content_free.get(key)
        if hit is not None:
            self._content_free.move_to_end(key)
            return hit, Used()
        context = asked.shots + input_block(CONTENT_FREE) + asked.question
        scores, used = await self._scores(context, asked, model)
        self._content_free[key] = scores
        while len(self._content_free) > CONTENT_FREE_CACHE:
            self._content_free.popitem(last=False)
        return scores, used

    async def _answer(
        self, plan: Plan, at: int, learned: LearnedFit | None = None
    ) -> tuple[dict[str, Any], str | None, Used]:
        asked = plan.asked[at]
        raw, used = await self._scores(asked.shots + plan.head + asked.question, asked, plan.model)
        content_free = None
        if plan.calibrate:
            content_free, extra = await self._content_free_scores(asked, plan.model)
            used += extra
        answer = finish_answer(plan.questions[at], raw, content_free, learned)
        return answer, None, used

    async def answers(self, plan: Plan) -> AsyncIterator[tuple[int, dict[str, Any], str, Used]]:
        """(index, answer, model, prompt tokens) per question, in order, each as soon as it
        and those before it are computed (a few questions run at once)."""
        gate = asyncio.Semaphore(CONCURRENT_QUESTIONS)
        learned = await self.learned(plan)

        async def one(at: int) -> tuple[dict[str, Any], str | None, Used]:
            async with gate:
                return await self._answer(plan, at, learned)

        tasks = [asyncio.ensure_future(one(i)) for i in range(len(plan.asked))]
        try:
            for at, task in enumerate(tasks):
                answer, model, used = await task
                yield at, answer, model or plan.model, used
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def decide(self, data: DecideInput) -> dict[str, Any]:
        """The whole decision (``DecisionOutput`` as a dict)."""
        plan = self.plan(data)
        answers, named, used = [], plan.model, Used()
        async for _, answer, model, tokens in self.answers(plan):
            answers.append(answer)
            named, used = model, used + tokens
        out = decision(answers, named, used)
        await self.keep(plan, out["id"], out["answers"])
        return out


def new_id() -> str:
    """A decision id: ``dec_`` and 32 hex digits."""
    return f"dec_{uuid.uuid4().hex}"


def decision(answers: list[dict[str, Any]], model: str, used: Used) -> dict[str, Any]:
    """A ``DecisionOutput`` dict from the answers and the prompt tokens used."""
    usage = {
        "input_tokens": used.tokens,
        "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": used.cached},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used.tokens,
    }
    return DecisionOutput.model_validate(
        {"id": new_id(), "answers": answers, "model": model, "usage": usage}
    ).model_dump()


def _answers(event: Mapping[str, Any]) -> list[Any]:
    return list(event["answers"]) if "answers" in event else [event["answer"]]


class DecideEvent(dict[str, Any]):
    """A /decide stream event (``DecideChunk``) that LangChain can add up.

    langchain-core sums a stream's chunks (``total + chunk``) into the run's output, which
    callbacks, tracers (LangSmith) and ``astream_log`` report; plain dicts cannot be added,
    so it kept only the last answer. The sum of the events is the decision's ``id``,
    ``object`` and ``answers`` in question order (its ``model`` and ``usage`` are not in the
    events). On the wire an event is a plain object.
    """

    def __add__(self, other: Mapping[str, Any]) -> DecideEvent:
        answers = _answers(self) + _answers(other)
        return DecideEvent({"id": self["id"], "object": "decision", "answers": answers})


class Decide(ChainRunnable):
    """Answers typed questions about one input (LangServe's view of the engine)."""

    engine: DecisionEngine

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        return await self.engine.decide(self._input(value, config))

    def _invoke(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        # Derived from the async engine (no second implementation).
        return asyncio.run(self.engine.fresh().decide(self._input(value, config)))

    async def _astream(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[Any]:
        plan = self.engine.plan(self._input(value, config))
        ident = new_id()
        done = []
        async for at, answer, _, _ in self.engine.answers(plan):
            chunk = DecideChunk.model_validate({"id": ident, "index": at, "answer": answer})
            event = DecideEvent(chunk.model_dump())
            done.append(event["answer"])
            yield event
        await self.engine.keep(plan, ident, done)

    def _input(self, value: Any, config: RunnableConfig) -> DecideInput:
        data = validated(DecideInput, value)
        model = (config.get("configurable") or {}).get("model")
        if model and not data.model:
            data = data.model_copy(update={"model": str(model)})
        return data


def build_engine(
    settings: Settings,
    upstream: Upstream,
    *,
    approximate: bool = True,
    calibrations: CalibrationSource | None = None,
) -> DecisionEngine:
    """The engine of /decide and /v1/decisions (one, shared), or of /classify's method score
    (``approximate`` False: it falls back to its generation methods instead)."""
    return DecisionEngine(
        calibrations=calibrations,
        scorer=TextScorer(upstream),
        default_model=settings.model_name,
        calibration=settings.decision_calibration,
        max_work=settings.decision_max_work,
        max_prompt_chars=settings.max_prompt_chars,
        approximate=approximate,
    )


def build_chain(
    settings: Settings, upstream: Upstream, engine: DecisionEngine | None = None
) -> Runnable[Any, Any]:
    """The /decide chain over ``engine`` (one is built when none is given)."""
    chain = Decide(engine=engine or build_engine(settings, upstream))
    return chain.with_types(input_type=DecideInput, output_type=DecisionOutput)
