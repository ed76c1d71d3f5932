#!/usr/bin/env bash
# Test the ARM wheels from wheelhouse/ (made by scripts/cross_build.sh) on emulated Raspberry Pi CPUs.
#
#   bash scripts/cross_test.sh [aarch64] [armv7l]       (default: both; `make cross-test`)
#
# For each architecture: install the wheel and the test dependencies into its root filesystem with the
# host's pip (manylinux tags listed explicitly; armv7l takes numpy/scipy from Debian), copy tests/ in,
# then for each emulated CPU (aarch64: Cortex-A72 = Pi 4, Cortex-A76 = Pi 5; armv7l: Cortex-A7) run, in a
# chroot with only /proc mounted, under qemu-user with QEMU_CPU set:
#   1. scripts/cross/smoke.py: the wheel imports, ARCH/HAS_NEON are right, the CPU profile is the one asked
#      for (the Cortex-A72 run is what proves every SIMD path has a fallback: no dotprod/fp16 there);
#   2. one pytest run per tier of scripts/cross/tests.txt, with HYPOTHESIS_PROFILE=qemu; the detector tier
#      gets the host's cached assets (hard-linked) through EDGE_RUNTIME_CACHE.
# The CPUs run side by side (EDGE_CROSS_JOBS at a time, default: host cores), each logging to
# build/cross/<arch>/logs/<cpu>-<tier>.log. Prints one summary line per CPU, then the failing tests of any
# that failed; exits 1 if anything failed on any CPU.
# Environment: EDGE_CROSS_TIMEOUT_S (per pytest run, default 3600), EDGE_CROSS_CPUS (e.g. "cortex-a72"),
# EDGE_CROSS_JOBS, EDGE_CROSS_ALLOW_STALE=1 (test a wheel older than the sources).
source "$(dirname "$0")/cross/common.sh"

require_root "$@"
take_lock
started=$SECONDS
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ARCHES[@]}")
TIMEOUT_S=${EDGE_CROSS_TIMEOUT_S:-3600}
CHROOT=$(command -v chroot)

ensure_host_tools

