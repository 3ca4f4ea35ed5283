#!/usr/bin/env bash
# Build llama-cpp-python into a wheelhouse keyed by its build flags, and print the wheel's path.
#
#   scripts/build_llama.sh PYTHON [FLAVOR]
#
# PYTHON  the interpreter the wheel is for (its ABI tag goes into the cache key)
# FLAVOR  portable (default): AVX2/FMA/F16C kernels, no AVX-512, no AMX; runs on any x86-64
#         CPU from 2013 on (Haswell, Zen), including AMX machines, where a native build
#         segfaults in ggml's AMX matmul at the first decode.
#         avx512: portable plus AVX-512 (F/BW/DQ/VL/VBMI/VNNI/BF16) and AVX-VNNI, still no AMX;
#         for benchmarks on CPUs that have them.
#         native: -march=native (AMX included where the CPU has it); for benchmarks and for
#         reproducing the AMX crash only, never installed by make.
#
# The wheel is built with pip's cache off and kept in
# $LLAMA_WHEELHOUSE/<version>-<flavor>-<key>/ (default ~/.cache/langserve-logprobs/wheels),
# where <key> hashes the version, the flags, the compiler, the Python ABI and this script. A
# wheel built once for one set of flags is never picked up for another: pip's own wheel cache
# keys sdist builds by URL alone, so a native build left there would come back silently.
set -euo pipefail

PYTHON="${1:?usage: build_llama.sh PYTHON [portable|avx512|native]}"
FLAVOR="${2:-portable}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
COMMON="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=ON"
NO_AMX="-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
X86_BASE="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
case "$(uname -m)-$FLAVOR" in
  x86_64-portable) FLAGS="$X86_BASE -DGGML_AVX512=OFF $NO_AMX" ;;
  x86_64-avx512) FLAGS="$X86_BASE -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON $NO_AMX" ;;
  *-native) FLAGS="-DGGML_NATIVE=ON" ;;
  # Other architectures: the compiler's baseline for that architecture (no -march=native).
  *-portable) FLAGS="-DGGML_NATIVE=OFF" ;;
  *) echo "build_llama.sh: unknown flavor '$FLAVOR' for $(uname -m)" >&2; exit 2 ;;
esac
CMAKE_ARGS="$COMMON $FLAGS"

abi=$("$PYTHON" -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')
cc=$( (cc --version 2>/dev/null || echo none) | head -n 1)
key=$(printf '%s\n' "$LLAMA_CPP_PYTHON_VERSION" "$CMAKE_ARGS" "$abi" "$cc" "$(uname -m)" \
  | cat - "$0" | sha256sum | cut -c1-16)
HOUSE="${LLAMA_WHEELHOUSE:-$HOME/.cache/langserve-logprobs/wheels}/$LLAMA_CPP_PYTHON_VERSION-$FLAVOR-$key"

wheel=$(ls "$HOUSE"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "--> building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION ($FLAVOR) into $HOUSE" >&2
  echo "    CMAKE_ARGS=$CMAKE_ARGS" >&2
  tmp="$HOUSE.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    FORCE_CMAKE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PYTHON" -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
    --wheel-dir "$tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
  printf '%s\n' "CMAKE_ARGS=$CMAKE_ARGS" "abi=$abi" "cc=$cc" > "$tmp/BUILD_FLAGS"
  rm -rf "$HOUSE"
  mv "$tmp" "$HOUSE"
  wheel=$(ls "$HOUSE"/llama_cpp_python-*.whl | head -n 1)
fi
echo "$wheel"
