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
if [ "${1:-}" = "--test" ] && [ ! -f .hanet-cache/opencv-samples/tree.avi ] && command -v apt-get >/dev/null 2>&1; then
  # Real video files nobody here made (OpenCV's samples, Debian's opencv-doc): the decoder tests
  # read them when present and say they skipped otherwise.
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -qq opencv-doc >/dev/null 2>&1 && dpkg-deb -x opencv-doc_*.deb x); then
    mkdir -p .hanet-cache/opencv-samples
    cp "$tmp"/x/usr/share/doc/opencv-doc/examples/data/{tree,Megamind,Megamind_bugy,vtest}.avi .hanet-cache/opencv-samples/ \
      || echo "setup: opencv-doc has no sample videos; their tests will be skipped" >&2
  else
    echo "setup: could not download opencv-doc; its sample-video tests will be skipped" >&2
  fi
  rm -rf "$tmp"
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
echo "setup: ready (.venv, extras: $extras)"
