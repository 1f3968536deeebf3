#!/usr/bin/env bash
# Builds the decoder fuzzer with clang (tests/fuzz/standalone) and fuzzes for a
# bounded time from a scratch copy of the seed corpus (libFuzzer writes new
# inputs into its corpus directory; the checked-in seeds stay as they are).
#
#   run_fuzz.sh SOURCE_ROOT BUILD_DIR [SECONDS]
#
# Exit 0: nothing found. 77: skipped (no clang++, or no libFuzzer runtime:
# apt-get install clang-14 libclang-rt-14-dev). Anything else: the build
# failed, or the fuzzer found a crash, a leak, undefined behaviour, a timeout
# (-timeout) or an allocation over -malloc_limit_mb; the reproducer is kept
# in BUILD_DIR/artifacts and printed. Environment: MMGEN_FUZZ_CXX (compiler),
# MMGEN_FUZZ_SECONDS (default 30), MMGEN_FUZZ_JOBS (build parallelism, 2).
set -euo pipefail

src=${1:?usage: run_fuzz.sh SOURCE_ROOT BUILD_DIR [SECONDS]}
build=${2:?usage: run_fuzz.sh SOURCE_ROOT BUILD_DIR [SECONDS]}
seconds=${3:-${MMGEN_FUZZ_SECONDS:-30}}
here=$src/tests/fuzz

cxx=""
for c in "${MMGEN_FUZZ_CXX:-}" clang++-14 clang++; do
  if [[ -n $c ]] && command -v "$c" >/dev/null 2>&1; then
    cxx=$(command -v "$c")
    break
  fi
done
if [[ -z $cxx ]]; then
  echo "SKIP: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)"
  exit 77
fi

# clang without its sanitizer runtimes cannot link a fuzzer: skip, don't fail.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  > "$probe/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/err"; then
  echo "SKIP: $cxx cannot link a libFuzzer binary (apt-get install libclang-rt-14-dev):"
  cat "$probe/err"
  exit 77
fi

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [[ -f $build/CMakeCache.txt ]] && ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=$cxx\$" "$build/CMakeCache.txt"; then
  rm -rf "$build"  # configured with another compiler: start over
fi
echo "== configure and build ($cxx) in $build"
cmake -S "$here/standalone" -B "$build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_CXX_COMPILER="$cxx" >"$probe/configure.log" 2>&1 || {
  cat "$probe/configure.log"
  exit 1
}
cmake --build "$build" -j "${MMGEN_FUZZ_JOBS:-2}"

work=$probe/run
mkdir -p "$work/corpus" "$build/artifacts"
cp "$here"/corpus/* "$work/corpus/"
rm -f "$build"/artifacts/*

echo "== fuzzing for ${seconds}s from $(ls "$work/corpus" | wc -l) seeds"
# -malloc_limit_mb: no single allocation may come near what a hostile header
# declares (inputs are at most -max_len bytes). -timeout: seconds per input.
set +e
"$build/fuzz_decoders" "$work/corpus" \
  -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=128 \
  -dict="$here/fuzz.dict" -artifact_prefix="$build/artifacts/" -print_final_stats=1
rc=$?
set -e
# libFuzzer reports a finding with exit code 77 by default, which ctest would
# read as "skipped": every non-zero code becomes 1 here.
if [[ $rc -ne 0 ]]; then
  echo "FAIL: fuzz_decoders exited with $rc"
  for f in "$build"/artifacts/*; do
    [[ -e $f ]] || continue
    echo "reproducer: $f ($(wc -c <"$f") bytes); replay: $build/fuzz_decoders $f"
    od -A x -t x1z -v "$f" | head -32
  done
  echo "Once fixed, copy the reproducer into tests/fuzz/corpus/ so it stays a regression test."
  exit 1
fi
echo "== no findings"
