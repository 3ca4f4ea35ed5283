"""Startup self-test: decode a few tokens in a child process before serving.

A llama.cpp build can load a model and then die in a CPU kernel at the first decode: a
llama-cpp-python compiled with ``-march=native`` on a CPU with AMX segfaults in ggml's AMX
matmul. In-process, that kills the whole server at the first user request. Here a child
process loads the model and greedily decodes a few tokens first; a crash (or an error, or a
hang) there becomes a clear message that ``/healthz`` reports, and the server stays up.

Run alone: ``python -m local_llm.selftest MODEL.gguf``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence

_PROMPT = b"The capital of France is"
_TOKENS = 4
_TIMEOUT_S = 120.0
_REBUILD = (
    "Reinstall llama-cpp-python with the portable build: `make llama` "
    "(or scripts/build_llama.sh PYTHON portable)."
)


def selftest_command(model_path: str, n_threads: int) -> list[str]:
    """The child's command line: this module run by this interpreter."""
    return [sys.executable, "-m", "local_llm.selftest", model_path, str(n_threads)]


def run_selftest(command: Sequence[str], timeout: float = _TIMEOUT_S) -> str | None:
    """Run the self-test ``command``; None when it passed, else why it failed (safe to show).

    Args:
        command: the child's argv, normally ``selftest_command(...)``.
        timeout: seconds before a child that has not finished counts as failed.
    """
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"the llama.cpp startup self-test did not finish within {timeout:.0f} s."
    if done.returncode == 0 and done.stdout.strip().startswith("ok"):
        return None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return (
            f"llama.cpp crashed ({name}) while decoding its first tokens in the startup "
            "self-test: this llama-cpp-python build does not run on this CPU (a native "
            f"build on a CPU with AMX does this). {_REBUILD}"
        )
    lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
    last = lines[-1][:300] if lines else "no output"
    return f"the llama.cpp startup self-test failed (exit {done.returncode}): {last}"


def _main(argv: Sequence[str]) -> int:
    import llama_cpp

    model_path, n_threads = argv[0], int(argv[1]) if len(argv) > 1 else 1
    llm = llama_cpp.Llama(
        model_path=model_path, n_ctx=256, n_threads=n_threads, n_threads_batch=n_threads,
        verbose=False,
    )  # fmt: skip
    tokens = llm.tokenize(_PROMPT, add_bos=True)
    out: list[int] = []
    for token in llm.generate(tokens, temp=0.0):
        out.append(token)
        if len(out) >= _TOKENS:
            break
    llm.close()
    print("ok", len(out), "tokens")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
