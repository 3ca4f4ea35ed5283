// LangChain.js RemoteRunnable against /generate: invoke, then stream, printing each token
// with its probability, logprob and alternatives. Then /classify, if the server has it.
//
//   npm install && node generate.mjs [http://127.0.0.1:8000]
//
// Two things to know about LangChain.js here:
// * RemoteRunnable lives at @langchain/core/runnables/remote in @langchain/core 0.3.x;
//   @langchain/core 1.x no longer ships it, hence the ~0.3 pin in package.json.
// * Its client "revives" every output object, and any object with a `text` key becomes a
//   StringPromptValue that keeps only the text. /generate's output (and each low-confidence
//   span) has a `text` key, so the tokens would be lost. `rawOutputs` below, passed as
//   RemoteRunnable's documented `fetch` option, hands each output over as a JSON string
//   (strings are never revived) and we parse it ourselves. /classify needs no such help.
import { RemoteRunnable } from "@langchain/core/runnables/remote";

const base = (process.argv[2] ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
const config = { configurable: { max_tokens: 16, temperature: 0, top_logprobs: 3 } };

// fetch() for RemoteRunnable: every output (JSON body or `data` event) re-encoded as a string.
async function rawOutputs(url, init) {
  const response = await fetch(url, init);
  const type = response.headers.get("content-type") ?? "";
  if (!response.ok) return response;
  if (type.includes("application/json")) {
    const body = await response.json();
    if ("output" in body) body.output = JSON.stringify(body.output);
    return Response.json(body, { status: response.status });
  }
  if (!type.includes("text/event-stream") || !response.body) return response;
  let event = "";
  let pending = "";
  const encode = (line) => {
    const bare = line.replace(/\r$/, "");
    if (bare.startsWith("event:")) event = bare.slice(6).trim();
    if (bare === "") event = "";
    if (event === "data" && bare.startsWith("data:")) {
      return `data: ${JSON.stringify(bare.slice(5).trimStart())}\n`;
    }
    return `${bare}\n`;
  };
  const body = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        const lines = (pending + chunk).split("\n");
        pending = lines.pop();
        controller.enqueue(lines.map(encode).join(""));
      },
      flush(controller) {
        if (pending) controller.enqueue(encode(pending));
      },
    }),
  );
  return new Response(body.pipeThrough(new TextEncoderStream()), {
    status: response.status,
    headers: response.headers,
  });
}

const pct = (p) => (p === null || p === undefined ? "n/a" : `${(p * 100).toFixed(1)}%`);

function printToken(tok) {
  const alts = (tok.top_logprobs ?? [])
    .map((alt) => `${JSON.stringify(alt.token)} ${pct(alt.prob)}`)
    .join(", ");
  const logprob = tok.logprob === null ? "n/a" : tok.logprob.toFixed(3);
  console.log(
    `  ${JSON.stringify(tok.token).padEnd(16)} prob ${pct(tok.prob).padStart(6)}  ` +
      `logprob ${logprob.padStart(7)}  alternatives: ${alts}`,
  );
}

const generate = new RemoteRunnable({ url: `${base}/generate`, fetch: rawOutputs });

console.log("== invoke /generate");
const out = JSON.parse(await generate.invoke({ prompt: "Name three colours." }, config));
console.log(`  text: ${JSON.stringify(out.text)}`);
console.log(`  perplexity: ${out.stats.perplexity}  finish_reason: ${out.finish_reason}`);
out.tokens.forEach(printToken);

console.log("\n== stream /generate (each token as it arrives)");
let text = "";
let last = null;
for await (const raw of await generate.stream({ prompt: "Write a word." }, config)) {
  const event = JSON.parse(raw);
  text += event.text ?? "";
  (event.tokens ?? []).forEach(printToken);
  if (event.stats) last = event;
}
console.log(`  merged text: ${JSON.stringify(text)}`);
if (last) {
  const spans = last.low_confidence_spans.map((s) => `${JSON.stringify(s.text)} ${pct(s.min_prob)}`);
  console.log(`  perplexity: ${last.stats.perplexity}  low-confidence words: ${spans.join(", ") || "none"}`);
}

if ((await fetch(`${base}/classify/input_schema`)).ok) {
  console.log("\n== invoke /classify (plain RemoteRunnable: its output has no `text` key)");
  const classify = new RemoteRunnable({ url: `${base}/classify` });
  const res = await classify.invoke({
    text: "The battery died after two days.",
    labels: ["positive", "negative", "neutral"],
  });
  console.log(`  label ${res.label}, confidence ${pct(res.confidence)}, coverage ${pct(res.coverage)}`);
  for (const [label, prob] of Object.entries(res.distribution)) {
    console.log(`  ${label.padEnd(10)} ${pct(prob).padStart(6)} ${"#".repeat(Math.round(prob * 40))}`);
  }
} else {
  console.log("\n== /classify: not on this server, skipped");
}
