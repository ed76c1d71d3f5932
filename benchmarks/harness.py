"""Side-by-side benchmark harness: candidate and baseline in one process, on the same inputs, interleaved.

Every benchmark script in this folder answers one question with a ratio measured in a single run:
``baseline time / candidate time`` (> 1 means ours is faster). Outputs are checked equal before any
timing is reported. Results are written as JSON under ``benchmarks/results/`` together with the machine
they were measured on (CPU model, ISA flags, thread budget, git sha, package versions). Absolute times
from different runs or machines are never compared.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from edge_runtime.runtime.cpus import cpu_quota

__all__ = ["compare", "time_calls", "write_result", "machine_info", "percentile", "RESULTS_DIR"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# ISA features that decide which kernels and int8 paths are fast; recorded with every result.
_INTERESTING_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",
    "neon", "asimd", "asimddp", "fphp", "asimdhp", "i8mm", "sve", "vfpv4",
)


def percentile(values: List[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; NaN for an empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _cpuinfo() -> Dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
        elif key == "cpu part" and model in ("", platform.machine()):
            model = f"ARM part {value.strip()}"
    return {"cpu_model": model, "isa_flags": sorted(f for f in flags if f in _INTERESTING_FLAGS)}


def _cpu_budget() -> Dict[str, Any]:
    budget: Dict[str, Any] = {"logical_cpus": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        budget["affinity_cpus"] = len(os.sched_getaffinity(0))
    budget["cgroup_cpu_quota"] = cpu_quota()  # cores, v1 or v2, this process's cgroup and its ancestors
    return budget


def _git_sha() -> Optional[str]:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        # Results written by earlier benchmarks of the same `make bench` run are not a change to the code
        # being measured; an uncommitted new file (a new script) is.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> Dict[str, str]:
    from importlib import metadata

    found = {}
    for dist in ("edge-runtime", "numpy", "onnxruntime", "opencv-python-headless", "llama_cpp_python",
                 "gguf", "torch", "trackers", "supervision"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def machine_info(threads: Optional[int] = None) -> Dict[str, Any]:
    """What the result was measured on: CPU, ISA flags, thread budget, git sha, versions, time."""
    info = {"machine": platform.machine(), "python": platform.python_version(), **_cpuinfo(), **_cpu_budget(),
            "threads": threads, "git_sha": _git_sha(), "versions": _versions(),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        from edge_runtime import _native

        info["native_arch"] = _native.ARCH
    except ImportError:
        pass
    return info


def time_calls(fn: Callable[[], Any], *, warmup: int = 3, repeats: int = 30) -> List[float]:
    """Wall-clock seconds of ``repeats`` calls of fn after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def compare(name: str, candidate: Callable[[], Any], baseline: Callable[[], Any], *,
            check: Callable[[Any, Any], None], compared: str, warmup: int = 3, repeats: int = 30) -> Dict[str, Any]:
    """Time candidate vs baseline, interleaved, after checking their outputs agree.

    Args:
        name: what is compared (goes into the result).
        candidate, baseline: zero-argument callables doing one unit of work and returning its output.
        check: ``check(candidate_output, baseline_output)`` raises (e.g. AssertionError) on disagreement.
        compared: what ``check`` compares, how, and at what tolerance (recorded with the result).
        warmup: untimed calls of each before timing.
        repeats: timed pairs; the order within a pair alternates to cancel drift (turbo, cache, the
            other core's load).

    Returns:
        dict with ``speedup_median`` and ``speedup_p10``/``speedup_p90`` of the per-pair ratio
        baseline/candidate, and median/p90 milliseconds of each side.
    """
    if repeats < 5:
        raise ValueError(f"compare({name!r}): at least 5 interleaved pairs, got repeats={repeats}")
    if not compared.strip():
        raise ValueError(f"compare({name!r}): say what the output check compares and at what tolerance")
    check(candidate(), baseline())
    for _ in range(warmup):
        candidate()
        baseline()
    cand_s: List[float] = []
    base_s: List[float] = []
    for i in range(repeats):
        order = (candidate, baseline) if i % 2 == 0 else (baseline, candidate)
        for fn in order:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            (cand_s if fn is candidate else base_s).append(dt)
    ratios = [b / c for b, c in zip(base_s, cand_s) if c > 0]
    return {
        "name": name,
        "repeats": repeats,
        "outputs_compared": compared,
        "candidate_ms_median": statistics.median(cand_s) * 1e3,
        "candidate_ms_p90": percentile(cand_s, 90) * 1e3,
        "baseline_ms_median": statistics.median(base_s) * 1e3,
        "baseline_ms_p90": percentile(base_s, 90) * 1e3,
        "speedup_median": statistics.median(ratios),
        "speedup_p10": percentile(ratios, 10),
        "speedup_p90": percentile(ratios, 90),
    }


def write_result(name: str, payload: Dict[str, Any], *, threads: Optional[int] = None) -> Path:
    """Write ``benchmarks/results/NAME.json`` (atomically) with the machine info attached.

    Results come from a named commit: with uncommitted changes outside ``benchmarks/results`` the file is
    written as ``NAME.dirty.json`` (never committed, never read by the report) unless
    ``EDGE_BENCH_ALLOW_DIRTY=1`` says otherwise on purpose.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    sha = _git_sha() or ""
    if sha.endswith("-dirty") and os.environ.get("EDGE_BENCH_ALLOW_DIRTY") != "1":
        print(f"note: the tree has uncommitted changes ({sha}); writing {name}.dirty.json, not {name}.json")
        name = f"{name}.dirty"
    path = RESULTS_DIR / f"{name}.json"
    document = {"benchmark": name, "machine": machine_info(threads), **payload}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False, default=float) + "\n")
    os.replace(tmp, path)
    return path
