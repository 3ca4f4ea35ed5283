"""The /ui Calibration tab in a real headless Chromium (``tests/live/browser.py``).

A server with its own SQLite database gets outcomes and a fit through the API; the tab must
draw the held-out reliability diagram (raw and calibrated bars, the figures the API gave)
and fit a name on request. The screenshot goes to tests/artifacts/screenshots
(or ``UI_SCREENSHOT_DIR``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from langserve_logprobs.settings import Settings
from server import create_app
from tests.calibration_data import ndjson, overconfident
from tests.live.browser import Page, assert_png
from tests.servers import free_port, run_server

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]
LOADED = "document.body.dataset.calibration === 'loaded'"


@pytest.fixture(scope="module")
def cal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server (no model needed) whose database holds a fitted and an unfitted name."""
    settings = Settings(
        port=free_port(),
        openai_base_url="http://127.0.0.1:9/v1",
        openai_api_key="unused",
        data_dir=str(tmp_path_factory.mktemp("ui-calibration")),
        _env_file=None,
    )
    with run_server(create_app(settings), port=settings.port) as url:
        for name, rows in (
            ("sentiment", overconfident(400, seed=3)),
            ("triage", overconfident(60)),
        ):
            response = httpx.post(
                f"{url}/v1/calibrations/{name}/outcomes/import", content=ndjson(rows), timeout=60
            )
            assert response.status_code == 200, response.text
        assert httpx.post(f"{url}/v1/calibrations/sentiment/fit", timeout=60).status_code == 200
        yield url


def text(page: Page, element_id: str) -> str:
    return str(page.evaluate(f"document.getElementById({element_id!r}).textContent"))


def test_calibration_tab_draws_the_newest_fit(
    cal_url: str, page: Page, screenshot_dir: Path
) -> None:
    fit: dict[str, Any] = httpx.get(f"{cal_url}/v1/calibrations/sentiment", timeout=30).json()[
        "fit"
    ]
    page.goto(f"{cal_url}/ui?tab=calibration&name=sentiment", until=LOADED, timeout=30)
    assert page.evaluate("document.getElementById('panel-calibration').hidden") is False
    assert page.evaluate("document.getElementById('panel-generate').hidden") is True
    assert page.evaluate("document.getElementById('cal-name').value") == "sentiment"
    names = page.evaluate("Array.from(document.querySelectorAll('#cal-name option'), o => o.value)")
    assert names == ["sentiment", "triage"]
    assert page.evaluate("document.getElementById('cal-view').dataset.version") == str(
        fit["version"]
    )
    # one bar per non-empty bin and series, at the API's accuracies
    for series, bins in (("raw", fit["reliability_before"]), ("cal", fit["reliability_after"])):
        drawn = page.evaluate(
            f"Array.from(document.querySelectorAll('rect.bar.{series}'), r => +r.dataset.bin)"
        )
        assert drawn == [i for i, b in enumerate(bins) if b["count"]]
    rows = page.evaluate(
        "Array.from(document.querySelectorAll('.cal-figures tbody tr'), r => "
        "Array.from(r.cells, c => c.textContent))"
    )
    assert rows == [
        ["raw", *(f"{fit['before'][k]:.3f}" for k in ("ece", "brier", "log_loss"))],
        ["calibrated", *(f"{fit['after'][k]:.3f}" for k in ("ece", "brier", "log_loss"))],
    ]
    counts = page.evaluate(
        "Array.from(document.querySelectorAll('.cal-bins tbody tr'), r => +r.cells[1].textContent)"
    )
    assert sum(counts) == fit["heldout_count"]
    assert text(page, "cal-reason") == fit["reason"]
    assert page.exceptions == []
    (screenshot_dir / "ui-calibration.html").write_text(page.dom())
    assert_png(page.screenshot(screenshot_dir / "ui-calibration.png"))


def test_calibration_tab_fits_a_name_on_request(cal_url: str, page: Page) -> None:
    page.goto(f"{cal_url}/ui?tab=calibration&name=triage", until=LOADED, timeout=30)
    assert "no fit yet" in text(page, "cal-view")
    page.evaluate(
        "document.body.dataset.calibration = ''; document.getElementById('cal-fit').click()"
    )
    # the click reloads the tab's data, not the page
    deadline = time.monotonic() + 30
    while not page.evaluate(f"{LOADED} && !!document.getElementById('cal-view').dataset.version"):
        assert time.monotonic() < deadline, text(page, "cal-error")
        time.sleep(0.2)
    state = httpx.get(f"{cal_url}/v1/calibrations/triage", timeout=30).json()
    assert state["fit"] is not None
    assert page.evaluate("document.getElementById('cal-view').dataset.version") == str(
        state["fit"]["version"]
    )
    # back to another tab: the calibration panel hides
    page.evaluate("document.getElementById('tab-classify').click()")
    assert page.evaluate("document.getElementById('panel-calibration').hidden") is True
