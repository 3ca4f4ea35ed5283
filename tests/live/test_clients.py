"""The client examples, run as a user would against the real server: each exits 0 and
prints tokens with their probabilities."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chains.logprobs import merge_stream_events

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "client_examples"
PROB = re.compile(r"\d+\.\d+%|0\.\d+")


def run(args: list[str], timeout: float, cwd: Path = ROOT) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr}"
    return done.stdout


def test_seed_howto(live_url: str) -> None:
    out = run([sys.executable, str(EXAMPLES / "seed_howto.py"), live_url], timeout=55)
    assert "'logprob': -" in out and "'top_logprobs': [" in out
    # Snippet 1 prints one list of 5 tokens; snippet 2 prints the accumulated list for each
    # of the first 5 chunks that carry logprobs (the first, role-only chunk may not).
    lists = [line for line in out.splitlines() if line.startswith("[{'token'")]
    assert len(lists) >= 3, out[-2000:]
    assert lists[0].count("'bytes'") >= 5
    streamed = [line.count("'bytes'") for line in lists[1:]]
    assert streamed == sorted(streamed) and streamed[-1] > streamed[0]


@pytest.mark.timeout(180)
def test_remote_runnable(live_url: str) -> None:
    out = run([sys.executable, str(EXAMPLES / "remote_runnable.py"), live_url], timeout=170)
    for section in ("invoke", "batch", "stream", "astream", "astream_events"):
        assert f"== /generate {section}" in out
    assert "logprob" in out and "perplexity" in out
    assert PROB.search(out)
    assert re.search(r"events merged into \d+ tokens", out)
    assert "on_chain_start" in out and "on_chain_end" in out
    for route in ("/classify", "/extract"):
        assert f"== {route} invoke" in out


def test_curl_script(live_url: str) -> None:
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    out = run(["bash", str(EXAMPLES / "curl.sh"), live_url], timeout=55)
    assert "== POST /generate/invoke" in out and "== POST /generate/batch" in out
    assert "event: end" in out or out.rstrip().endswith("end")
    assert "logprob" in out and PROB.search(out)


def test_curl_script_without_jq(live_url: str) -> None:
    out = run(["env", "RAW=1", "bash", str(EXAMPLES / "curl.sh"), live_url], timeout=55)
    assert '"logprob":' in out and "event: data" in out and "event: end" in out


# Plain LangChain.js calls, as a user writes them (no fetch wrapper, no JSON.parse); prints
# what arrived, and the path of every object the client revived into a class instance.
JS_PLAIN_CALLS = r"""
import { RemoteRunnable } from "@langchain/core/runnables/remote";

const base = process.argv[2];
const config = { configurable: { max_tokens: 8, temperature: 0, top_logprobs: 3 } };
const revived = (value, path = "$") => {
  if (value === null || typeof value !== "object") return [];
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== Array.prototype) {
    return [`${path}: ${value.constructor?.name}`];
  }
  return Object.entries(value).flatMap(([key, inner]) => revived(inner, `${path}.${key}`));
};
const report = (value) => ({ value, revived: revived(value) });