# ---- test selection -----------------------------------------------------------------------------------
# Fills TIERS (ordered names), TIER_PATHS[tier] and TIER_DESELECT[tier] for architecture $1.
declare -a TIERS
declare -A TIER_PATHS TIER_DESELECT
select_tests() {
    TIERS=(); TIER_PATHS=(); TIER_DESELECT=()
    local arches tier path rest lineno=0 matched f
    while read -r arches tier path rest || [ -n "${arches:-}" ]; do
        lineno=$((lineno + 1))
        case ${arches:-#} in '#'*) continue ;; esac
        [ -n "$path" ] && [ -z "$rest" ] || die "scripts/cross/tests.txt:$lineno: expected 'ARCHES TIER PATH'"
        [ "$arches" = all ] || [[ ",$arches," == *",$1,"* ]] || continue
        [[ " ${TIERS[*]} " == *" $tier "* ]] || TIERS+=("$tier")
        if [[ $path == '!'* ]]; then
            TIER_DESELECT[$tier]+=" ${path#!}"
        elif [[ $path == *::* ]]; then
            [ -f "$REPO/${path%%::*}" ] || die "scripts/cross/tests.txt:$lineno: ${path%%::*} does not exist"
            TIER_PATHS[$tier]+=" $path"
        else
            matched=$(cd "$REPO" && compgen -G "$path" || true)
            for f in $matched; do TIER_PATHS[$tier]+=" $f"; done
            # A glob may match nothing yet (kernel tests still to be written); a plain path must exist.
            [ -n "$matched" ] || [[ $path == *[*?[]* ]] || die "scripts/cross/tests.txt:$lineno: $path does not exist"
        fi
    done <"$REPO/scripts/cross/tests.txt"
}

# ---- installing into the root filesystem --------------------------------------------------------------
pip_target() {  # pip_target ARCH DIR LOG pip-args...: pip install --target for the target's tags
    local arch=$1 dir=$2 log=$3
    shift 3
    rm -rf "$dir.new"
    # shellcheck disable=SC2046
    if ! "$HOST_PY" -m pip install --target "$dir.new" --only-binary=:all: --python-version "$TARGET_PY" \
            --implementation cp --abi "cp${TARGET_PY/./}" --abi abi3 --abi none $(pip_platform_args "$arch") \
            --disable-pip-version-check "$@" >"$log" 2>&1; then
        grep -E '^ERROR' "$log" >&2 || tail -n 20 "$log" >&2
        die "$arch: pip install into the root filesystem failed (log: $log)"
    fi
    rm -rf "$dir"
    mv "$dir.new" "$dir"
}

install_target_packages() {  # $1 = arch, $2 = wheel
    local work=$CROSS_DIR/$1 reqs key
    mkdir -p "$work"
    local req_args=(--arch "$1" --wheel "$2" --pyproject "$REPO/pyproject.toml") alone
    reqs=$("$HOST_PY" "$REPO/scripts/cross/requirements.py" "${req_args[@]}")
    alone=$("$HOST_PY" "$REPO/scripts/cross/requirements.py" "${req_args[@]}" --no-deps)
    key=$(printf '%s\n' "$reqs" "$alone" "$(pip_platform_args "$1")" "$(cat "$ROOTFS/.edge-rootfs")" | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$work/deps.sha256" 2>/dev/null)" != "$key" ] || [ ! -d "$ROOTFS/opt/edge-deps" ]; then
        say "$1: installing test dependencies: $(echo $reqs)${alone:+ + without deps: $(echo $alone)}"
        printf '%s\n' "$reqs" >"$work/requirements.txt"
        pip_target "$1" "$ROOTFS/opt/edge-deps" "$work/pip-deps.log" -r "$work/requirements.txt"
        if [ -n "$alone" ]; then
            printf '%s\n' "$alone" >"$work/requirements-no-deps.txt"
            pip_target "$1" "$ROOTFS/opt/edge-deps-alone" "$work/pip-deps-alone.log" --no-deps -r "$work/requirements-no-deps.txt"
            cp -a "$ROOTFS/opt/edge-deps-alone/." "$ROOTFS/opt/edge-deps/"
            rm -rf "$ROOTFS/opt/edge-deps-alone"
        fi
        echo "$key" >"$work/deps.sha256"
    fi
    key=$(sha256sum "$2" | cut -d' ' -f1)
    if [ "$(cat "$work/installed-wheel.sha256" 2>/dev/null)" != "$key" ] || [ ! -d "$ROOTFS/opt/edge" ]; then
        say "$1: installing $(basename "$2")"
        pip_target "$1" "$ROOTFS/opt/edge" "$work/pip-wheel.log" --no-deps "$2"
        echo "$key" >"$work/installed-wheel.sha256"
    fi
}

copy_tests() {
    local dest=$ROOTFS/opt/edge-tests
    rm -rf "$dest"
    mkdir -p "$dest"
    cp -r "$REPO/tests" "$dest/tests"
    cp "$REPO/pyproject.toml" "$REPO/scripts/cross/smoke.py" "$dest/"
    find "$dest" -name __pycache__ -prune -exec rm -rf {} +
}

# The real assets named by ensure("...") in the given test files: fetched/verified on the host, then
# hard-linked (same inode, so the cache's size/mtime/inode stamps stay valid) into the target's cache.
stage_assets() {
    local names cache name dest=$ROOTFS/opt/edge-cache
    names=$(cd "$REPO" && grep -ohE 'ensure\(\s*"[A-Za-z0-9._-]+"' "$@" 2>/dev/null | sed -E 's/.*"(.*)"/\1/' | sort -u || true)
    [ -n "$names" ] || return 0
    say "staging assets for the target: $(echo $names)"
    cache=$("$HOST_PY" - $names <<'EOF'
import sys
from edge_runtime.assets import cache_dir, ensure
for name in sys.argv[1:]:
    ensure(name)
print(cache_dir())
EOF
) || die "could not fetch assets $(echo $names) on the host (see the error above)"
    mkdir -p "$dest/.stamps"
    for name in $names; do
        rm -rf "${dest:?}/$name"
        cp -al "$cache/$name" "$dest/$name" 2>/dev/null || cp -a "$cache/$name" "$dest/$name"
        [ ! -f "$cache/.stamps/$name.json" ] || cp "$cache/.stamps/$name.json" "$dest/.stamps/"
    done
}

# ---- running on the emulated CPU ----------------------------------------------------------------------
run_in_target() {  # run_in_target CPU LOG command...: chroot + qemu-user, clean environment, time-limited
    local cpu=$1 log=$2 pid rc
    shift 2
    # timeout puts the emulated process in its own process group: note it, so an interrupted run can end it.
    timeout -k 30 "$TIMEOUT_S" env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 TMPDIR=/tmp \
        QEMU_CPU="$cpu" HYPOTHESIS_PROFILE=qemu HYPOTHESIS_STORAGE_DIRECTORY="/var/tmp/hypothesis-$cpu" \
        PYTHONPATH=/opt/edge:/opt/edge-deps EDGE_RUNTIME_CACHE=/opt/edge-cache EDGE_RUNTIME_OFFLINE=1 \
        "$CHROOT" "$ROOTFS" "$@" >"$log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >>"$CROSS_DIR/.running"
    wait "$pid" && rc=0 || rc=$?
    return "$rc"
}

verdict() {  # verdict RC LOG -> short text for the summary line
    local rc=$1 log=$2 last
    last=$(grep -E '[0-9]+ (passed|failed|error|errors|skipped|deselected)|no tests ran' "$log" | tail -n 1 \
           | sed -E 's/^=+ //; s/ =+$//')
    case $rc in
        0) echo "${last:-ok}" ;;
        124|137) echo "TIMEOUT after ${TIMEOUT_S} s${last:+ ($last)}" ;;
        5) echo "no tests collected" ;;
        *) echo "FAILED (exit $rc)${last:+: $last}" ;;
    esac
}

