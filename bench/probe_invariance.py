"""Probe: the first graph node whose values for one row change when other rows share its batch.

llama.cpp calls an eval callback (``cb_eval`` in the context params) after computing each node
of its graph. This probe runs the same row twice on the embedded engine's model and layout:

* ``decode``: the next token of sequence 0 alone, then as row 0 of a step with 7 other
  sequences (the generation context: a KV stream per sequence);
* ``unified``: the same on one shared KV stream (the scoring context's layout);
* ``prefill``: the first token of a chunk alone, then as row 0 of an 8-token chunk of the same
  sequence (prompt chunks, echo scoring).

For every node it slices out the row (the dimension that is 1 alone and n together) and
compares it bit for bit, then reports the first node that differs (op, types, shapes, sources),
how many nodes differ and the logits' largest difference. By default the kernels are the
engine's (``local_llm/batch_invariance.py``); ``--repack`` loads the weights in llama.cpp's
repacked (interleaved) CPU layouts, ``--tiled`` leaves ggml's tiled K-quant matmul on,
``--flash-attn`` turns flash attention on: the choices before issue 17. Prints one JSON object
per mode; ``system_info`` says whether the build has llamafile's sgemm (``LLAMAFILE = 1``).

Run: ``.venv/bin/python -m bench.probe_invariance [--mode decode|unified|prefill|all]
[--repack] [--tiled] [--flash-attn] [--threads N] [--verbose]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from local_llm.batch_invariance import choose_kernels
from local_llm.model_file import default_model_path

ROWS = 8
PROMPTS = [
    "The capital of France is",
    "Write a long story about a dragon who learns to bake bread.",
    "Explain how a bicycle works to a child.",
    "Describe a walk through a city market in the morning.",
    "Tell the history of a small fishing village.",
    "Write a letter from a lighthouse keeper to a friend.",
    "Describe how to plant a vegetable garden.",
    "Explain why the sea is salty.",
]


class Tensor(ctypes.Structure):
    """``struct ggml_tensor`` (ggml.h, GGML_MAX_DIMS 4, GGML_MAX_SRC 10, GGML_MAX_NAME 64)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _ggml_base() -> Any:
    import llama_cpp

    lib_dir = pathlib.Path(llama_cpp.__file__).parent / "lib"
    lib = ctypes.CDLL(str(next(lib_dir.glob("libggml-base.so*"))))
    lib.ggml_op_desc.restype = ctypes.c_char_p
    lib.ggml_op_desc.argtypes = [ctypes.c_void_p]
    lib.ggml_type_name.restype = ctypes.c_char_p
    lib.ggml_type_name.argtypes = [ctypes.c_int]
    return lib


_GGML = None
VERBOSE = False
_DTYPES = {0: np.float32, 1: np.float16, 26: np.int32}  # GGML_TYPE_F32, F16, I32


@dataclass
class Node:
    """One computed node: what it is and a copy of its values (None for quantized types)."""

    name: str
    op: str
    type: str
    ne: tuple[int, ...]
    srcs: list[tuple[str, str, tuple[int, ...]]]
    values: np.ndarray | None


def _describe(t: Tensor) -> tuple[str, str, tuple[int, ...]]:
    assert _GGML is not None
    return t.name.decode(), _GGML.ggml_type_name(t.type).decode(), tuple(t.ne)


def _values(t: Tensor) -> np.ndarray | None:
    dtype = _DTYPES.get(t.type)
    if dtype is None or not t.data:
        return None
    ne, nb = list(t.ne), list(t.nb)
    span = sum((n - 1) * s for n, s in zip(ne, nb, strict=True)) + np.dtype(dtype).itemsize
    raw = (ctypes.c_char * span).from_address(t.data)
    arr = np.ndarray(
        shape=tuple(reversed(ne)), dtype=dtype, buffer=raw, strides=tuple(reversed(nb))
    )
    return arr.copy()


