#!/usr/bin/env bash
# Build edge_runtime._native with AddressSanitizer + UndefinedBehaviorSanitizer (CMake EDGE_SANITIZE=ON)
# into build/sanitize, apart from the dev venv's module, and run the native test files against it.
#
#   scripts/sanitize.sh            build, then run SANITIZE_TESTS (default: the native and hypothesis suites)
#   scripts/sanitize.sh --build    build only; prints the folder holding the sanitized modules
#
# CPython is not instrumented, so gcc's ASan runtime is LD_PRELOADed into the interpreter; leak detection
# is off (CPython keeps objects alive until exit on purpose). Every finding stops the run
# (-fno-sanitize-recover=all, halt_on_error) and fails it. tests/conftest.py loads the sanitized module in
# place of the installed one when EDGE_RUNTIME_NATIVE_DIR is set, and checks that it did.
# pytest captures sys.stdout/stderr only, so a sanitizer report (written to fd 2) reaches the terminal.
# Hypothesis runs its "sanitize" profile (200 examples a property, as CI's; about 40 s on 2 cores);
# SANITIZE_HYPOTHESIS_PROFILE=sanitize-long runs 2000.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=$VENV/bin/python
OUT=build/sanitize
CXX=${SANITIZE_CXX:-g++}
SANITIZE_TESTS=${SANITIZE_TESTS:-"tests/test_native_letterbox.py tests/test_native_nms.py tests/test_native_quant.py \
tests/test_native_track.py tests/test_native_track_book.py tests/test_native_appearance.py tests/test_appearance.py tests/test_native_topk.py tests/test_native_yolo.py tests/test_tracking.py tests/test_gguf_reader.py tests/sanitized_check.py"}

mkdir -p "$OUT"
# Same build front end as the dev module (scikit-build-core), its own build folder; serialised with flock.
flock build/.lock-sanitize "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$OUT/wheel" \
  -C build-dir="$OUT/cmake" -C cmake.build-type=Release \
  -C cmake.define.EDGE_SANITIZE=ON -C cmake.define.CMAKE_CXX_COMPILER="$CXX" . >&2
NATIVE_DIR=$(cd "$OUT/cmake" && pwd)
ls "$NATIVE_DIR"/_native*.so "$NATIVE_DIR"/_sanitize_canary*.so >/dev/null
if [ "${1:-}" = "--build" ]; then
  echo "$NATIVE_DIR"
  exit 0
fi

ASAN_RT=$("$CXX" -print-file-name=libasan.so)
if [ ! -e "$ASAN_RT" ]; then
  echo "sanitize.sh: $CXX has no libasan.so (Debian: apt-get install libasan8 / gcc)" >&2
  exit 1
fi
# libstdc++ too: the interpreter is plain C, and ASan's __cxa_throw interceptor needs the real one present
# when the runtime starts (otherwise the first C++ exception, e.g. a shape error -> ValueError, aborts).
STDCXX_RT=$(readlink -f "$("$CXX" -print-file-name=libstdc++.so)")
export EDGE_RUNTIME_NATIVE_DIR="$NATIVE_DIR"
export HYPOTHESIS_PROFILE=${SANITIZE_HYPOTHESIS_PROFILE:-sanitize}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=87}
# shellcheck disable=SC2086  # SANITIZE_TESTS is a list of paths
LD_PRELOAD="$ASAN_RT $STDCXX_RT" exec "$PY" -m pytest -q -p no:cacheprovider --capture=sys $SANITIZE_TESTS "${@}"
