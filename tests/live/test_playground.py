"""Every route's LangServe playground, used in a real browser as a person would.

For each route of ``server.PLAYGROUNDS`` (``server.ROUTES`` and /decide, so a new route is
covered by being added there): open ``<route>/playground/``, fill only the required inputs
(``SAMPLES``, or the first of the field's JSON Schema ``examples``), click Start (the chat
playground: type a message, press Enter), wait for the answer, and check it holds the
route's result; no uncaught page error, no HTTP answer of 400 or more. The same again on a
server with ``LOGPROBS_API_KEYS`` set, after the login form. Screenshots go to
tests/artifacts/screenshots (git-ignored).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chains.decide_schema import QUESTION_EXAMPLES, DecideChunk
from langserve_logprobs.settings import Settings
from server import PLAYGROUNDS, create_app
from tests.live.browser import Page, assert_png
from tests.servers import free_port, run_server

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]

KEY = "playground-test-key"
ANSWER_TIMEOUT = 120.0

# What a person types in each required field; the values show the bundled base model at its
# best (continuing text, few-shot decisions, scoring). A route not listed here is filled from
# its schema's `examples`.
SAMPLES: dict[str, dict[str, Any]] = {
    "/chat": {"message": "def fibonacci(n):"},
    "/generate": {"prompt": "def fibonacci(n):"},
    "/classify": {
        "text": "I love this phone, it is fantastic!",
        "labels": ["positive", "negative"],
    },
    "/extract": {
        "text": "Ada Lovelace was born in London in 1815.",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
            "required": ["name", "year"],
        },
    },
    "/score": {"continuations": ["The capital of France is Paris."]},
}

PARAMS = [pytest.param(path, kind, id=path.strip("/")) for path, kind in PLAYGROUNDS]
LAID_OUT = "document.querySelector('#root') && document.querySelector('#root').innerText.length > 0"
START = "[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Start')"
OUTPUT = (
    "[...document.querySelectorAll('h2')].find(h => h.innerText.trim() === 'Output')"
    "?.nextElementSibling"
)
TRY_IT = "[...document.querySelectorAll('h2')].find(h => h.innerText.trim() === 'Try it')"
CHAT_BOX = "document.querySelector('textarea[placeholder^=\"Send a message\"]')"
MESSAGES = (
    "[...document.querySelectorAll('div.mb-8.group')]"
    ".map(d => [d.querySelector('select').value, d.querySelector('textarea').value])"
)


@pytest.fixture(scope="module")
def keyed_url() -> Iterator[str]:
    """A real server like ``live_url``'s with ``LOGPROBS_API_KEYS`` set."""
    settings = Settings(port=free_port(), api_keys=SecretStr(KEY), _env_file=None)
    with run_server(create_app(settings), port=settings.port) as url:
        yield url


def _samples(base: str, path: str) -> dict[str, Any]:
    """The value to type in each required input of ``path``'s playground."""
    schema = httpx.get(f"{base}{path}/input_schema", headers={"X-API-Key": KEY}).json()
    values = {}
    for name in schema.get("required", []):
        field = schema["properties"][name]
        if name in SAMPLES.get(path, {}):
            values[name] = SAMPLES[path][name]
        else:
            assert field.get("examples"), f"{path}: give required input {name!r} examples"
            values[name] = field["examples"][0]
    return values


def _shown(page: Page, control: str, text: str) -> bool:
    shown = page.evaluate(f"{control}.value")
    if shown == text:
        return True
    try:  # a JSON control shows the value re-serialised
        return bool(json.loads(shown) == json.loads(text))
    except ValueError:
        return False


def _type_until_shown(page: Page, control: str, text: str) -> None:
    """Click into ``control``, select what it holds and type ``text`` over it; again if the
    form re-rendered it under the keystrokes (a person looks, and types again)."""
    page.click(control)
    for _ in range(3):
        page.evaluate(f"{control}.select()")
        page.call("Input.insertText", text=text)
        time.sleep(0.3)
        if _shown(page, control, text):
            return
    raise AssertionError(f"{control} shows {page.evaluate(f'{control}.value')!r}")


