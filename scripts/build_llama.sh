#!/usr/bin/env bash
# Build llama-cpp-python into a wheelhouse keyed by its build flags, and print the wheel's path.
#
#   scripts/build_llama.sh PYTHON [FLAVOR]
#
# PYTHON  the interpreter the wheel is for (its ABI tag goes into the cache key)
# FLAVOR  portable (default), avx512 or native: see scripts/llama_flags.sh
#
# The wheel is built with pip's cache off and kept in
# $LLAMA_WHEELHOUSE/<version>-<flavor>-<key>/ (default ~/.cache/langserve-logprobs/wheels),
# where <key> hashes the version, the flags, the compiler and the Python ABI. A wheel built for
# one set of flags is never picked up for another: pip's own wheel cache keys sdist builds by
# URL alone, so a native build left there would come back silently.
set -euo pipefail

PYTHON="${1:?usage: build_llama.sh PYTHON [portable|avx512|native]}"
FLAVOR="${2:-portable}"
# The version and its sdist's hash are uv.lock's (tests/unit/test_lock.py keeps them equal); the
# rest of the lock is in requirements/*.txt, which leave llama-cpp-python out for this script.
if [ -z "${LLAMA_CPP_PYTHON_VERSION:-}" ]; then
  LLAMA_CPP_PYTHON_VERSION=0.3.36
  LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
fi
source "$(dirname "$0")/llama_flags.sh"
# GGML_LLAMAFILE=OFF: llamafile's sgemm computes an F16 attention product (K.q, V.softmax) with
# another summation order than ggml's one-row kernel, so a token's numbers would depend on how
# many tokens of its sequence share the batch (bench/probe_invariance.py, README "Same request,
# same numbers"). Quantized weights are not affected by this flag.
CMAKE_ARGS="$LLAMA_CMAKE_ARGS -DLLAMA_BUILD_TOOLS=OFF -DGGML_LLAMAFILE=OFF"

abi=$("$PYTHON" -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')
key=$(llama_build_key "$CMAKE_ARGS" "$LLAMA_CPP_PYTHON_VERSION" "$abi")
HOUSE="${LLAMA_WHEELHOUSE:-$HOME/.cache/langserve-logprobs/wheels}/$LLAMA_CPP_PYTHON_VERSION-$FLAVOR-$key"

wheel=$(ls "$HOUSE"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "--> building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION ($FLAVOR) into $HOUSE" >&2
  echo "    CMAKE_ARGS=$CMAKE_ARGS" >&2
  tmp="$HOUSE.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  pin="llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  # The sdist must be the locked one; a version given by hand may come with its own hash.
  if [ -n "${LLAMA_CPP_PYTHON_SHA256:-}" ]; then
    pin="$pin --hash=sha256:$LLAMA_CPP_PYTHON_SHA256"
  fi
  echo "$pin" > "$tmp.req"
  CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    FORCE_CMAKE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PYTHON" -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
    --wheel-dir "$tmp" -r "$tmp.req" >&2
  rm -f "$tmp.req"
  printf '%s\n' "CMAKE_ARGS=$CMAKE_ARGS" "abi=$abi" > "$tmp/BUILD_FLAGS"
  rm -rf "$HOUSE"
  mv "$tmp" "$HOUSE"
  wheel=$(ls "$HOUSE"/llama_cpp_python-*.whl | head -n 1)
fi
echo "$wheel"
