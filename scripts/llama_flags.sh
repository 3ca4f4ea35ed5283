# Sourced by build_llama.sh and build_llama_server.sh: the llama.cpp CMake flags of each flavor,
# in one place. Sets LLAMA_CMAKE_ARGS from FLAVOR (portable | avx512 | native).
#
#   portable  AVX2/FMA/F16C kernels, no AVX-512, no AMX: runs on any x86-64 CPU from 2013 on
#             (Haswell, Zen), AMX machines included, where a native build segfaults in ggml's
#             AMX matmul at the first decode. What make and the Dockerfile install.
#   avx512    portable plus AVX-512 (F/BW/DQ/VL/VBMI/VNNI/BF16) and AVX-VNNI, still no AMX:
#             for benchmarks on CPUs that have them.
#   native    -march=native (AMX included where the CPU has it): for benchmarks and for
#             reproducing the AMX crash only; never installed by make.
_common="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=ON"
_no_amx="-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
_x86="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
case "$(uname -m)-$FLAVOR" in
  x86_64-portable) LLAMA_CMAKE_ARGS="$_common $_x86 -DGGML_AVX512=OFF $_no_amx" ;;
  x86_64-avx512) LLAMA_CMAKE_ARGS="$_common $_x86 -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON $_no_amx" ;;
  *-native) LLAMA_CMAKE_ARGS="$_common -DGGML_NATIVE=ON" ;;
  # Other architectures: the compiler's baseline for that architecture (no -march=native).
  *-portable) LLAMA_CMAKE_ARGS="$_common -DGGML_NATIVE=OFF" ;;
  *) echo "unknown llama.cpp build flavor '$FLAVOR' for $(uname -m)" >&2; exit 2 ;;
esac
# The cache key of a build: its arguments (flags, versions), the compiler and the architecture.
llama_build_key() {
  local cc
  cc=$( (cc --version 2>/dev/null || echo none) | head -n 1)
  printf '%s\n' "$@" "$cc" "$(uname -m)" | sha256sum | cut -c1-16
}
