"""How much CPU this process may use: its affinity mask and its cgroup's CPU bandwidth limit.

A board's service often runs under a limit: a systemd unit with ``CPUQuota=150%``, a container started
with ``--cpus 1.5``, or a cgroup made by hand. The limit lives in the process's own cgroup or one of its
ancestors, in either cgroup version:

* v2 (``/proc/self/cgroup`` line ``0::/PATH``): ``cpu.max`` = ``"QUOTA PERIOD"`` or ``"max PERIOD"``, in
  microseconds, under the unified mount (``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` on hybrid
  systems).
* v1 (line ``N:...cpu...:/PATH``): ``cpu.cfs_quota_us`` (-1 = none) over ``cpu.cfs_period_us`` under the
  cpu controller's mount (``/sys/fs/cgroup/cpu`` or ``/sys/fs/cgroup/cpu,cpuacct``).

The tightest limit found on the path from the process's cgroup up to the mount's root wins. Inside a
container the path printed may not exist in the container's view of the mount; then the mount's root
(the container's own cgroup) is read.

Kernel documentation: Documentation/admin-guide/cgroup-v2.rst ("cpu.max") and
Documentation/scheduler/sched-bwc.rst (v1 CFS bandwidth control).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

__all__ = ["cpu_quota", "available_cores", "affinity_cpus"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the OS has no masks)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _memberships(proc_cgroup: Path) -> Tuple[Optional[str], Optional[str]]:
    """(v2 path, v1 cpu-controller path) of this process, from ``/proc/self/cgroup``."""
    v2 = v1 = None
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return None, None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _dirs_up(mount: Path, path: str) -> Iterator[Path]:
    """``mount/path`` and each of its ancestors up to ``mount``; just ``mount`` when the path is not there."""
    rel = [p for p in path.strip("/").split("/") if p and p not in (".", "..")]
    start = mount.joinpath(*rel)
    if not start.is_dir():
        yield mount
        return
    here = start
    while True:
        yield here
        if here == mount:
            return
        here = here.parent


def _read_v2(directory: Path) -> Optional[float]:
    try:
        quota, period = (directory / "cpu.max").read_text().split()
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _read_v1(directory: Path) -> Optional[float]:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def cpu_quota(root: Path = _CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP) -> Optional[float]:
    """The CPU bandwidth this process's cgroups allow, in cores (``1.5`` = 150 % of one CPU); None when
    no limit is set or none can be read (not Linux, cgroup file system not mounted)."""
    v2_path, v1_path = _memberships(proc_cgroup)
    limits: List[float] = []
    if v2_path is not None:
        for mount in (root, root / "unified"):
            if (mount / "cgroup.controllers").is_file():
                limits += [q for d in _dirs_up(mount, v2_path) if (q := _read_v2(d)) is not None]
                break
    if v1_path is not None:
        for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
            mount = root / name
            if (mount / "cpu.cfs_quota_us").is_file():
                limits += [q for d in _dirs_up(mount, v1_path) if (q := _read_v1(d)) is not None]
                break
    return min(limits) if limits else None


def available_cores(quota: Optional[float] = None) -> int:
    """Threads worth running: the affinity mask's CPUs, capped by the cgroup quota rounded up (a 1.5-core
    quota is used by two threads; one would leave half a core idle). ``quota`` defaults to
    :func:`cpu_quota`."""
    cores = affinity_cpus()
    q = cpu_quota() if quota is None else quota
    if q is not None:
        cores = min(cores, max(1, math.ceil(q - 1e-9)))
    return max(1, cores)
