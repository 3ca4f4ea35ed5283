// The /ui page: streams /generate and colours each token by probability; classifies via /classify.
// Model text is only ever set with textContent, never parsed as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  // The page is served at <prefix>/ui; the routes live at <prefix>/generate, <prefix>/classify.
  const BASE = location.pathname.replace(/\/ui\/?$/, "");
  const api = (path) => BASE + path;
  const GENERATE_KNOBS = ["temperature", "max_tokens", "top_logprobs", "low_prob_threshold"];

  // ---------- formatting ----------

  function pct(p) {
    if (p === null || p === undefined || Number.isNaN(p)) return "–";
    if (p > 0 && p < 0.001) return (p * 100).toExponential(1) + "%";
    return (p * 100).toFixed(1) + "%";
  }

  function num(x, digits = 3) {
    if (x === null || x === undefined || !Number.isFinite(x)) return "–";
    return Number(x).toPrecision(digits);
  }

  // Whitespace made visible, for the tooltip.
  function visible(text) {
    return text.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
  }

  // One alternative's own text: its bytes decoded on their own, or hex when they are a
  // fragment of a character.
  function altText(alt) {
    if (Array.isArray(alt.bytes) && alt.bytes.length) {
      const text = new TextDecoder("utf-8").decode(new Uint8Array(alt.bytes));
      if (!text.includes("\uFFFD")) return visible(text);
      return alt.bytes.map((b) => "0x" + b.toString(16).padStart(2, "0")).join(" ");
    }
    return visible(alt.token ?? "");
  }

  // Python's str offsets count code points, not UTF-16 units.
  function codePoints(text) {
    return Array.from(text).length;
  }

  // ---------- server-sent events over fetch ----------

  // Yields {event, data} frames from a text/event-stream body (any of \n, \r\n, \r endings).
  async function* readEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let event = "";
    let data = [];
    const dispatch = () => {
      const frame = { event: event || "message", data: data.join("\n") };
      event = "";
      data = [];
      return frame;
    };
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A trailing \r may be the first half of \r\n: keep it until more arrives.
      let held = "";
      if (!done && buffer.endsWith("\r")) {
        held = "\r";
        buffer = buffer.slice(0, -1);
      }
      const lines = buffer.replace(/\r\n?/g, "\n").split("\n");
      buffer = done ? "" : lines.pop() + held;
      for (const line of lines) {
        if (line === "") {
          if (event || data.length) yield dispatch();
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      if (done) break;
    }
    if (event || data.length) yield dispatch();
  }

  async function errorMessage(response) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) detail = body.error.message;
      else if (body && body.detail) detail = JSON.stringify(body.detail);
    } catch (_) {
      // not JSON: keep the status text
    }
    return `HTTP ${response.status}: ${detail}`;
  }

  // ---------- tokens ----------

  class TokenView {
    constructor(container) {
      this.container = container;
      this.decoder = new TextDecoder("utf-8"); // streaming: a character split over tokens
      this.records = [];
      this.chars = 0; // code points so far, to match the server's span offsets
      this.known = 0;
      this.sumLogprob = 0;
      this.minProb = null;
    }

    addToken(tok) {
      const bytes = Array.isArray(tok.bytes) ? tok.bytes : null;
      const text = bytes
        ? this.decoder.decode(new Uint8Array(bytes), { stream: true })
        : String(tok.token ?? "");
      const span = document.createElement("span");
      span.className = "tok";
      span.textContent = text;
      span.tabIndex = 0;
      const index = this.records.length;
      span.dataset.index = String(index);
      const known = typeof tok.logprob === "number" && Number.isFinite(tok.logprob);
      if (known) {
        const prob = typeof tok.prob === "number" ? tok.prob : Math.exp(tok.logprob);
        span.dataset.logprob = String(tok.logprob);
        span.dataset.prob = String(prob);
        span.style.setProperty("--p", String(Math.max(0, Math.min(1, prob))));
        this.known += 1;
        this.sumLogprob += tok.logprob;
        if (this.minProb === null || prob < this.minProb) this.minProb = prob;
      } else {
        span.dataset.logprob = "";
        span.dataset.prob = "";
        span.classList.add("unknown");
      }
      if (text === "") span.classList.add("partial");
      const start = this.chars;
      this.chars += codePoints(text);
      this.records.push({ tok, text, span, start, end: this.chars, known });
      this.container.appendChild(span);
    }

    addText(text) {
      // Text without logprobs (an upstream that sent none): shown, not coloured.
      const span = document.createElement("span");
      span.className = "untok";
      span.textContent = text;
      this.chars += codePoints(text);
      this.container.appendChild(span);
    }

    get perplexity() {
      return this.known ? Math.exp(-this.sumLogprob / this.known) : null;
    }

    markSpans(spans) {
      for (const s of spans) {
        for (const r of this.records) {
          const overlaps = r.end > r.start ? r.start < s.end && r.end > s.start
            : r.start >= s.start && r.start < s.end;
          if (overlaps) r.span.classList.add("low");
        }
      }
    }
  }

  // ---------- tooltip ----------

  const tooltip = {
    el: null,
    pinned: null,
    show(record) {
      const el = this.el;
      const { tok, span } = record;
      $("tt-token").textContent = visible(record.text || tok.token || "");
      $("tt-prob").textContent = record.known ? pct(span.dataset.prob * 1) : "unknown";
      const bytes = Array.isArray(tok.bytes) ? tok.bytes.join(" ") : "";
      const alts = Array.isArray(tok.top_logprobs) ? tok.top_logprobs : [];
      const sampledIn = alts.some((a) => a.token === tok.token);
      $("tt-meta").textContent =
        `logprob ${record.known ? tok.logprob.toFixed(4) : "unknown"} · bytes [${bytes}]` +
        (alts.length && !sampledIn ? " · sampled token not among the alternatives" : "");
      const body = $("tt-alts");
      body.replaceChildren();
      for (const alt of alts) {
        const row = document.createElement("tr");
        if (alt.token === tok.token) row.className = "chosen";
        const cells = [altText(alt), pct(alt.prob), num(alt.logprob, 4)];
        cells.forEach((value, i) => {
          const td = document.createElement("td");
          if (i === 0) {
            const code = document.createElement("code");
            code.textContent = value;
            td.appendChild(code);
          } else {
            td.className = "num";
            td.textContent = value;
          }
          row.appendChild(td);
        });
        body.appendChild(row);
      }
      if (!alts.length) {
        const row = document.createElement("tr");
        const td = document.createElement("td");
        td.colSpan = 3;
        td.textContent = "no alternatives (top_logprobs = 0?)";
        row.appendChild(td);
        body.appendChild(row);
      }
      el.hidden = false;
      const rect = span.getBoundingClientRect();
      const width = el.offsetWidth;
      const left = Math.min(rect.left, document.documentElement.clientWidth - width - 8);
      el.style.left = `${Math.max(8, left) + window.scrollX}px`;
      el.style.top = `${rect.bottom + window.scrollY + 6}px`;
    },
    hide() {
      this.el.hidden = true;
    },
    unpin() {
      if (this.pinned) this.pinned.span.classList.remove("pinned");
      this.pinned = null;
    },
  };

  // ---------- generate ----------

  let view = null;
  let controller = null;

  function setState(state, message) {
    document.body.dataset.state = state;
    $("output").dataset.state = state;
    $("status").textContent = message ?? "";
    $("generate-run").disabled = state === "streaming";
    $("generate-stop").disabled = state !== "streaming";
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function updateStats() {
    $("stat-tokens").textContent = String(view.records.length);
    $("stat-perplexity").textContent = num(view.perplexity, 4);
    $("stat-minprob").textContent = pct(view.minProb);
  }

  function generateRequest(form) {
    const data = new FormData(form);
    const input = { prompt: String(data.get("prompt") ?? "") };
    const system = String(data.get("system") ?? "").trim();
    if (system) input.system = system;
    const configurable = {};
    for (const key of GENERATE_KNOBS) {
      const raw = String(data.get(key) ?? "").trim();
      if (raw !== "") configurable[key] = Number(raw);
    }
    return { input, config: { configurable } };
  }

  function renderSpans(spans) {
    const list = $("spans");
    list.replaceChildren();
    if (!spans.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "none below the threshold";
      list.appendChild(li);
      return;
    }
    for (const s of spans) {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = s.word;
      li.append(code, ` min prob ${pct(s.min_prob)} (characters ${s.start}–${s.end})`);
      list.appendChild(li);
    }
  }

  function onFinal(event) {
    if (event.stats) {
      $("stat-perplexity").textContent = num(event.stats.perplexity, 4);
      $("stat-minprob").textContent = pct(event.stats.min_prob);
    }
    if (event.model) $("stat-model").textContent = event.model;
    if (event.finish_reason) $("stat-finish").textContent = event.finish_reason;
    if (Array.isArray(event.low_confidence_spans)) {
      view.markSpans(event.low_confidence_spans);
      renderSpans(event.low_confidence_spans);
    }
  }

  async function generate() {
    const form = $("generate-form");
    if (controller) controller.abort();
    controller = new AbortController();
    const request = generateRequest(form);
    tooltip.unpin();
    tooltip.hide();
    $("output").replaceChildren();
    $("error").hidden = true;
    $("spans").replaceChildren();
    for (const id of ["stat-finish", "stat-model"]) $(id).textContent = "–";
    view = new TokenView($("output"));
    updateStats();
    setState("streaming", "streaming…");
    const started = performance.now();
    try {
      const response = await fetch(api("/generate/stream"), {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(request),
        signal: controller.signal,
      });
      if (!response.ok || !response.body) throw new Error(await errorMessage(response));
      let failed = null;
      for await (const frame of readEvents(response.body)) {
        if (frame.event === "data") {
          const event = JSON.parse(frame.data);
          const tokens = Array.isArray(event.tokens) ? event.tokens : [];
          for (const tok of tokens) view.addToken(tok);
          if (!tokens.length && event.completion) view.addText(event.completion);
          if (event.stats || event.low_confidence_spans) onFinal(event);
          else updateStats();
        } else if (frame.event === "error") {
          let info = {};
          try {
            info = JSON.parse(frame.data);
          } catch (_) {
            info = { message: frame.data };
          }
          failed = `${info.type ?? "error"}${info.status_code ? ` (${info.status_code})` : ""}: ` +
            `${info.message ?? "unknown error"}`;
        } else if (frame.event === "end") {
          break;
        }
      }
      if (failed) {
        showError(failed);
        setState("error", "failed");
      } else {
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        setState("done", `done in ${seconds} s`);
      }
    } catch (err) {
      if (err.name === "AbortError") {
        setState("aborted", "stopped");
      } else {
        showError(err.message || String(err));
        setState("error", "failed");
      }
    } finally {
      controller = null;
    }
  }

  // ---------- classify ----------

  function renderClassification(out) {
    $("cls-label").textContent = out.label ?? "–";
    $("cls-confidence").textContent = pct(out.confidence);
    $("cls-coverage").textContent = pct(out.coverage);
    $("cls-method").textContent = out.method ?? "–";
    const bars = $("cls-bars");
    bars.replaceChildren();
    const entries = Object.entries(out.distribution ?? {}).sort((a, b) => b[1] - a[1]);
    for (const [label, prob] of entries) {
      const name = document.createElement("span");
      name.className = "bar-label" + (label === out.label ? " chosen" : "");
      name.textContent = label;
      const track = document.createElement("div");
      track.className = "bar-track";
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      fill.style.width = `${Math.max(0, Math.min(1, Number(prob) || 0)) * 100}%`;
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = pct(prob);
      bars.append(name, track, value);
    }
    $("cls-raw").textContent = JSON.stringify(out, null, 2);
  }

  // "label: text" per line -> [{label, text}]; a line without a colon is an error.
  function parseExamples(text) {
    const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
    return lines.map((line, i) => {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`example ${i + 1}: write it as "label: text"`);
      return { label: line.slice(0, colon).trim(), text: line.slice(colon + 1).trim() };
    });
  }

  async function classify() {
    const data = new FormData($("classify-form"));
    const labels = String(data.get("labels") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    const input = { text: String(data.get("text") ?? ""), labels };
    const instructions = String(data.get("instructions") ?? "").trim();
    if (instructions) input.instructions = instructions;
    const result = $("classify-result");
    const box = $("classify-error");
    box.hidden = true;
    result.dataset.state = "running";
    $("classify-run").disabled = true;
    try {
      const examples = parseExamples(String(data.get("examples") ?? ""));
      if (examples.length) input.examples = examples;
      const response = await fetch(api("/classify/invoke"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ input }),
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      const body = await response.json();
      renderClassification(body.output ?? {});
      result.dataset.state = "done";
    } catch (err) {
      box.textContent = err.message || String(err);
      box.hidden = false;
      result.dataset.state = "error";
    } finally {
      $("classify-run").disabled = false;
    }
  }

  // The knobs' bounds and defaults, as the server publishes them (written once, server-side).
  async function loadKnobBounds() {
    try {
      const response = await fetch(api("/generate/config_schema"));
      if (!response.ok) return;
      const schema = await response.json();
      const props = ((schema.$defs || {}).Configurable || {}).properties || {};
      const form = $("generate-form").elements;
      for (const key of GENERATE_KNOBS) {
        const prop = props[key];
        if (!prop || !form[key]) continue;
        if (prop.minimum !== undefined) form[key].min = prop.minimum;
        if (prop.maximum !== undefined) form[key].max = prop.maximum;
        if (prop.default !== undefined) form[key].placeholder = `default ${prop.default}`;
      }
    } catch (_) {
      // the form works without them: the server checks every value anyway
    }
  }

  async function probeClassify() {
    try {
      const response = await fetch(api("/classify/input_schema"));
      if (response.ok) {
        const link = document.createElement("a");
        link.href = "classify/playground/";
        link.textContent = "/classify playground";
        document.querySelector(".links").appendChild(link);
        return true;
      }
    } catch (_) {
      // treated as missing
    }
    $("classify-missing").hidden = false;
    $("classify-run").disabled = true;
    return false;
  }

  // ---------- wiring ----------

  function selectTab(name) {
    for (const tab of ["generate", "classify", "calibration"]) {
      const on = tab === name;
      $(`tab-${tab}`).setAttribute("aria-selected", String(on));
      $(`panel-${tab}`).hidden = !on;
    }
  }

  function init() {
    tooltip.el = $("tooltip");
    const output = $("output");
    const recordOf = (target) => {
      const span = target.closest && target.closest(".tok");
      return span && view ? view.records[Number(span.dataset.index)] : null;
    };
    output.addEventListener("mouseover", (e) => {
      const r = recordOf(e.target);
      if (r && !tooltip.pinned) tooltip.show(r);
    });
    output.addEventListener("mouseout", (e) => {
      if (!tooltip.pinned && recordOf(e.target)) tooltip.hide();
    });
    output.addEventListener("focusin", (e) => {
      const r = recordOf(e.target);
      if (r && !tooltip.pinned) tooltip.show(r);
    });
    output.addEventListener("click", (e) => {
      const r = recordOf(e.target);
      if (!r) return;
      e.stopPropagation();
      const same = tooltip.pinned === r;
      tooltip.unpin();
      if (same) return tooltip.hide();
      tooltip.pinned = r;
      r.span.classList.add("pinned");
      tooltip.show(r);
    });
    document.addEventListener("click", (e) => {
      if (tooltip.pinned && !tooltip.el.contains(e.target)) {
        tooltip.unpin();
        tooltip.hide();
      }
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        tooltip.unpin();
        tooltip.hide();
      }
    });

    $("tab-generate").addEventListener("click", () => selectTab("generate"));
    $("tab-classify").addEventListener("click", () => selectTab("classify"));
    $("generate-form").addEventListener("submit", (e) => {
      e.preventDefault();
      generate();
    });
    $("generate-stop").addEventListener("click", () => controller && controller.abort());
    $("classify-form").addEventListener("submit", (e) => {
      e.preventDefault();
      classify();
    });

    // The example prompts above the form: fill the prompt and run it.
    for (const button of document.querySelectorAll("button.example")) {
      button.addEventListener("click", () => {
        selectTab("generate");
        $("generate-form").elements.prompt.value = button.dataset.prompt;
        generate();
      });
    }

    // /ui?prompt=...&temperature=... fills the form and starts at once;
    // /ui?tab=classify&text=...&labels=a,b does the same for /classify.
    const params = new URLSearchParams(location.search);
    const gen = $("generate-form").elements;
    for (const key of ["prompt", "system", ...GENERATE_KNOBS]) {
      if (params.has(key)) gen[key].value = params.get(key);
    }
    const cls = $("classify-form").elements;
    for (const key of ["text", "labels", "instructions", "examples"]) {
      if (params.has(key)) cls[key].value = params.get(key);
    }
    loadKnobBounds();
    const classifyReady = probeClassify();
    if (params.get("tab") === "classify") {
      selectTab("classify");
      if (params.get("text")) classifyReady.then((ok) => ok && classify());
    } else if (params.get("prompt")) {
      generate();
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