class Recorder:
    """The eval callback: records every node of the graphs computed while ``on``."""

    def __init__(self) -> None:
        import llama_cpp

        self.on = False
        self.nodes: list[Node] = []
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._cb)

    def _cb(self, tensor: int, ask: bool, _user: int) -> bool:
        if ask:
            return self.on
        assert _GGML is not None
        t = Tensor.from_address(tensor)
        srcs = [_describe(Tensor.from_address(s)) for s in t.src if s]
        name, type_name, ne = _describe(t)
        op = _GGML.ggml_op_desc(ctypes.c_void_p(tensor)).decode()
        self.nodes.append(Node(name, op, type_name, ne, srcs, _values(t)))
        return True


def _row(values: np.ndarray, alone: tuple[int, ...], together: tuple[int, ...]) -> np.ndarray:
    """Row 0 of ``values`` (shape ``together``): index 0 where the row's shape has 1."""
    index: list[slice | int] = []
    for a, b in zip(reversed(alone), reversed(together), strict=True):
        index.append(slice(0, 1) if a == 1 and b > 1 else slice(None))
    return values[tuple(index)]


class Probe:
    """A context shaped like the engine's on the bundled model, with the recorder attached."""

    def __init__(self, *, unified: bool, repack: bool, flash_attn: bool, threads: int) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaModel
        from llama_cpp._logger import set_verbose

        set_verbose(False)
        mparams = llama_cpp.llama_model_default_params()
        mparams.use_extra_bufts = repack
        self.model = LlamaModel(path_model=default_model_path(), params=mparams, verbose=False)
        self.recorder = Recorder()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = 512 * ROWS
        params.n_batch = params.n_ubatch = 64
        params.n_seq_max = ROWS
        params.kv_unified = unified
        params.swa_full = False
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.n_threads = params.n_threads_batch = threads
        params.cb_eval = self.recorder.callback
        params.cb_eval_user_data = None
        self.lib = llama_cpp
        self.ctx = llama_cpp.llama_init_from_model(self.model.model, params)
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model.model)
        self.n_vocab = self.model.n_vocab()
        self.batch = llama_cpp.llama_batch_init(64, 0, 1)

    def tokens(self, text: str) -> list[int]:
        prompt = f"<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"
        return list(self.model.tokenize(prompt.encode(), add_bos=False, special=True))

    def decode(self, rows: list[tuple[int, int, int]], *, record: bool = False) -> np.ndarray:
        """Decode (token, pos, seq) rows; return row 0's logits (and record nodes if asked)."""
        lib, batch = self.lib, self.batch
        batch.n_tokens = len(rows)
        for i, (token, pos, seq) in enumerate(rows):
            batch.token[i], batch.pos[i] = token, pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = True
        self.recorder.on, self.recorder.nodes = record, []
        rc = lib.llama_decode(self.ctx, batch)
        self.recorder.on = False
        if rc != 0:
            msg = f"llama_decode returned {rc}"
            raise RuntimeError(msg)
        pointer = lib.llama_get_logits_ith(self.ctx, 0)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def prefill(self, seq: int, tokens: list[int]) -> None:
        for start in range(0, len(tokens), 32):
            chunk = tokens[start : start + 32]
            self.decode([(t, start + i, seq) for i, t in enumerate(chunk)])

    def rm(self, seq: int, start: int) -> None:
        self.lib.llama_memory_seq_rm(self.mem, seq, start, -1)


