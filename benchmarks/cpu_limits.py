"""Run a benchmark on fewer CPUs than the machine has: an affinity mask, or a cgroup CPU quota.

``limit_cpus(n)`` pins every thread of this process (and those it starts later) to its first ``n`` CPUs, as
``taskset`` would. ``quota_group(cores)`` moves this process into a new cgroup whose CPU bandwidth is
``cores`` (1.5 = 150 % of one CPU, as systemd's ``CPUQuota=150%`` or ``docker --cpus 1.5``); it needs root
and a writable cgroup file system (v2 with the cpu controller, or v1's cpu controller), and moves the
process back and removes the group on exit.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Optional

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.runtime.scheduler import usable_cpus

__all__ = ["limit_cpus", "quota_group", "quota_groups_supported"]

_ROOT = Path("/sys/fs/cgroup")
_PERIOD_US = 100_000


def limit_cpus(n: int) -> tuple:
    """Pin all threads of this process to its first ``n`` usable CPUs; returns them."""
    cpus = usable_cpus()
    if not 1 <= n <= len(cpus):
        raise EdgeRuntimeError(f"--cpus {n}: this process may use {len(cpus)} CPUs")
    keep = set(cpus[:n])
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that has just ended
            os.sched_setaffinity(int(tid), keep)
    return tuple(sorted(keep))


def _v2_root() -> Optional[Path]:
    for root in (_ROOT, _ROOT / "unified"):
        controllers = root / "cgroup.controllers"
        if controllers.is_file() and "cpu" in controllers.read_text().split():
            return root
    return None


def _v1_root() -> Optional[Path]:
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (_ROOT / name / "cpu.cfs_quota_us").is_file():
            return _ROOT / name
    return None


def quota_groups_supported() -> Optional[str]:
    """None when :func:`quota_group` can work here, else why not."""
    if os.geteuid() != 0:
        return "making a cgroup needs root"
    root = _v2_root() or _v1_root()
    if root is None:
        return "no cgroup cpu controller is mounted (neither v2 with 'cpu' nor v1 'cpu')"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable (a read-only cgroup mount, as in most containers)"
    return None


@contextlib.contextmanager
def quota_group(cores: float, name: Optional[str] = None) -> Iterator[Path]:
    """This process inside a new cgroup limited to ``cores`` CPUs of bandwidth, for the ``with`` body.

    Raises:
        EdgeRuntimeError: not root, or no writable cgroup cpu controller.
    """
    why = quota_groups_supported()
    if why is not None:
        raise EdgeRuntimeError(f"a {cores:g}-core CPU quota cannot be set here: {why}")
    if not cores > 0:
        raise EdgeRuntimeError(f"a CPU quota must be > 0 cores, got {cores!r}")
    name = name or f"edge-bench-{os.getpid()}"
    quota_us = max(1000, round(cores * _PERIOD_US))
    v2 = _v2_root()
    if v2 is not None:
        control = v2 / "cgroup.subtree_control"
        if "cpu" not in control.read_text().split():
            control.write_text("+cpu")
        group, home = v2 / name, v2
        group.mkdir()
        (group / "cpu.max").write_text(f"{quota_us} {_PERIOD_US}")
    else:
        root = _v1_root()
        assert root is not None
        group, home = root / name, root
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))
    try:
        (group / "cgroup.procs").write_text(str(os.getpid()))  # every thread of the process moves
        yield group
    finally:
        with contextlib.suppress(OSError):
            (home / "cgroup.procs").write_text(str(os.getpid()))
        with contextlib.suppress(OSError):
            group.rmdir()
