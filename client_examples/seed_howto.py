"""LangChain's "How to get log probabilities" how-to, run against this server.

The two snippets are the how-to's, verbatim, except that the model is
``RemoteRunnable(url + "/chat")`` instead of ``ChatOpenAI(...).bind(logprobs=True)``:
the server binds ``logprobs`` and ``top_logprobs`` itself. ``max_tokens`` is capped per
request (``configurable``) so the embedded CPU model answers in a few seconds.

    python client_examples/seed_howto.py [http://127.0.0.1:8000]
"""

from __future__ import annotations

import sys
from typing import Any

from langchain_core.runnables import Runnable
from langserve import RemoteRunnable

url = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000"

llm: Runnable[Any, Any] = RemoteRunnable(url + "/chat").with_config(configurable={"max_tokens": 40})

# Snippet 1: invoke. (In a notebook the last expression is displayed; here we print it.)
print("== invoke: the first 5 tokens with their logprobs")
msg = llm.invoke(("human", "how are you today"))
print(msg.response_metadata["logprobs"]["content"][:5])

# Snippet 2: stream, adding chunks; their logprobs concatenate.
print("\n== stream: logprobs of the first 5 chunks, accumulated")
ct = 0
full = None
for chunk in llm.stream(("human", "how are you today")):
    if ct < 5:
        full = chunk if full is None else full + chunk
        if "logprobs" in full.response_metadata:
            print(full.response_metadata["logprobs"]["content"])
    else:
        break
    ct += 1
