#!/usr/bin/env bash
# Cross-build the project's wheel for 64-bit (aarch64) and 32-bit (armv7l, NEON) Raspberry Pi OS / Debian,
# repair it to manylinux_2_34 and check it. Wheels land in wheelhouse/.
#
#   bash scripts/cross_build.sh [aarch64] [armv7l]      (default: both; `make cross`)
#
# Steps per architecture (all state in build/cross/, reused by later runs):
#   1. Debian toolchains, qemu-user and mmdebstrap (installed once), binfmt handlers (enabled every run);
#   2. a bookworm root filesystem as the sysroot (target Python headers, glibc), made once;
#   3. scikit-build-core with build isolation off (the venv's scikit-build-core/pybind11), a CMake toolchain
#      file, and the two variables without which the build "succeeds" with a wheel tagged for x86-64;
#      skipped when nothing that goes into the wheel changed since the last build;
#   4. auditwheel repair --plat auto (gives manylinux_2_34 for a bookworm sysroot);
#   5. scripts/cross/check_wheel.py: tags, ELF class/machine, armhf ABI, NEON + VFPv4 attributes on armv7.
# Needs root (apt-get, mmdebstrap); without it, explains and exits 0 (1 when CI=true).
source "$(dirname "$0")/cross/common.sh"

require_root "$@"
take_lock
started=$SECONDS
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ARCHES[@]}")

ensure_host_tools
ensure_venv_tools
mkdir -p "$WHEELHOUSE"

build_one() {
    arch_setup "$1"
    local t0=$SECONDS work=$CROSS_DIR/$1
    ensure_rootfs
    mkdir -p "$work"
    local inputs stamp=$work/wheel-inputs.sha256 wheel
    inputs=$(wheel_inputs_hash "$TRIPLE")
    wheel=$(built_wheel "$1")
    if [ -n "$wheel" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
        say "$1: sources unchanged since $(basename "$wheel") was built; not rebuilding"
    else
        say "$1: building the wheel (log: $work/build.log)"
        rm -rf "$work/dist" "$work/repaired"
        # SETUPTOOLS_EXT_SUFFIX names the module for the target; _PYTHON_HOST_PLATFORM tags the wheel for it.
        if ! (cd "$REPO" && env EDGE_CROSS_SYSROOT="$ROOTFS" SETUPTOOLS_EXT_SUFFIX="$EXT_SUFFIX" \
                _PYTHON_HOST_PLATFORM="$HOST_PLATFORM" \
                "$HOST_PY" -m pip wheel . --no-build-isolation --no-deps -w "$work/dist" \
                -Cbuild-dir="$work/cmake" \
                -Ccmake.define.CMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
                -Ccmake.python-hints=false \
                -Ccmake.define.Python_INCLUDE_DIR="$ROOTFS/usr/include/python$TARGET_PY" \
                -Ccmake.define.CMAKE_BUILD_TYPE=Release) >"$work/build.log" 2>&1; then
            grep -E 'error|Error|ERROR' "$work/build.log" | head -n 20 >&2 || true
            tail -n 30 "$work/build.log" >&2
            die "$1: wheel build failed (full log: $work/build.log)"
        fi
        local raw
        raw=$(ls "$work"/dist/edge_runtime-*.whl)
        say "$1: repairing $(basename "$raw") with auditwheel"
        PATH=$VENV/bin:$PATH "$VENV/bin/auditwheel" repair --plat auto -w "$work/repaired" "$raw" \
            >"$work/repair.log" 2>&1 || { tail -n 20 "$work/repair.log" >&2; die "$1: auditwheel repair failed (log: $work/repair.log)"; }
        rm -f "$WHEELHOUSE"/edge_runtime-*_"$1".whl
        cp "$work"/repaired/edge_runtime-*.whl "$WHEELHOUSE"/
        wheel=$(built_wheel "$1")
        [ -n "$wheel" ] || die "$1: auditwheel gave $(ls "$work/repaired"), expected a ${PLAT}_$1 wheel"
        echo "$inputs" >"$stamp"
    fi
    "$HOST_PY" "$REPO/scripts/cross/check_wheel.py" "$wheel" --arch "$1" --plat "$PLAT" --py "$TARGET_PY" \
        || { rm -f "$stamp"; die "$1: $(basename "$wheel") failed its checks"; }
    say "$1: $(basename "$wheel") ($(du -h "$wheel" | cut -f1)) in $((SECONDS - t0)) s"
}

for arch in "${targets[@]}"; do build_one "$arch"; done
say "wheels in ${WHEELHOUSE#"$REPO"/}/ ($((SECONDS - started)) s):"
ls -1 "$WHEELHOUSE" | sed 's/^/  /'