def compare(alone: list[Node], together: list[Node]) -> dict[str, Any]:
    """The first node whose row differs, and a count of differing nodes by op."""
    first: dict[str, Any] | None = None
    differing: dict[str, int] = {}
    compared = 0
    for a, b in zip(alone, together, strict=False):
        if a.values is None or b.values is None or a.name != b.name:
            continue
        if not any(x == 1 and y > 1 for x, y in zip(a.ne, b.ne, strict=True)):
            continue  # no row dimension: a whole KV cache or a weight, not this row's values
        row = _row(b.values, a.ne, b.ne)
        if row.shape != a.values.shape:
            continue
        compared += 1
        diff = np.abs(row.astype(np.float64) - a.values.astype(np.float64))
        finite = np.isfinite(diff)
        same = np.array_equal(row, a.values, equal_nan=True)
        if same:
            continue
        differing[a.op] = differing.get(a.op, 0) + 1
        if VERBOSE:
            print(a.name, a.op, a.ne, b.ne, float(diff[finite].max()) if finite.any() else None)
        if first is None:
            first = {
                "name": a.name,
                "op": a.op,
                "type": a.type,
                "shape_alone": list(a.ne),
                "shape_together": list(b.ne),
                "sources_together": [
                    {"name": n, "type": t, "shape": list(s)} for n, t, s in b.srcs
                ],
                "max_abs_diff": float(diff[finite].max()) if finite.any() else None,
            }
    return {
        "nodes_alone": len(alone),
        "nodes_together": len(together),
        "nodes_compared": compared,
        "first_differing_node": first,
        "differing_nodes_by_op": differing,
    }


def run(mode: str, *, repack: bool, flash_attn: bool, threads: int) -> dict[str, Any]:
    """Row 0 alone vs row 0 among ``ROWS`` rows, in ``mode``; see the module docstring."""
    probe = Probe(unified=mode == "unified", repack=repack, flash_attn=flash_attn, threads=threads)
    prompts = [probe.tokens(p) for p in PROMPTS]
    # Together first, then alone on the same cells: KV cells the row cannot see (masked) hold
    # the same stale values in both runs, so only values the row depends on are compared.
    if mode == "prefill":
        base = prompts[1]  # 20+ tokens: a chunk of ROWS after a prefix
        head, tail = base[: len(base) - ROWS], base[len(base) - ROWS :]
        probe.prefill(0, head)
        n = len(head)
        logits_together = probe.decode([(t, n + i, 0) for i, t in enumerate(tail)], record=True)
        together = probe.recorder.nodes
        probe.rm(0, n)
        logits_alone = probe.decode([(tail[0], n, 0)], record=True)
        alone = probe.recorder.nodes
    else:
        for seq, tokens in enumerate(prompts):
            probe.prefill(seq, tokens[:-1])
        # every sequence's next token: its prompt's last token was decoded, decode token 1
        nxt = [
            (int(np.argmax(probe.decode([(t[-1], len(t) - 1, s)]))), len(t), s)
            for s, t in enumerate(prompts)
        ]
        logits_together = probe.decode(nxt, record=True)
        together = probe.recorder.nodes
        for token_pos_seq in nxt:
            probe.rm(token_pos_seq[2], token_pos_seq[1])
        logits_alone = probe.decode([nxt[0]], record=True)
        alone = probe.recorder.nodes
    report = compare(alone, together)
    report.update(
        mode=mode,
        repack=repack,
        flash_attn=flash_attn,
        threads=threads,
        rows=ROWS,
        logits_equal=bool(np.array_equal(logits_alone, logits_together)),
        logits_max_abs_diff=float(np.abs(logits_alone - logits_together).max()),
        system_info=probe.lib.llama_print_system_info().decode(),
        env={k: v for k, v in os.environ.items() if k.startswith("GGML_")},
    )
    probe.lib.llama_batch_free(probe.batch)
    probe.lib.llama_free(probe.ctx)
    probe.model.close()
    return report


def main() -> None:
    global _GGML, VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["decode", "unified", "prefill", "all"], default="all")
    parser.add_argument("--repack", action="store_true", help="repacked weight layouts")
    parser.add_argument("--tiled", action="store_true", help="ggml's tiled K-quant matmul on")
    parser.add_argument("--flash-attn", action="store_true", help="flash attention on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="list every differing node")
    args = parser.parse_args()
    if not args.tiled:
        choose_kernels()  # before the first matmul: ggml reads it once
    _GGML = _ggml_base()
    VERBOSE = args.verbose
    modes = ["decode", "unified", "prefill"] if args.mode == "all" else [args.mode]
    for mode in modes:
        report = run(mode, repack=args.repack, flash_attn=args.flash_attn, threads=args.threads)
        print(json.dumps(report))


if __name__ == "__main__":
    main()
