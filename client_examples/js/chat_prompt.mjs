// LangChain.js composition with /chat: a prompt template, the remote chat model, a string
// parser, exactly as with a local chat model. Prints one JSON object with the answers.
//
//   npm install && node chat_prompt.mjs [http://127.0.0.1:8000]
//
// The prompt value reaches the server as {"messages": [...]}; /chat takes it like ChatOpenAI.
import { StringOutputParser } from "@langchain/core/output_parsers";
import { ChatPromptTemplate, PromptTemplate } from "@langchain/core/prompts";
import { RemoteRunnable } from "@langchain/core/runnables/remote";

const base = (process.argv[2] ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
const key = process.env.LOGPROBS_API_KEY;
const options = key ? { headers: { "X-API-Key": key } } : {};
const chat = new RemoteRunnable({ url: `${base}/chat`, options }).withConfig({
  configurable: { max_tokens: 12, temperature: 0 },
});

// The bundled 270M base model continues text best: ask it for a continuation.
const prompt = ChatPromptTemplate.fromMessages([
  ["system", "Continue the code."],
  ["human", "{q}"],
]);
const chain = prompt.pipe(chat).pipe(new StringOutputParser());
const answer = await chain.invoke({ q: "def fibonacci(n):" });

const streamed = [];
for await (const piece of await chain.stream({ q: "def fibonacci(n):" })) streamed.push(piece);

const stringChain = PromptTemplate.fromTemplate("{q}").pipe(chat).pipe(new StringOutputParser());
const fromString = await stringChain.invoke({ q: "def fibonacci(n):" });

console.log(JSON.stringify({ answer, streamed, fromString }));
