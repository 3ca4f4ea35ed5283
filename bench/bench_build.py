"""Speed of the llama.cpp build flavors on this CPU, side by side (prints results; not a test).

Each flavor (``scripts/llama_flags.sh``: portable = AVX2 and never AMX, what every install path
uses; avx512 = portable plus AVX-512/VNNI/BF16, still no AMX; native = ``-march=native``) is
built by ``scripts/build_llama.sh`` (cached by its flags), unpacked into a folder of its own,
and run in a child process whose ``PYTHONPATH`` puts that build first. The children take turns
(round robin, ``--rounds`` times), so load from the rest of the machine falls on every flavor
alike; the table gives median prompt and decode tokens/s and each flavor's ratio to portable.
A child that dies (a native build on an AMX CPU segfaults at its first decode) is reported as
such.

Run: ``.venv/bin/python -m bench.bench_build [--flavors portable,avx512] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a long story about a dragon who learns to bake bread. Use many details."
CACHE = Path.home() / ".cache" / "langserve-logprobs" / "flavors"


def child(model_path: str, tokens: int, threads: int) -> None:
    """Measure one build: prompt tokens/s, then greedy decode tokens/s; print JSON.

    Plain ``llama_decode`` calls and a numpy argmax, so Python sampling code does not dilute
    the difference between the kernels.
    """
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(
        model_path=model_path, n_ctx=512, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    ctx, n_vocab = llm.ctx, llm.n_vocab()
    prompt = llm.tokenize(PROMPT.encode(), add_bos=True)
    batch = llama_cpp.llama_batch_init(len(prompt), 0, 1)

    def decode(toks: list[int], start: int) -> int:
        batch.n_tokens = len(toks)
        for i, tok in enumerate(toks):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, start + i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(toks) - 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
        return int(logits.argmax())

    start = time.perf_counter()
    token = decode(prompt, 0)
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(tokens):
        token = decode([token], len(prompt) + i)
    decode_s = time.perf_counter() - start
    info = llama_cpp.llama_print_system_info().decode()
    llama_cpp.llama_batch_free(batch)
    llm.close()
    print(
        json.dumps(
            {
                "prompt_tps": len(prompt) / prompt_s,
                "decode_tps": tokens / decode_s,
                "amx": "AMX" in info,
                "avx512": "AVX512 = 1" in info,
            }
        )
    )


def unpacked(flavor: str) -> Path:
    """The flavor's wheel (built if needed), unpacked into a folder of its own."""
    wheel = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_llama.sh"), sys.executable, flavor],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    target = CACHE / Path(wheel).parent.name
    if not (target / "llama_cpp").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel],
            check=True,
        )
    return target


def run_child(path: Path, model: str, tokens: int, threads: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{ROOT}"}
    args = [sys.executable, "-m", "bench.bench_build", "--child", model, str(tokens), str(threads)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode < 0:
        return {"crashed": signal.Signals(-done.returncode).name}
    if done.returncode != 0:
        return {"crashed": f"exit {done.returncode}: {done.stderr.strip()[-200:]}"}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavors", default="portable,avx512")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from local_llm.model_file import default_model_path

    model = default_model_path()
    flavors = args.flavors.split(",")
    paths = {flavor: unpacked(flavor) for flavor in flavors}
    runs: dict[str, list[dict[str, object]]] = {flavor: [] for flavor in flavors}
    for _ in range(args.rounds):
        for flavor in flavors:
            runs[flavor].append(run_child(paths[flavor], model, args.tokens, args.threads))

    def median(flavor: str, key: str) -> float | None:
        values = [float(r[key]) for r in runs[flavor] if key in r]  # type: ignore[arg-type]
        return statistics.median(values) if values else None

    base_decode, base_prompt = median(flavors[0], "decode_tps"), median(flavors[0], "prompt_tps")
    print(f"{args.rounds} rounds, {args.tokens} tokens, {args.threads} thread(s), Gemma 3 270M")
    print(f"{'flavor':10} {'prompt tok/s':>13} {'decode tok/s':>13} {'decode ratio':>13}  notes")
    for flavor in flavors:
        crashed = [r["crashed"] for r in runs[flavor] if "crashed" in r]
        decode, prompt = median(flavor, "decode_tps"), median(flavor, "prompt_tps")
        if decode is None or prompt is None or base_decode is None or base_prompt is None:
            print(f"{flavor:10} {'-':>13} {'-':>13} {'-':>13}  crashed: {crashed[0]}")
            continue
        first = runs[flavor][0]
        notes = f"amx={first['amx']} avx512={first['avx512']}"
        if crashed:
            notes += f"; {len(crashed)} crashed ({crashed[0]})"
        print(
            f"{flavor:10} {prompt:13.1f} {decode:13.1f} {decode / base_decode:13.3f}  {notes}"
            f" (prompt ratio {prompt / base_prompt:.3f})"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