# One emulated CPU: smoke check, then each tier. Writes its summary line to $logs/$cpu.summary and, for a
# failure, the failing tests to $logs/$cpu.failures. Runs in a background subshell (one per CPU).
test_cpu() {  # test_cpu ARCH CPU
    local arch=$1 cpu=$2 logs=$CROSS_DIR/$1/logs line status=PASS rc t0 tier sel
    rm -f "$logs/$cpu".* "$logs/$cpu"-*.log
    t0=$SECONDS
    run_in_target "$cpu" "$logs/$cpu-smoke.log" /usr/bin/python3 /opt/edge-tests/smoke.py --arch "$arch" --cpu "$cpu" \
        && rc=0 || rc=$?
    if [ $rc -ne 0 ]; then
        echo "$arch/$cpu: FAIL  smoke check failed (exit $rc); tests not run" >"$logs/$cpu.summary"
        cat "$logs/$cpu-smoke.log" >"$logs/$cpu.failures"
        return 1
    fi
    line="smoke ok"
    for tier in "${TIERS[@]}"; do
        sel=${TIER_PATHS[$tier]:-}
        if [ -z "$sel" ]; then line+="; $tier: no test files yet"; continue; fi
        local args=() p log=$logs/$cpu-$tier.log
        for p in $sel; do args+=("/opt/edge-tests/$p"); done
        # pytest matches --deselect against node ids as text; inside the chroot they come out relative to
        # "/" (opt/edge-tests/tests/...), so both spellings are passed (an id that matches nothing is a no-op).
        for p in ${TIER_DESELECT[$tier]:-}; do args+=(--deselect "opt/edge-tests/$p" --deselect "$p"); done
        t0=$SECONDS
        run_in_target "$cpu" "$log" /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=5 \
            --basetemp="/tmp/pytest-$cpu-$tier" --rootdir=/opt/edge-tests -c /opt/edge-tests/pyproject.toml \
            "${args[@]}" && rc=0 || rc=$?
        line+="; $tier: $(verdict $rc "$log") [$((SECONDS - t0)) s wall]"
        if [ $rc -ne 0 ]; then
            status=FAIL
            { echo "--- $arch/$cpu $tier (${log#"$REPO"/}):"
              sed -n '/short test summary info/,$p' "$log" | grep -E '^(FAILED|ERROR)' | head -n 40
              [ $rc -ne 124 ] && [ $rc -ne 137 ] || tail -n 5 "$log"; } >>"$logs/$cpu.failures"
        fi
    done
    echo "$arch/$cpu: $status  $line" >"$logs/$cpu.summary"
    [ $status = PASS ]
}

