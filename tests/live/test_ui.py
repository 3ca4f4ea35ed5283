"""The /ui page in a real headless Chromium, driven over CDP (``tests/live/browser.py``).

``--dump-dom`` does not wait for a fetch stream to finish, so the browser runs with
``--remote-debugging-port`` and the test polls the page's state through the DevTools
protocol, then takes the DOM and a screenshot. Chromium is installed with apt when it is
missing and we are root; otherwise the tests skip (and fail when ``CI`` is set).
Screenshots are kept in tests/artifacts/screenshots (git-ignored; ``UI_SCREENSHOT_DIR``
overrides it). The playgrounds are driven in ``test_playground.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.live.browser import Page, assert_png

pytestmark = [pytest.mark.live, pytest.mark.timeout(600)]

DONE = "['done', 'error'].includes(document.body.dataset.state)"


def test_ui_streams_tokens_with_logprobs(live_url: str, page: Page, screenshot_dir: Path) -> None:
    prompt = "Name three colours of the rainbow."
    url = f"{live_url}/ui?prompt={quote(prompt)}&max_tokens=40&temperature=0&top_logprobs=4"
    page.goto(url, until=DONE, timeout=50)

    assert page.evaluate("document.body.dataset.state") == "done", page.evaluate(
        "document.getElementById('error').textContent"
    )
    tokens = page.evaluate(
        "Array.from(document.querySelectorAll('span.tok'), s => "
        "({lp: s.dataset.logprob, p: s.dataset.prob, text: s.textContent}))"
    )
    assert len(tokens) > 0
    numeric = [float(t["lp"]) for t in tokens if t["lp"]]
    assert numeric, tokens
    assert all(lp <= 0.0 for lp in numeric)
    assert all(0.0 <= float(t["p"]) <= 1.0 for t in tokens if t["p"])
    assert "".join(t["text"] for t in tokens).strip()
    perplexity = page.evaluate("document.getElementById('stat-perplexity').textContent")
    assert float(perplexity) >= 1.0
    assert page.evaluate("document.getElementById('stat-finish').textContent") in ("stop", "length")

    # Hovering a token shows its alternatives.
    page.evaluate(
        "document.querySelector('span.tok').dispatchEvent(new MouseEvent('mouseover', "
        "{bubbles: true}))"
    )
    assert page.evaluate("document.getElementById('tooltip').hidden") is False
    assert page.evaluate("document.querySelectorAll('#tt-alts tr').length") >= 1

    dom = page.dom()
    assert 'class="tok' in dom and "data-logprob=" in dom
    (screenshot_dir / "ui.html").write_text(dom)
    assert_png(page.screenshot(screenshot_dir / "ui.png"))


def test_ui_shows_error_events(live_url: str, page: Page) -> None:
    # max_tokens above the cap is rejected (an SSE error event, or an HTTP error before the
    # stream starts): either way the page shows the server's message.
    page.goto(f"{live_url}/ui?prompt=hi&max_tokens=100000000", until=DONE, timeout=30)
    assert page.evaluate("document.body.dataset.state") == "error"
    message = page.evaluate("document.getElementById('error').textContent")
    assert "max_tokens" in message, message


def test_ui_renders_model_text_as_text(live_url: str, page: Page) -> None:
    page.goto(f"{live_url}/ui", until="document.readyState === 'complete'", timeout=20)
    # Feed the page's own token view a token that looks like markup.
    injected = page.evaluate(
        """(() => {
          const out = document.getElementById('output');
          out.replaceChildren();
          const s = document.createElement('span');
          s.className = 'tok';
          s.textContent = '<img src=x onerror="window.pwned=1">';
          out.appendChild(s);
          return out.querySelectorAll('img').length;
        })()"""
    )
    assert injected == 0
    source = httpx.get(f"{live_url}/ui/static/app.js", timeout=10).text
    assert "innerHTML" not in source
    assert "new TextDecoder" in source and "stream: true" in source


# A fake /generate/stream for the page: CRLF framing, a metadata event, an emoji split over
# two tokens, and chunks of 7 bytes so lines, "\r\n" pairs and UTF-8 sequences straddle reads.
# The prompt "fail" gets an error event instead.
FAKE_STREAM = r"""
(() => {
  const realFetch = window.fetch.bind(window);
  const tok = (token, bytes, logprob) => ({
    token, bytes, logprob, prob: Math.exp(logprob),
    top_logprobs: [{token, bytes, logprob, prob: Math.exp(logprob)}],
  });
  const data = (obj) => `event: data\r\ndata: ${JSON.stringify(obj)}\r\n\r\n`;
  window.fetch = async (url, init) => {
    if (!String(url).endsWith("/generate/stream")) return realFetch(url, init);
    const prompt = JSON.parse(init.body).input.prompt;
    let text = 'event: metadata\r\ndata: {"run_id": "r"}\r\n\r\n';
    if (prompt === "fail") {
      text += data({completion: "Hi", tokens: [tok("Hi", [72, 105], -0.1)]});
      text += 'event: error\r\ndata: {"type": "upstream_timeout", "message": "the model took ' +
        'too long", "status_code": 504}\r\n\r\n';
    } else {
      text += data({completion: "Hi ", tokens: [tok("Hi", [72, 105], -0.1), tok(" ", [32], -0.2)]});
      text += data({completion: "", tokens: [tok("\\xf0\\x9f", [240, 159], -0.5)]});
      text += data({completion: "\u{1F600}", tokens: [tok("\\x98\\x80", [152, 128], -0.6)]});
      text += data({completion: "", tokens: [], stats: null, model: "fake", finish_reason: "stop",
        low_confidence_spans: [{start: 3, end: 4, word: "\u{1F600}", min_prob: 0.55}]});
      text += "event: end\r\n\r\n";
    }
    const bytes = new TextEncoder().encode(text);
    const body = new ReadableStream({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
        controller.close();
      },
    });
    return new Response(body, {headers: {"content-type": "text/event-stream"}});
  };
})();
"""


@pytest.fixture
def fake_stream(page: Page) -> Iterator[Page]:
    """The page with ``/generate/stream`` answered by FAKE_STREAM instead of the server."""
    script = page.call("Page.addScriptToEvaluateOnNewDocument", source=FAKE_STREAM)
    yield page
    page.call("Page.removeScriptToEvaluateOnNewDocument", identifier=script["identifier"])


def test_ui_decodes_split_characters_and_crlf_frames(live_url: str, fake_stream: Page) -> None:
    page = fake_stream
    page.goto(f"{live_url}/ui?prompt=emoji", until=DONE, timeout=20)
    assert page.evaluate("document.body.dataset.state") == "done"
    texts = page.evaluate("Array.from(document.querySelectorAll('span.tok'), s => s.textContent)")
    assert texts == ["Hi", " ", "", "\U0001f600"]
    assert page.evaluate("document.getElementById('output').textContent") == "Hi \U0001f600"
    # Running perplexity with no final stats: exp(-mean(-0.1, -0.2, -0.5, -0.6)) = 1.419.
    assert page.evaluate("document.getElementById('stat-perplexity').textContent") == "1.419"
    assert page.evaluate("document.getElementById('stat-model').textContent") == "fake"
    low = page.evaluate("Array.from(document.querySelectorAll('span.tok.low'), s => s.textContent)")
    assert "\U0001f600" in low and "Hi" not in low
    assert "\U0001f600" in page.evaluate("document.getElementById('spans').textContent")


def test_ui_shows_stream_error_event(live_url: str, fake_stream: Page) -> None:
    page = fake_stream
    page.goto(f"{live_url}/ui?prompt=fail", until=DONE, timeout=20)
    assert page.evaluate("document.body.dataset.state") == "error"
    message = page.evaluate("document.getElementById('error').textContent")
    assert "the model took too long" in message and "upstream_timeout" in message
    assert page.evaluate("document.querySelectorAll('span.tok').length") == 1


def test_ui_classify_tab(live_url: str, page: Page, screenshot_dir: Path) -> None:
    url = f"{live_url}/ui?tab=classify&text={quote('I love this phone!')}&labels=positive,negative"
    until = "['done', 'error'].includes(document.getElementById('classify-result').dataset.state)"
    page.goto(url, until=until, timeout=50)
    assert page.evaluate("document.getElementById('classify-result').dataset.state") == "done"
    assert page.evaluate("document.querySelectorAll('#cls-bars .bar-fill').length") == 2
    assert page.evaluate("document.getElementById('cls-label').textContent") in (
        "positive",
        "negative",
    )
    assert_png(page.screenshot(screenshot_dir / "ui-classify.png"))


def test_ui_classify_tab_with_examples(live_url: str, page: Page) -> None:
    examples = (
        "positive: I loved it, fantastic!\n"
        "negative: Awful, a waste of money.\n"
        "positive: Great staff and tasty food.\n"
        "negative: It broke after one day. Very disappointed."
    )
    query = f"text={quote('Horrible. I hate it, a total waste.')}&labels=positive,negative"
    url = f"{live_url}/ui?tab=classify&{query}&examples={quote(examples)}"
    until = "['done', 'error'].includes(document.getElementById('classify-result').dataset.state)"
    page.goto(url, until=until, timeout=50)
    assert page.evaluate("document.getElementById('classify-result').dataset.state") == "done"
    # The default method where the backend can score: exact label probabilities.
    assert page.evaluate("document.getElementById('cls-method').textContent") == "score"
    # Zero-shot the 270M model says "positive" to everything; the examples turn it around.
    assert page.evaluate("document.getElementById('cls-label').textContent") == "negative"


def test_ui_classify_rejects_a_malformed_example(live_url: str, page: Page) -> None:
    url = f"{live_url}/ui?tab=classify&text=hi&labels=a,b&examples={quote('no colon here')}"
    until = "['done', 'error'].includes(document.getElementById('classify-result').dataset.state)"
    page.goto(url, until=until, timeout=50)
    assert page.evaluate("document.getElementById('classify-result').dataset.state") == "error"
    message = page.evaluate("document.getElementById('classify-error').textContent")
    assert 'example 1: write it as "label: text"' in message


def test_ui_takes_knob_bounds_and_defaults_from_the_server(live_url: str, page: Page) -> None:
    field = "document.querySelector('#generate-form [name=top_logprobs]')"
    page.goto(f"{live_url}/ui", until=f"{field}.max !== ''", timeout=20)
    schema = httpx.get(f"{live_url}/generate/config_schema", timeout=10).json()
    published = schema["$defs"]["Configurable"]["properties"]["top_logprobs"]
    assert page.evaluate(f"{field}.max") == str(published["maximum"])
    assert page.evaluate(f"{field}.placeholder") == f"default {published['default']}"
    # The page opens on what the bundled base model does well, and says what it is.
    assert "base model" in page.evaluate("document.getElementById('about').textContent")
    assert page.evaluate("document.querySelector('#generate-form [name=prompt]').value")
