#!/usr/bin/env bash
# Rebuild edge_runtime._native into the dev venv after editing native/ (incremental; serialised with flock
# so parallel callers don't race on the same build directory).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
mkdir -p build
exec flock build/.lock "$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps -e .