const generate = new RemoteRunnable({ url: `${base}/generate` });
const invoked = await generate.invoke({ prompt: "Name a colour." }, config);
const batched = await generate.batch([{ prompt: "Say yes." }, { prompt: "Say no." }], config);
const events = [];
for await (const event of await generate.stream({ prompt: "Name a colour." }, config)) {
  events.push(event);
}
const classify = new RemoteRunnable({ url: `${base}/classify` });
const classified = await classify.invoke({ text: "I love it!", labels: ["positive", "negative"] });
const extract = new RemoteRunnable({ url: `${base}/extract` });
const extracted = await extract.invoke({
  text: "Ada is 36.",
  schema: {
    type: "object",
    properties: { name: { type: "string" }, age: { type: "integer" } },
    required: ["name", "age"],
  },
});
const score = new RemoteRunnable({ url: `${base}/score` });
const scored = await score.invoke({ context: "The sky is", continuations: [" blue", " green"] });
console.log(JSON.stringify({
  invoke: report(invoked),
  batch: report(batched),
  stream: report(events),
  classify: report(classified),
  extract: report(extracted),
  score: report(scored),
}));
"""


@pytest.fixture(scope="module")
def js_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of client_examples/js with its packages installed (``npm ci``)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        if os.environ.get("CI"):
            pytest.fail("node/npm are not installed")  # CI machines have them
        pytest.skip("node/npm are not installed")
    js = tmp_path_factory.mktemp("js")
    for path in (EXAMPLES / "js").iterdir():
        if path.name in ("package.json", "package-lock.json") or path.suffix == ".mjs":
            shutil.copy(path, js / path.name)
    install = "ci" if (js / "package-lock.json").exists() else "install"
    run([npm, install, "--no-audit", "--no-fund", "--loglevel=error"], timeout=240, cwd=js)
    return js


def assert_generate_output(out: dict[str, Any]) -> None:
    """Every field of a /generate output is there, with tokens that carry logprobs."""
    assert set(out) == {
        "completion",
        "tokens",
        "stats",
        "model",
        "finish_reason",
        "low_confidence_spans",
    }
    assert out["tokens"] and out["stats"]["num_tokens"] == len(out["tokens"])
    assert b"".join(bytes(t["bytes"]) for t in out["tokens"]).decode() == out["completion"]
    for token in out["tokens"]:
        assert isinstance(token["logprob"], float) and token["logprob"] <= 0.0
        assert 0.0 < token["prob"] <= 1.0
        assert token["top_logprobs"] and all("logprob" in t for t in token["top_logprobs"])
    for span in out["low_confidence_spans"]:
        assert out["completion"][span["start"] : span["end"]] == span["word"]


@pytest.mark.timeout(300)
def test_js_remote_runnable(live_url: str, js_dir: Path) -> None:
    node = shutil.which("node")
    assert node
    out = run([node, "generate.mjs", live_url], timeout=90, cwd=js_dir)
    for section in ("invoke /generate", "batch /generate", "stream /generate", "invoke /classify"):
        assert f"== {section}" in out
    assert "logprob" in out and "alternatives:" in out and "completion:" in out
    assert PROB.search(out)


@pytest.mark.timeout(300)
def test_js_plain_calls_keep_every_field(live_url: str, js_dir: Path) -> None:
    """LangChain.js revives output objects by their keys (``text``, ``messages``,
    ``page_content`` + ``metadata``); none of ours may trigger it, at any depth."""
    node = shutil.which("node")
    assert node
    (js_dir / "plain_calls.mjs").write_text(JS_PLAIN_CALLS)
    got = json.loads(run([node, "plain_calls.mjs", live_url], timeout=120, cwd=js_dir))
    for call in ("invoke", "batch", "stream", "classify", "extract", "score"):
        assert got[call]["revived"] == [], (call, got[call]["revived"])

    invoked = got["invoke"]["value"]
    assert_generate_output(invoked)
    batch = got["batch"]["value"]
    assert len(batch) == 2
    for item in batch:
        assert_generate_output(item)
    events = got["stream"]["value"]
    assert len(events) > 2
    assert sum(1 for event in events if event["tokens"]) > 1  # tokens arrive as they come
    assert merge_stream_events(events) == invoked  # same prompt, temperature 0

    # Inputs keep `text` (only outputs are revived): /classify and /extract took it.
    classified = got["classify"]["value"]
    assert classified["label"] in ("positive", "negative")
    assert set(classified["distribution"]) == {"positive", "negative"}
    extracted = got["extract"]["value"]
    assert set(extracted["data"]) == {"name", "age"}
    assert set(extracted["confidence"]) == {"/name", "/age"}
    scores = got["score"]["value"]["scores"]
    assert [s["continuation"] for s in scores] == [" blue", " green"]
    assert all(s["tokens"] and s["tokens"][0]["logprob"] is not None for s in scores)


@pytest.mark.timeout(300)
def test_js_prompt_pipe_chat_pipe_parser(live_url: str, js_dir: Path) -> None:
    """``ChatPromptTemplate | RemoteRunnable(url + "/chat") | StringOutputParser`` in
    LangChain.js: the prompt value arrives as {"messages": [...]} (a string prompt as
    {"value": ...}) and the answer comes back as text, invoked and streamed."""
    node = shutil.which("node")
    assert node
    got = json.loads(run([node, "chat_prompt.mjs", live_url], timeout=120, cwd=js_dir))
    assert isinstance(got["answer"], str) and got["answer"].strip()
    assert len([piece for piece in got["streamed"] if piece]) > 1  # streamed, piece by piece
    assert "".join(got["streamed"]) == got["answer"]  # temperature 0: the same answer
    assert isinstance(got["fromString"], str) and got["fromString"].strip()
