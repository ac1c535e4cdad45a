#!/usr/bin/env bash
# Sets up a virtual environment in .venv with hanet and everything the pipeline needs.
#   bash scripts/setup.sh          # the package, all pipeline extras
#   bash scripts/setup.sh --test   # the same plus test tools (and Debian's chromium if root)
# torch is installed first and pinned: a plain "torch" requirement on a machine without
# torch pulls a multi-GB CUDA build; 2.13.0 here is the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=${HANET_TORCH:-torch==2.13.0}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "$TORCH"
extras="all"
if [ "${1:-}" = "--test" ]; then
  extras="all,test"
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # Browser tests of the web page use Debian's chromium; they skip (saying so) without it.
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; browser tests will be skipped" >&2
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
echo "setup: ready (.venv, extras: $extras)"
