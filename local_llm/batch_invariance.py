"""Kernel choices that make a row's numbers independent of the other rows of its batch.

llama.cpp's CPU backend picks matmul kernels by batch shape, and the kernels sum in different
orders, so the same token got other logits when other rows shared its step. Found with
``bench/probe_invariance.py`` (the first graph node whose values for one row differ alone and
among 8; README "Same request, same numbers"):

* ``MUL_MAT`` of the Q4_K/Q6_K weights (``attn_output``, ``ffn_down``) with 4+ rows: the
  repacked (interleaved) weights run a 4-row GEMM, 1-3 rows a GEMV; without repacking, 8+
  rows take ggml's "tiled" K-quant path. Both are turned off here: weights stay in ggml's
  plain layout (``use_extra_bufts = False``) and ``GGML_CPU_TILED_MM=0``, so every row goes
  through the same one-row dot product;
* ``MUL_MAT`` of the F16 attention (``K.q``, ``V.softmax``) with 2+ rows of one sequence
  (prompt chunks, scoring, a shared KV stream): llamafile's sgemm. That one is a build flag
  (``-DGGML_LLAMAFILE=OFF`` in ``scripts/build_llama.sh``); ``llamafile_in_build`` tells
  whether the installed build still has it.

Q5_0/Q8_0 weights go through the same per-block integer dot products at any batch size
(measured bit-identical), so they keep their fast paths.
"""

from __future__ import annotations

import os
from typing import Any

KERNEL_ENV = {"GGML_CPU_TILED_MM": "0"}
"""Read once per process by ggml, at the first K-quant matmul: set before any model runs."""


def choose_kernels() -> None:
    """Set ``KERNEL_ENV`` for this process and the children it starts (the self-test)."""
    os.environ.update(KERNEL_ENV)


def model_params(llama_cpp: Any) -> Any:
    """``llama_model_params`` with the weights in ggml's plain layout (no repacking)."""
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False
    return params


def llamafile_in_build(llama_cpp: Any) -> bool:
    """True when the installed llama.cpp was built with llamafile's sgemm (not invariant)."""
    info: bytes = llama_cpp.llama_print_system_info()
    return b"LLAMAFILE = 1" in info
