"""A headless Chromium driven over the DevTools protocol, typing and clicking like a person.

No Playwright: browsers cannot be downloaded here, so the tests drive the system's Chromium
(Debian's ``chromium``, installed with apt when missing and we are root) through its
``--remote-debugging-port``. ``Page`` records what a person would notice: uncaught page
errors and every HTTP answer of 400 or more.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from harness.procs import stop

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
"""Default home of the screenshots (git-ignored); ``UI_SCREENSHOT_DIR`` overrides it."""


def find_browser() -> str | None:
    """Path of an installed Chromium or Chrome, if any."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def install_chromium() -> str | None:
    """``apt-get install chromium`` when we are root on Debian/Ubuntu; its path, or None."""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "-q", "chromium"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=500).returncode != 0:
            return None
    return find_browser()


class Page:
    """One browser tab, spoken to over the DevTools protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.exceptions: list[str] = []  # uncaught JS errors since the last reset
        self.failures: list[str] = []  # "<status> <url>" of every answer >= 400
        self.finished: set[str] = set()  # URLs whose body has been read to the end
        self._urls: dict[str, str] = {}  # request id -> URL
        self._sent: dict[str, str] = {}  # request id -> body sent

    def _event(self, reply: dict[str, Any]) -> None:
        method, params = reply.get("method"), reply.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.exceptions.append(details.get("exception", {}).get("description", str(details)))
        elif method == "Network.requestWillBeSent":
            self._sent[params["requestId"]] = params["request"].get("postData") or ""
        elif method == "Network.responseReceived":
            response = params["response"]
            self._urls[params["requestId"]] = response["url"]
            if response["status"] >= 400:
                sent = self._sent.get(params["requestId"], "")[:500]
                self.failures.append(f"{response['status']} {response['url']} {sent}".strip())
        elif method == "Network.loadingFinished" and params["requestId"] in self._urls:
            self.finished.add(self._urls[params["requestId"]])

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self._event(reply)

    def reset(self) -> None:
        """Forget the errors and answers seen so far."""
        self.exceptions.clear()
        self.failures.clear()
        self.finished.clear()

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def settle(self) -> None:
        """Wait until the page has been idle twice over (its scripts have done their start-up
        work, e.g. resolved the schemas a playground reads before it can send anything)."""
        idle = "new Promise(r => requestIdleCallback(() => r(1), {timeout: 5000}))"
        self.call("Runtime.evaluate", expression=f"{idle}.then(() => {idle})", awaitPromise=True)

    def wait_for(self, until: str, timeout: float, what: str = "") -> None:
        """Poll until the JS expression ``until`` is truthy (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"!!({until})"):
            if time.monotonic() > deadline:
                body = self.evaluate("document.body && document.body.innerText.slice(0, 1500)")
                msg = f"{what or until!r}: not true after {timeout}s; page errors: "
                raise AssertionError(f"{msg}{self.exceptions}; HTTP: {self.failures}; {body}")
            time.sleep(0.2)

    def goto(self, url: str, until: str, timeout: float = 60.0) -> None:
        """Open ``url`` (forgetting earlier errors) and wait until ``until`` is truthy."""
        self.reset()
        self.call("Page.navigate", url=url)
        self.wait_for(until, timeout, f"{url}: {until}")

    def wait_finished(self, url_part: str, timeout: float) -> None:
        """Wait until a response whose URL holds ``url_part`` has been read to its end."""
        deadline = time.monotonic() + timeout
        while not any(url_part in url for url in self.finished):
            if time.monotonic() > deadline or any(url_part in f for f in self.failures):
                msg = f"no answer for {url_part} read to its end; HTTP: {self.failures}"
                raise AssertionError(msg)
            self.evaluate("1")  # reading the socket delivers the network events
            time.sleep(0.2)

    def click(self, element: str) -> None:
        """Click the middle of the element the JS expression ``element`` gives, as a mouse."""
        x, y = self.evaluate(
            f"(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}}); "
            "const r = e.getBoundingClientRect(); "
            "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type(self, element: str, text: str) -> None:
        """Click into the element ``element`` gives and type ``text`` there."""
        self.click(element)
        self.call("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                **({"text": "\r"} if kind == "keyDown" else {}),
            )

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": 1200, "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


@contextmanager
def open_browser(binary: str, profile: Path) -> Iterator[Page]:
    """A tab (1200x900) of a headless Chromium started for the caller, stopped after."""
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--window-size=1200,900",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            if match := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line):
                port = int(match.group(1))
        if port is None:
            msg = f"chromium did not start (exit code {proc.poll()})"
            raise RuntimeError(msg)
        # Keep draining stderr so the browser never blocks on a full pipe.
        drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        tab = next(t for t in targets if t.get("type") == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=None) as ws:
            page = Page(ws)
            for domain in ("Page", "Runtime", "Network"):
                page.call(f"{domain}.enable")
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=1200,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
        drain.kill()
        drain.wait(timeout=10)
    finally:
        stop(proc, 15)


def assert_png(path: Path) -> None:
    """``path`` is a PNG of a page with something on it (not a blank capture)."""
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes"