# ---- prepare every target, then run the emulated CPUs side by side ------------------------------------
# Each CPU is a single-threaded emulator most of the time, so up to EDGE_CROSS_JOBS (default: the number of
# host cores) run at once; each has its own hypothesis database and pytest temp dir in the root filesystem.
JOBS_MAX=${EDGE_CROSS_JOBS:-$(nproc)}
MOUNTED=()
cleanup() {
    local pid
    if [ -f "$CROSS_DIR/.running" ]; then
        while read -r pid; do kill -TERM -- "-$pid" 2>/dev/null || true; done <"$CROSS_DIR/.running"
        sleep 1
        while read -r pid; do kill -KILL -- "-$pid" 2>/dev/null || true; done <"$CROSS_DIR/.running"
        rm -f "$CROSS_DIR/.running"
    fi
    for r in "${MOUNTED[@]}"; do unmount_proc "$r"; done
}
trap cleanup EXIT
trap 'say "interrupted: stopping the emulated runs"; exit 130' INT TERM
rm -f "$CROSS_DIR/.running"
declare -a JOB_ARCH JOB_CPU
for arch in "${targets[@]}"; do
    arch_setup "$arch"
    wheel=$(built_wheel "$arch")
    [ -n "$wheel" ] || die "$arch: no ${PLAT}_$arch wheel in ${WHEELHOUSE#"$REPO"/}/ (run: make cross)"
    # Tests copied from this tree against a wheel built from an older one fail for no ARM reason.
    if [ "$(cat "$CROSS_DIR/$arch/wheel-inputs.sha256" 2>/dev/null)" != "$(wheel_inputs_hash "$TRIPLE")" ]; then
        [ "${EDGE_CROSS_ALLOW_STALE:-}" = 1 ] \
            || die "$arch: $(basename "$wheel") was not built from the current sources (run: make cross-test, which rebuilds it first; EDGE_CROSS_ALLOW_STALE=1 to test it anyway)"
        say "$arch: warning: testing $(basename "$wheel"), built from older sources (EDGE_CROSS_ALLOW_STALE=1)"
    fi
    ensure_rootfs
    select_tests "$arch"
    install_target_packages "$arch" "$wheel"
    copy_tests
    test_files=()
    for tier in "${TIERS[@]}"; do
        for p in ${TIER_PATHS[$tier]:-}; do test_files+=("${p%%::*}"); done
    done
    [ ${#test_files[@]} -eq 0 ] || stage_assets "${test_files[@]}"
    unmount_proc "$ROOTFS"
    mount -t proc proc "$ROOTFS/proc"     # only /proc: onnxruntime crashes under qemu with /sys mounted
    MOUNTED+=("$ROOTFS")
    mkdir -p "$CROSS_DIR/$arch/logs"
    for cpu in "${QEMU_CPUS[@]}"; do
        if [ -n "${EDGE_CROSS_CPUS:-}" ] && [[ " ${EDGE_CROSS_CPUS//,/ } " != *" $cpu "* ]]; then continue; fi
        JOB_ARCH+=("$arch"); JOB_CPU+=("$cpu")
    done
done

say "set-up done in $((SECONDS - started)) s; running ${#JOB_CPU[@]} emulated CPU(s), up to $JOBS_MAX at a time: $(for i in "${!JOB_CPU[@]}"; do printf '%s/%s ' "${JOB_ARCH[$i]}" "${JOB_CPU[$i]}"; done)"
for i in "${!JOB_CPU[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS_MAX" ]; do wait -n || true; done
    arch_setup "${JOB_ARCH[$i]}"
    select_tests "${JOB_ARCH[$i]}"
    say "${JOB_ARCH[$i]}/${JOB_CPU[$i]}: started (logs: ${CROSS_DIR#"$REPO"/}/${JOB_ARCH[$i]}/logs/${JOB_CPU[$i]}-*.log)"
    ( test_cpu "${JOB_ARCH[$i]}" "${JOB_CPU[$i]}" && rc=0 || rc=$?; sed 's/^/[cross] finished /' "$CROSS_DIR/${JOB_ARCH[$i]}/logs/${JOB_CPU[$i]}.summary"; exit $rc ) &
done
FAILED=0
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || true; done
wait || true

say "==== summary ($((SECONDS - started)) s) ===="
for i in "${!JOB_CPU[@]}"; do
    logs=$CROSS_DIR/${JOB_ARCH[$i]}/logs
    if [ -f "$logs/${JOB_CPU[$i]}.summary" ]; then say "$(cat "$logs/${JOB_CPU[$i]}.summary")"
    else say "${JOB_ARCH[$i]}/${JOB_CPU[$i]}: FAIL  no result (the run was interrupted)"; FAILED=1; fi
    grep -q ': PASS ' "$logs/${JOB_CPU[$i]}.summary" 2>/dev/null || FAILED=1
done
if [ $FAILED -ne 0 ]; then
    for i in "${!JOB_CPU[@]}"; do cat "$CROSS_DIR/${JOB_ARCH[$i]}/logs/${JOB_CPU[$i]}.failures" 2>/dev/null || true; done
    die "ARM tests failed on at least one emulated CPU (logs: ${CROSS_DIR#"$REPO"/}/<arch>/logs/)"
fi
say "all ARM tests passed"
