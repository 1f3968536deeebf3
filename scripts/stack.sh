#!/usr/bin/env bash
# Local stack runner: starts mmgen-broker and the configured workers as local
# processes, waits until each worker has registered, and stops them all on exit.
#
#   scripts/stack.sh [--build DIR] [--data DIR] [--services echo,text,...] up
#       run in the foreground until Ctrl-C
#   scripts/stack.sh [options] run -- COMMAND [ARGS...]
#       run COMMAND with the stack up (MMGEN_BROKER exported), then stop it;
#       exits with COMMAND's status
#
# Each service's worker is started as `mmgen-<service>` from the build folder
# with `--model DIR` when models/<service>/ exists (the embedded tiny models).
# Ports: MMGEN_STACK_PORT (default 5555): clients on it, workers on +1, HTTP +2.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build"
DATA=""
SERVICES=""
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --services) SERVICES=$2; shift 2 ;;
    up|run) MODE=$1; shift; break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "stack.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
MODE=${MODE:-up}
[ "$MODE" = run ] && [ "${1:-}" = "--" ] && shift

PORT=${MMGEN_STACK_PORT:-5555}
CLIENTS="tcp://127.0.0.1:$PORT"
WORKERS="tcp://127.0.0.1:$((PORT + 1))"
HTTP=$((PORT + 2))
DATA=${DATA:-"$ROOT/out/stack/data"}
LOGS="$ROOT/out/stack/logs"
mkdir -p "$DATA" "$LOGS"

# Default: every service whose worker binary was built.
if [ -z "$SERVICES" ]; then
  for s in echo text image video; do
    [ -x "$BUILD/bin/mmgen-$s" ] && SERVICES+="${SERVICES:+,}$s"
  done
fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BUILD/bin/mmgen-broker" --clients "$CLIENTS" --workers "$WORKERS" --http "$HTTP" \
  --data "$DATA" 2>"$LOGS/broker.log" &
pids+=($!)

IFS=, read -r -a svc_list <<<"$SERVICES"
for s in "${svc_list[@]}"; do
  args=(--broker "$WORKERS")
  [ -d "$ROOT/models/$s" ] && args+=(--model "$ROOT/models/$s")
  "$BUILD/bin/mmgen-$s" "${args[@]}" 2>"$LOGS/$s.log" &
  pids+=($!)
done

# Ready when every requested service shows at least one worker (bounded wait).
export MMGEN_BROKER="$CLIENTS"
deadline=$(( $(date +%s) + 60 ))
while :; do
  ok=1
  listing=$("$BUILD/bin/mmgen" --json workers 2>/dev/null || true)
  for s in "${svc_list[@]}"; do
    grep -q "\"service\":\"$s\"" <<<"$listing" || ok=0
  done
  ((ok)) && break
  if (( $(date +%s) > deadline )); then
    echo "stack.sh: services [$SERVICES] did not all register within 60 s; logs in $LOGS" >&2
    exit 1
  fi
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "stack.sh: a process exited early; logs in $LOGS" >&2; exit 1; }
  done
  sleep 0.2
done
echo "stack.sh: broker $CLIENTS (workers $WORKERS, http :$HTTP), services: $SERVICES; logs in $LOGS" >&2

if [ "$MODE" = up ]; then
  echo "stack.sh: up; Ctrl-C stops it" >&2
  wait -n "${pids[@]}" || true
  echo "stack.sh: a process exited; stopping" >&2
  exit 1
fi
set +e
"$@"
rc=$?
exit $rc
