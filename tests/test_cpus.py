"""How much CPU the runtime thinks it has: the affinity mask and a cgroup CPU quota (v1 and v2, the
process's own group and its ancestors), read from fake cgroup trees and from a real group made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runtime.runtime.cpus import affinity_cpus, available_cores, cpu_quota
from edge_runtime.runtime.scheduler import PACE_HEADROOM, Policy, choose_policy, fair_share_fps


def _tree(tmp_path: Path, proc: str, files: dict) -> tuple:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc_file = tmp_path / "proc_self_cgroup"
    proc_file.write_text(proc)
    return root, proc_file


def test_v2_own_group_and_the_tightest_ancestor(tmp_path):
    root, proc = _tree(tmp_path, "0::/system.slice/edge.service\n", {
        "cgroup.controllers": "cpuset cpu io memory pids\n",
        "cpu.max": "max 100000\n",
        "system.slice/cpu.max": "300000 100000\n",
        "system.slice/edge.service/cpu.max": "150000 100000\n",
    })
    assert cpu_quota(root, proc) == 1.5
    (root / "system.slice/cpu.max").write_text("50000 100000\n")  # the parent is tighter
    assert cpu_quota(root, proc) == 0.5
    (root / "system.slice/cpu.max").write_text("max 100000\n")
    (root / "system.slice/edge.service/cpu.max").write_text("max 100000\n")
    assert cpu_quota(root, proc) is None


def test_v1_cpu_controller_and_hybrid_mounts(tmp_path):
    root, proc = _tree(tmp_path, "12:pids:/x\n4:cpu,cpuacct:/docker/abc\n0::/\n", {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        "unified/cgroup.controllers": "\n",  # hybrid: v2 mounted without the cpu controller's files
    })
    assert cpu_quota(root, proc) == 2.5


def test_container_path_missing_from_the_mount_reads_its_root(tmp_path):
    """Inside a container /proc/self/cgroup names the host's path, the mount is the container's own group."""
    root, proc = _tree(tmp_path, "0::/kubepods/pod1/abc\n", {
        "cgroup.controllers": "cpu memory\n", "cpu.max": "120000 100000\n"})
    assert cpu_quota(root, proc) == 1.2


@pytest.mark.parametrize("text", ["", "garbage", "0::\n", "1:cpu:\n"])
def test_unreadable_or_absent_means_no_limit(tmp_path, text):
    root, proc = _tree(tmp_path, text, {"cpu/cpu.cfs_quota_us": "oops", "cpu/cpu.cfs_period_us": "0"})
    assert cpu_quota(root, proc) is None
    assert cpu_quota(tmp_path / "nothing", tmp_path / "nothing" / "cgroup") is None


def test_cores_round_the_quota_up_and_never_exceed_the_mask():
    mask = affinity_cpus()
    assert available_cores(quota=1.5) == min(mask, 2)
    assert available_cores(quota=0.3) == 1
    assert available_cores(quota=2.0) == min(mask, 2)
    assert available_cores(quota=1000.0) == mask


def test_auto_scales_fair_s_share_by_the_quota():
    """Under fair both sides are busy, so a 1.5-core quota on 2 cores leaves each 3/4 of its time alone."""
    assert fair_share_fps(2, 4.0, None) == 4.0 and fair_share_fps(2, 4.0, 3.0) == 4.0
    assert fair_share_fps(2, 4.0, 1.5) == pytest.approx(3.0)
    target = 3.0 / PACE_HEADROOM
    assert choose_policy(2, target, 4.0) is Policy.FAIR
    assert choose_policy(2, target, 4.0, quota_cores=1.5) is Policy.FAIR  # 3.0 = target x headroom
    assert choose_policy(2, target, 4.0, quota_cores=1.4) is Policy.DETECTION_FIRST


def _why_no_quota_group():
    from benchmarks.cpu_limits import quota_groups_supported

    return quota_groups_supported()


_CHILD = r"""
import json, os, time
from benchmarks.cpu_limits import quota_group
from edge_runtime.runtime.cpus import available_cores, cpu_quota
with quota_group(0.5):
    inside = (cpu_quota(), available_cores())
    t0, c0 = time.monotonic(), time.process_time()
    while time.monotonic() - t0 < 1.0:
        pass
    share = (time.process_time() - c0) / (time.monotonic() - t0)
print(json.dumps({"inside": inside, "share": share, "after": cpu_quota()}))
"""


@pytest.mark.skipif(_why_no_quota_group() is not None, reason=f"no cgroup quota here: {_why_no_quota_group()}")
def test_a_real_quota_group_is_read_and_enforced():
    """A real cgroup with a 0.5-core quota: the runtime reads 0.5 from inside it, the kernel holds a busy
    loop to about half a CPU, and the process is back in its own group afterwards."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["inside"] == [0.5, 1]
    assert 0.3 <= got["share"] <= 0.65, got  # 50 % of one CPU, with the period's rounding
    assert got["after"] == cpu_quota()  # back in the group it started in
