#!/usr/bin/env bash
# `make bench`: every benchmark program that was built, each measuring its
# reference in the same run and printing ratios. Output also saved to out/bench/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-"$ROOT/build"}
OUT="$ROOT/out/bench"
mkdir -p "$OUT"
export MMGEN_PYTHON="$ROOT/.venv/bin/python"
status=0
for b in broker_bench ops_bench tokenizer_bench text_bench image_bench video_bench; do
  exe="$BUILD/bin/$b"
  [ -x "$exe" ] || continue
  echo "==== $b"
  "$exe" 2>&1 | tee "$OUT/$b.txt" || status=1
done
echo "bench outputs saved in $OUT"
exit $status
