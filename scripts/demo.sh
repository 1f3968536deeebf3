#!/usr/bin/env bash
# `make demo`: start a local stack on the embedded default models, run one job
# per available service, write the outputs under out/demo/ and say where.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-"$ROOT/build"}
OUT="$ROOT/out/demo"
mkdir -p "$OUT"
export MMGEN_STACK_PORT=${MMGEN_STACK_PORT:-5565}

"$ROOT/scripts/stack.sh" --build "$BUILD" --data "$ROOT/out/demo/broker-data" run -- bash -c '
  set -euo pipefail
  BIN="$1"; OUT="$2"; ROOT="$3"
  for s in echo text image video; do
    [ -x "$BIN/mmgen-$s" ] || continue
    case "$s" in
      echo)
        echo "== echo: a job with progress and streamed partials"
        "$BIN/mmgen" echo "hello from mmgen" --sleep-ms 300 --partials 3 > "$OUT/echo.txt"; cat "$OUT/echo.txt" ;;
      text)
        echo "== text: tiny embedded Qwen3"
        "$BIN/mmgen" text "Write a haiku about the sea." --max-tokens 32 --seed 1 -o "$OUT/text.txt" ;;
      image)
        # The embedded pipeline has random weights: the pictures are noise by design.
        echo "== image: tiny embedded Qwen-Image (text-to-image, then an edit of it)"
        "$BIN/mmgen" image "a red fox in the snow" --width 256 --height 256 --steps 4 --seed 1 \
          --previews "$OUT/previews" -o "$OUT/image.png"
        "$BIN/mmgen" edit "$OUT/image.png" "make the fox blue" --width 256 --height 256 --steps 4 --seed 1 \
          -o "$OUT/edit.png" ;;
      video)
        # A TI2V-5B-shaped pipeline with random weights; the published defaults
        # (121 frames at 1280x704) are far too heavy for a demo on a CPU.
        echo "== video: tiny embedded Wan 2.2 (TI2V-5B shape)"
        "$BIN/mmgen" video "waves on a beach" --frames 17 --width 128 --height 128 --fps 24 --steps 4 --seed 1 \
          -o "$OUT/video.mp4" ;;
    esac
  done
' demo "$BUILD/bin" "$OUT" "$ROOT"
echo
echo "demo outputs are in $OUT:"
ls -l "$OUT" | grep -v broker-data | tail -n +2
