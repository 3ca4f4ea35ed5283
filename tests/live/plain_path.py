"""The reference numbers: llama.cpp's plain path through llama-cpp-python's ``Llama``.

Flash attention off, the default KV cache, the prompt in one batch, then one token per decode:
what ``Llama(..., logits_all=True).create_completion(logprobs=...)`` does. The embedded engine
must match it (issue 17: within 1e-3 nats on greedy tokens and their top 5).

On the engine's kernels (``local_llm.batch_invariance``): weights in ggml's plain layout. With
llama.cpp's repacked layout (its default on x86) the same forward pass moves the top token's
logprob by up to 0.08 nats (measured; README "Same request, same numbers"): the kernel is part
of the reference, so ``repacked=True`` gives that default for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from unittest import mock

from local_llm.batch_invariance import choose_kernels, model_params
from local_llm.model_file import default_model_path


@dataclass(frozen=True)
class PlainToken:
    """One greedy token of the plain path: its text, logprob and top alternatives."""

    token: str
    logprob: float
    top: dict[str, float]


def plain_path_greedy(
    prompt: str, tokens: int, top: int = 5, *, repacked: bool = False
) -> list[PlainToken]:
    """Greedy tokens of ``prompt`` (special tokens parsed, no BOS added) with their logprobs."""
    import llama_cpp.llama_cpp as low
    from llama_cpp import Llama

    choose_kernels()  # the same kernels as the engine in this process (read once by ggml)
    params = model_params(low)
    params.use_extra_bufts = repacked
    # ``Llama`` takes its model parameters from this function and has no argument for the layout.
    with mock.patch.object(low, "llama_model_default_params", return_value=params):
        llm = Llama(
            model_path=default_model_path(),
            n_ctx=1024,
            n_batch=1024,
            n_threads=1,
            logits_all=True,
            flash_attn=False,
            verbose=False,
        )
    try:
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        out = llm.create_completion(ids, max_tokens=tokens, temperature=0.0, logprobs=top, stop=[])
    finally:
        llm.close()
    lp: Any = out["choices"][0]["logprobs"]  # type: ignore[index]
    return [
        PlainToken(t, float(v), {k: float(x) for k, x in alts.items()})
        for t, v, alts in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True)
    ]
