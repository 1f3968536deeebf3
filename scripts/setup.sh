#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root, or with sudo
# available): Debian packages, then the project venv with the pinned wheels.
# Safe to re-run: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3-venv
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libsqlite3-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopencv-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libpcre2-dev libicu-dev libsentencepiece-dev
  clang libclang-rt-14-dev
  docker-compose curl
)

log() { printf '[setup] %s\n' "$*" >&2; }

# ---- Debian packages ------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  log "installing Debian packages: ${missing[*]}"
  # An existing package list is reused; a fresh machine has none.
  if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    $SUDO apt-get update -qq
  fi
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  log "Debian packages present"
fi

# ---- Python venv with the pinned torch -----------------------------------------------
PY=${PYTHON:-python3}
stamp=.venv/.mmgen-requirements
want=$(sha256sum requirements.txt scripts/fixtures/requirements.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  log "venv up to date"
else
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  log "installing pinned wheels into .venv (first time: ~1 GB download)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  if [ -f scripts/fixtures/requirements.txt ]; then
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/fixtures/requirements.txt
  fi
  echo "$want" > "$stamp"
fi
log "done"
