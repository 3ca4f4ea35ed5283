#!/usr/bin/env bash
# Print the fastest llama.cpp build flavor (scripts/llama_flags.sh) that is safe on this CPU:
# avx512 when the CPU has every AVX-512 extension that flavor compiles in, and AVX-VNNI;
# portable otherwise. Never native: -march=native turns on AMX, which segfaults at the first
# decode. Measured here (bench/bench_build.py): avx512 decodes 7.6% and reads prompts 27% faster.
#
#   scripts/llama_flavor.sh [CPUINFO]     (default /proc/cpuinfo)
set -euo pipefail
cpuinfo="${1:-/proc/cpuinfo}"
[ "$(uname -m)" = x86_64 ] || { echo portable; exit 0; }
flags=" $(grep -m1 '^flags' "$cpuinfo" 2>/dev/null | cut -d: -f2) "
for flag in avx512f avx512bw avx512dq avx512vl avx512vbmi avx512_vnni avx512_bf16 avx_vnni; do
  case "$flags" in
    *" $flag "*) ;;
    *) echo portable; exit 0 ;;
  esac
done
echo avx512
