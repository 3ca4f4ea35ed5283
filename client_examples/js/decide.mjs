// OpenAI's own Node SDK calling the service's POST /v1/decisions: three typed questions
// about one input, answered with exact probabilities. Usage: node decide.mjs [URL] [KEY]
import OpenAI from "openai";

const url = process.argv[2] ?? "http://127.0.0.1:8000";
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: process.argv[3] ?? "unused" });

const decision = await client.decisions.create({
  model: "local",
  input: "Stripe has failed to connect for three days. Help ASAP.",
  questions: [
    {
      type: "choice",
      name: "department",
      instructions: "Which team should handle this request?",
      choices: [
        { value: "billing", description: "Payment or subscription issues." },
        { value: "technical", description: "Product bugs or integration failures." },
      ],
    },
    { type: "predicate", name: "urgent", instructions: "Is this request urgent?" },
    {
      type: "score",
      name: "frustration",
      instructions: "How frustrated does the customer appear?",
      levels: [{ label: "Calm" }, { label: "Concerned" }, { label: "Angry" }],
    },
  ],
});
console.log(JSON.stringify(decision));
