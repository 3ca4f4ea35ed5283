// The /ui Calibration tab: for each calibration name, its newest fit's held-out reliability
// diagram (confidence bins vs accuracy, raw and calibrated), counts per bin, and ECE, Brier
// and log loss before and after. Data from GET /v1/calibrations; "Fit now" POSTs .../fit.
// Names are caller-chosen text: only ever set with textContent, never parsed as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const BASE = location.pathname.replace(/\/ui\/?$/, "");
  const SVG = "http://www.w3.org/2000/svg";
  const SIZE = 320;
  const PAD = 36;
  let states = [];

  const fmt = (x, digits = 3) => (Number.isFinite(x) ? Number(x).toFixed(digits) : "–");

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  const px = (x) => PAD + x * (SIZE - 2 * PAD);
  const py = (y) => SIZE - PAD - y * (SIZE - 2 * PAD);

  // Accuracy bars per bin (raw left, calibrated right), the diagonal of perfect calibration,
  // and each series' (mean confidence, accuracy) points joined by a line.
  function diagram(fit) {
    const root = svg("svg", {
      viewBox: `0 0 ${SIZE} ${SIZE}`, width: SIZE, height: SIZE, role: "img",
      "aria-label": "reliability diagram: confidence bins against accuracy, raw and calibrated",
    });
    for (let t = 0; t <= 10; t += 2) {
      const v = t / 10;
      svg("line", { x1: px(0), x2: px(1), y1: py(v), y2: py(v), class: "grid" }, root);
      svg("text", { x: PAD - 6, y: py(v) + 4, class: "tick", "text-anchor": "end" }, root)
        .textContent = v.toFixed(1);
      svg("text", { x: px(v), y: SIZE - PAD + 16, class: "tick", "text-anchor": "middle" }, root)
        .textContent = v.toFixed(1);
    }
    svg("text", { x: SIZE / 2, y: SIZE - 4, class: "axis", "text-anchor": "middle" }, root)
      .textContent = "confidence (top value's probability)";
    svg("text", { x: 12, y: SIZE / 2, class: "axis", "text-anchor": "middle",
      transform: `rotate(-90 12 ${SIZE / 2})` }, root).textContent = "accuracy";
    const width = (SIZE - 2 * PAD) / 10 / 2 - 1;
    const series = [["raw", fit.reliability_before, 0], ["cal", fit.reliability_after, 1]];
    for (const [name, bins, side] of series) {
      bins.forEach((b, i) => {
        if (!b.count) return;
        const x = px(i / 10) + 1 + side * (width + 1);
        svg("rect", { x, y: py(b.accuracy), width, height: py(0) - py(b.accuracy),
          class: `bar ${name}`, "data-bin": i }, root);
      });
    }
    svg("line", { x1: px(0), y1: py(0), x2: px(1), y2: py(1), class: "diagonal" }, root);
    for (const [name, bins] of series) {
      const pts = bins.filter((b) => b.count).map((b) => `${px(b.confidence)},${py(b.accuracy)}`);
      if (pts.length) svg("polyline", { points: pts.join(" "), class: `curve ${name}` }, root);
      for (const b of bins.filter((b) => b.count)) {
        svg("circle", { cx: px(b.confidence), cy: py(b.accuracy), r: 3.5, class: `dot ${name}` },
          root);
      }
    }
    return root;
  }

  function cell(row, text, tag = "td") {
    const node = document.createElement(tag);
    node.textContent = text;
    row.appendChild(node);
  }

  function binTable(fit) {
    const table = document.createElement("table");
    table.className = "cal-bins";
    const head = table.createTHead().insertRow();
    for (const h of ["bin", "raw n", "raw conf", "raw acc", "cal n", "cal conf", "cal acc"]) {
      cell(head, h, "th");
    }
    const body = table.createTBody();
    fit.reliability_before.forEach((raw, i) => {
      const cal = fit.reliability_after[i];
      if (!raw.count && !cal.count) return;
      const row = body.insertRow();
      cell(row, `${raw.low.toFixed(1)}–${raw.high.toFixed(1)}`);
      for (const b of [raw, cal]) {
        cell(row, String(b.count));
        cell(row, b.count ? fmt(b.confidence) : "–");
        cell(row, b.count ? fmt(b.accuracy) : "–");
      }
    });
    return table;
  }

  function figures(fit) {
    const table = document.createElement("table");
    table.className = "cal-figures";
    const head = table.createTHead().insertRow();
    for (const h of ["held out", "ECE", "Brier", "log loss"]) cell(head, h, "th");
    const body = table.createTBody();
    for (const [label, m] of [["raw", fit.before], ["calibrated", fit.after]]) {
      const row = body.insertRow();
      row.dataset.series = label;
      cell(row, label);
      cell(row, fmt(m.ece));
      cell(row, fmt(m.brier));
      cell(row, fmt(m.log_loss));
    }
    return table;
  }

  function render() {
    const name = $("cal-name").value;
    const state = states.find((s) => s.calibration === name);
    const view = $("cal-view");
    view.replaceChildren();
    $("cal-fit").disabled = !state;
    if (!state) return;
    const fit = state.fit;
    const summary = document.createElement("p");
    summary.className = "summary";
    summary.textContent = fit
      ? `${state.outcome_count} outcomes · fit v${fit.version}: ${fit.method ?? "none"}, ` +
        `${fit.train_count} fitted, ${fit.heldout_count} held out · ` +
        `ECE ${fmt(fit.before.ece)} → ${fmt(fit.after.ece)}`
      : `${state.outcome_count} outcomes · no fit yet`;
    view.appendChild(summary);
    if (!fit) return;
    const reason = document.createElement("p");
    reason.id = "cal-reason";
    reason.className = fit.applied ? "applied" : "not-applied";
    reason.textContent = fit.reason;
    view.appendChild(reason);
    const grid = document.createElement("div");
    grid.className = "cal-grid";
    grid.appendChild(diagram(fit));
    const side = document.createElement("div");
    side.append(figures(fit), binTable(fit));
    grid.appendChild(side);
    view.appendChild(grid);
    view.dataset.version = String(fit.version);
  }

  async function failed(response) {
    try {
      const body = await response.json();
      return `HTTP ${response.status}: ${body.error ? body.error.message : response.statusText}`;
    } catch (_) {
      return `HTTP ${response.status}: ${response.statusText}`;
    }
  }

  function showError(message) {
    const box = $("cal-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function load(keep) {
    showError("");
    const response = await fetch(`${BASE}/v1/calibrations`);
    if (!response.ok) {
      showError(await failed(response));
      return;
    }
    states = (await response.json()).calibrations;
    const select = $("cal-name");
    const wanted = keep || select.value || new URLSearchParams(location.search).get("name");
    select.replaceChildren();
    for (const s of states) {
      const option = document.createElement("option");
      option.value = s.calibration;
      option.textContent = s.calibration;
      select.appendChild(option);
    }
    if (states.some((s) => s.calibration === wanted)) select.value = wanted;
    $("cal-empty").hidden = states.length > 0;
    render();
    document.body.dataset.calibration = "loaded";
  }

  async function fitNow() {
    const name = $("cal-name").value;
    const response = await fetch(`${BASE}/v1/calibrations/${encodeURIComponent(name)}/fit`,
      { method: "POST" });
    if (!response.ok) {
      showError(await failed(response));
      return;
    }
    await load(name);
  }

  function select() {
    for (const tab of document.querySelectorAll('.tabs [role="tab"]')) {
      const on = tab.id === "tab-calibration";
      tab.setAttribute("aria-selected", String(on));
      $(tab.getAttribute("aria-controls")).hidden = !on;
    }
    load().catch((e) => showError(String(e)));
  }

  function init() {
    $("tab-calibration").addEventListener("click", select);
    $("cal-name").addEventListener("change", render);
    $("cal-refresh").addEventListener("click", () => load().catch((e) => showError(String(e))));
    $("cal-fit").addEventListener("click", () => fitNow().catch((e) => showError(String(e))));
    if (new URLSearchParams(location.search).get("tab") === "calibration") select();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