def _fill(page: Page, schema_titles: dict[str, str], values: dict[str, Any]) -> None:
    """Type each value in its form control: text, a list of texts, or JSON."""
    for name, value in values.items():
        control = f"document.getElementById('#/properties/{name}-input')"
        if isinstance(value, str):
            page.type(control, value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            label = f"Add to {schema_titles[name]} button"
            add = f"document.querySelector('button[aria-label=\"{label}\"]')"
            rows = f"{add}.closest('table').querySelectorAll('tbody textarea')"
            for count, item in enumerate(value, start=1):
                page.click(add)
                page.wait_for(f"{rows}.length === {count}", 5)
                _type_until_shown(page, f"[...{rows}].at(-1)", item)
        else:  # an object: the JSON text area, replacing its default
            _type_until_shown(page, control, json.dumps(value))


def _objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects the output panel shows, one after another (a stream's events)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        found.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def _required_output_keys(base: str, path: str) -> set[str]:
    schema = httpx.get(f"{base}{path}/output_schema", headers={"X-API-Key": KEY}).json()
    for option in schema.get("anyOf", [schema]):
        ref = option.get("$ref", "")
        target = schema["$defs"][ref.rsplit("/", 1)[-1]] if ref else option
        if "ItemError" not in ref:
            return set(target.get("required", []))
    raise AssertionError(f"{path}: no output schema besides ItemError")


def _logprobs(value: Any) -> list[float]:
    """Every ``logprob`` number anywhere in ``value``."""
    if isinstance(value, dict):
        own = [value["logprob"]] if isinstance(value.get("logprob"), float) else []
        return own + [lp for v in value.values() for lp in _logprobs(v)]
    if isinstance(value, list):
        return [lp for v in value for lp in _logprobs(v)]
    return []


def _check_result(path: str, events: list[dict[str, Any]], required: set[str]) -> None:
    if path == "/decide":  # its stream: one event per answer, in question order
        required = set(DecideChunk.model_fields)
    merged: dict[str, Any] = {}  # every key's last non-null value
    for event in events:
        assert "error" not in event, event
        assert required <= set(event), (path, required - set(event))
        merged.update({k: v for k, v in event.items() if v is not None})
    if path in ("/generate", "/score", "/extract"):
        logprobs = _logprobs(events)
        assert logprobs and all(lp <= 0.0 for lp in logprobs)
    if path == "/generate":
        assert "".join(e["completion"] for e in events).strip()
    if path == "/decide":
        assert [e["index"] for e in events] == list(range(len(QUESTION_EXAMPLES)))
        answers = [e["answer"] for e in events]
        assert [a["type"] for a in answers] == [q["type"] for q in QUESTION_EXAMPLES]
        assert all(0.0 <= a["coverage"] <= 1.0 for a in answers)
        predicate, choice, score = answers
        assert 0.0 <= predicate["probability"] <= 1.0
        assert choice["choice"] in ("positive", "negative")
        assert abs(sum(p["probability"] for p in choice["probabilities"]) - 1.0) < 1e-6
        assert abs(sum(p["probability"] for p in score["probabilities"]) - 1.0) < 1e-6
        assert 0.0 <= score["score"] <= 2.0
    if path == "/classify":
        assert merged["label"] in SAMPLES[path]["labels"]
        assert abs(sum(merged["distribution"].values()) - 1.0) < 1e-6


def run_default_playground(page: Page, base: str, path: str, shot: Path) -> None:
    """Fill the required inputs, click Start, wait for the output; check it."""
    page.goto(f"{base}{path}/playground/", until=f"({LAID_OUT}) && {START}", timeout=30)
    page.settle()
    schema = httpx.get(f"{base}{path}/input_schema", headers={"X-API-Key": KEY}).json()
    titles = {k: v.get("title", k) for k, v in schema["properties"].items()}
    _fill(page, titles, _samples(base, path))
    page.wait_for(f"!{START}.disabled", 10, f"{path}: Start stays disabled")
    assert "Validation Errors" not in page.evaluate("document.body.innerText")
    page.click(START)
    page.wait_finished(f"{path}/stream_log", ANSWER_TIMEOUT)
    page.wait_for(f"{OUTPUT} && !['', '...'].includes({OUTPUT}.innerText.trim())", 10)
    text = page.evaluate(f"{OUTPUT}.innerText")
    events = _objects(text)
    assert events, text
    _check_result(path, events, _required_output_keys(base, path))
    # What a person sees: the inputs they typed, then the output.
    page.evaluate(TRY_IT + ".scrollIntoView({block: 'start'})")
    assert_png(page.screenshot(shot))


def run_chat_playground(page: Page, base: str, path: str, shot: Path) -> None:
    """Type a message, press Enter, wait for the streamed answer."""
    page.goto(f"{base}{path}/playground/", until=CHAT_BOX, timeout=30)
    page.settle()  # the page sends {"undefined": [...]} if a message beats its schema
    message = SAMPLES.get(path, SAMPLES["/chat"])["message"]
    page.type(CHAT_BOX, message)
    page.press_enter()
    page.wait_finished(f"{path}/stream_log", ANSWER_TIMEOUT)
    page.wait_for(f"{MESSAGES}.length === 2 && {MESSAGES}.every(m => m[1].length > 0)", 10)
    messages = dict(page.evaluate(MESSAGES))  # role -> text (shown newest first)
    assert messages["human"] == message
    assert messages["ai"].strip()
    # What a person sees first: their message and the start of the answer.
    page.evaluate(
        "[...document.querySelectorAll('div.mb-8.group')]"
        ".find(d => d.querySelector('select').value === 'human').scrollIntoView()"
    )
    assert_png(page.screenshot(shot))


def _run(page: Page, base: str, path: str, kind: str, shot: Path) -> None:
    run = run_chat_playground if kind == "chat" else run_default_playground
    run(page, base, path, shot)
    assert not page.exceptions, page.exceptions
    assert not page.failures, page.failures


@pytest.mark.parametrize(("path", "kind"), PARAMS)
def test_playground_runs(
    live_url: str, page: Page, screenshot_dir: Path, path: str, kind: str
) -> None:
    _run(page, live_url, path, kind, screenshot_dir / f"playground-{path.strip('/')}.png")


@pytest.mark.parametrize(("path", "kind"), PARAMS)
def test_playground_runs_after_login(
    keyed_url: str, page: Page, screenshot_dir: Path, path: str, kind: str
) -> None:
    page.call("Network.clearBrowserCookies")
    login = f"{keyed_url}/login?next={path}/playground/"
    page.goto(login, until="document.querySelector('input[name=api_key]')", timeout=20)
    page.type("document.querySelector('input[name=api_key]')", KEY)
    page.press_enter()  # submits the form; the answer redirects to the playground
    page.wait_for(f"location.pathname === '{path}/playground/'", 20, "login redirect")
    _run(page, keyed_url, path, kind, screenshot_dir / f"playground-{path.strip('/')}-key.png")
