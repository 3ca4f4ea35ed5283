// LangChain.js RemoteRunnable against /generate: invoke, batch and stream, printing each
// token with its probability, logprob and alternatives. Then /classify and /extract.
//
//   npm install && node generate.mjs [http://127.0.0.1:8000]
//
// Plain RemoteRunnable calls, nothing else: the outputs arrive as plain objects with every
// field. Two things to know about LangChain.js here:
// * RemoteRunnable lives at @langchain/core/runnables/remote in @langchain/core 0.3.x;
//   @langchain/core 1.x no longer ships it, hence the ~0.3 pin in package.json.
// * Its client "revives" output objects by their keys, at any depth: one with `text`
//   becomes a StringPromptValue, one with `messages` a ChatPromptValue, one with
//   `page_content` and `metadata` a Document, and every other field is lost. None of our
//   own output fields uses those names (the generated text is `completion`, a span's text
//   is `word`); keys you choose yourself can, though: a /classify label or an /extract
//   schema property named `text` or `messages`.
import { RemoteRunnable } from "@langchain/core/runnables/remote";

const base = (process.argv[2] ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
// With LOGPROBS_API_KEYS set on the server, every call sends a key (RemoteRunnable's
// documented options.headers).
const key = process.env.LOGPROBS_API_KEY;
const options = key ? { headers: { "X-API-Key": key } } : {};
const config = { configurable: { max_tokens: 16, temperature: 0, top_logprobs: 3 } };

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

function printSummary(out) {
  if (out.error) {
    console.log(`  error: ${out.error.type}: ${out.error.message}`);
    return;
  }
  const spans = out.low_confidence_spans.map((s) => `${JSON.stringify(s.word)} ${pct(s.min_prob)}`);
  console.log(`  completion: ${JSON.stringify(out.completion)}`);
  console.log(
    `  ${out.stats.num_tokens} tokens, perplexity ${out.stats.perplexity}, ` +
      `finish_reason ${out.finish_reason}, low-confidence words: ${spans.join(", ") || "none"}`,
  );
}

const generate = new RemoteRunnable({ url: `${base}/generate`, options });

console.log("== invoke /generate");
const out = await generate.invoke({ prompt: "Name three colours." }, config);
printSummary(out);
out.tokens.forEach(printToken);

console.log("\n== batch /generate (one output per input, in order)");
const prompts = ["Say hi.", "Count to three."];
const outs = await generate.batch(
  prompts.map((prompt) => ({ prompt })),
  prompts.map(() => config),
);
outs.forEach((item, i) => {
  console.log(`- ${prompts[i]}`);
  printSummary(item);
});

// Merge rule: concatenate `completion`, append `tokens`, keep the last non-null value of
// every other key. The result equals the invoke output.
console.log("\n== stream /generate (each token as it arrives)");
const merged = { completion: "", tokens: [] };
for await (const event of await generate.stream({ prompt: "Write a word." }, config)) {
  event.tokens.forEach(printToken);
  for (const [key, value] of Object.entries(event)) {
    if (key === "completion") merged.completion += value ?? "";
    else if (key === "tokens") merged.tokens.push(...(value ?? []));
    else if (value !== null || !(key in merged)) merged[key] = value;
  }
}
printSummary(merged);

console.log("\n== invoke /classify");
const classify = new RemoteRunnable({ url: `${base}/classify`, options });
const res = await classify.invoke({
  text: "The battery died after two days.",
  labels: ["positive", "negative", "neutral"],
});
console.log(`  label ${res.label}, confidence ${pct(res.confidence)}, coverage ${pct(res.coverage)}`);
for (const [label, prob] of Object.entries(res.distribution)) {
  console.log(`  ${label.padEnd(10)} ${pct(prob).padStart(6)} ${"#".repeat(Math.round(prob * 40))}`);
}

console.log("\n== invoke /extract");
const extract = new RemoteRunnable({ url: `${base}/extract`, options });
const found = await extract.invoke({
  text: "Ada Lovelace was 36 years old.",
  schema: {
    type: "object",
    properties: { name: { type: "string" }, age: { type: "integer" } },
    required: ["name", "age"],
  },
});
console.log(`  data: ${JSON.stringify(found.data)}`);
for (const [pointer, conf] of Object.entries(found.confidence)) {
  console.log(`  ${pointer.padEnd(10)} prob ${pct(conf.prob).padStart(6)}  tokens ${conf.num_tokens}`);
}
