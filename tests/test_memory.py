"""The memory budget: the estimate against the peak RSS of the real built-in job, the refusal and its advice,
and the machine's limits read from /proc and the cgroup filesystem (v1 and v2, as made-up trees).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runtime.errors import ConfigError
from edge_runtime.runtime.config import config_from_dict, default_config
from edge_runtime.runtime.memory import MIB, MachineMemory, check_memory, estimate_memory, machine_memory

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1.3  # the estimate is an upper bound, at most 30 % above the measured peak

pytest.importorskip("cv2", reason="opencv-python-headless has no wheel for this platform (armv7)")

CHAT_JOB = """
[model]
path = "builtin:yolov8s-person"
classes = [0]
[[lines]]
name = "walkway"
start = [400, 400]
end = [400, 150]
[output]
db = ""
print_every_s = 0
[chat]
enabled = true
port = 0
ctx = 2048
[budget]
policy = "fair"
"""


def machine(limit_mib: int) -> MachineMemory:
    return MachineMemory(available_bytes=64_000 * MIB, configured_bytes=limit_mib * MIB)


def chat_config(**chat) -> "object":
    return config_from_dict({"lines": [{"name": "walkway", "start": [400, 400], "end": [400, 150]}],
                             "output": {"db": ""}, "chat": {"enabled": True, **chat}})


# -- the estimate against the real job -----------------------------------------------------------------
# Runs a command, asks its chat server one question once it serves (when it does), waits for it, and prints
# its exit status and its peak RSS in KiB (ru_maxrss of this fresh parent, which waits for nothing else).
PEAK_RSS = r"""
import json, re, resource, subprocess, sys, threading, urllib.request
proc = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
err = []
def ask(url):
    body = json.dumps({"messages": [{"role": "user", "content": "Tell a story about a lighthouse."}],
                       "max_tokens": 64}).encode()
    req = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=300).read()
asking = None
for line in proc.stderr:
    err.append(line)
    m = re.search(r"serving chat on (http://\S+/v1)", line)
    if m and asking is None:
        asking = threading.Thread(target=ask, args=(m.group(1),))
        asking.start()
proc.wait()
if asking is not None:
    asking.join()
sys.stderr.write("".join(err))
print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.parametrize("job", ["built-in", "with chat"])
def test_estimate_bounds_the_measured_peak_rss_of_the_real_job(tmp_path: Path, job: str) -> None:
    """`edge-runtime run` logs its budget at start-up; the run's peak RSS must lie under it, and the estimate
    within TOLERANCE of it. The chat job answers one request while it counts, so every detector session
    and the chat's compute buffers are in use; its policy is fixed at "fair" (two detector sessions, what
    the estimate assumes), since "auto" would pick by a timing and hold one session or two."""
    if job == "with chat":
        pytest.importorskip("llama_cpp")
        (tmp_path / "job.toml").write_text(CHAT_JOB)
        args = [str(tmp_path / "job.toml"), "--max-frames", "120"]
    else:
        args = ["--db", "", "--max-frames", "30"]
    cmd = [sys.executable, "-m", "edge_runtime.cli", "run", *args]
    res = subprocess.run([sys.executable, "-c", PEAK_RSS, *cmd], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    code, maxrss_kib = (int(v) for v in res.stdout.split())
    assert code == 0, res.stderr[-3000:]
    m = re.search(r"memory budget: about (\d+) MiB \(([^)]*)\)", res.stderr)
    assert m, f"no memory budget in the start-up log: {res.stderr[-2000:]}"
    estimate_mib, measured_mib = int(m.group(1)), maxrss_kib / 1024
    print(f"{job}: estimate {estimate_mib} MiB, measured peak RSS {measured_mib:.0f} MiB")
    assert measured_mib <= estimate_mib <= TOLERANCE * measured_mib, \
        f"{job}: estimate {estimate_mib} MiB ({m.group(2)}), measured peak RSS {measured_mib:.0f} MiB"


# -- the refusal -----------------------------------------------------------------------------------------
def test_a_job_that_cannot_fit_is_refused_with_changes_that_fit() -> None:
    config = chat_config(ctx=16384)
    need = estimate_memory(config, machine(100_000))
    kv_mib = need.chat_kv_bytes / MIB
    assert kv_mib > 300  # SmolLM2-135M: 30 layers x 3 KV heads x 128 x 2 B per token
    limit = int(need.total_bytes / MIB - kv_mib / 2)  # half the KV cache too much
    with pytest.raises(ConfigError) as info:
        check_memory(config, machine(limit))
    msg = str(info.value)
    assert f"only {limit} MiB" in msg and "budget.memory_mib" in msg
    for part in ("runtime", "detector", "frames", "queues", "chat", "KV cache"):
        assert part in msg, (part, msg)
    ctx = int(re.search(r"chat\.ctx = (\d+) \(KV cache", msg).group(1))
    assert 256 <= ctx < 16384 and ctx % 256 == 0
    assert "chat.enabled = false" in msg and "int8 detector" in msg
    # The advice is right: the suggested context fits, one step (256 tokens) more does not.
    fixed = dataclasses.replace(config, chat=dataclasses.replace(config.chat, ctx=ctx))
    assert check_memory(fixed, machine(limit)).fits
    bigger = dataclasses.replace(config, chat=dataclasses.replace(config.chat, ctx=ctx + 256))
    assert not estimate_memory(bigger, machine(limit)).fits
    no_chat = dataclasses.replace(config, chat=dataclasses.replace(config.chat, enabled=False))
    assert check_memory(no_chat, machine(limit)).fits


def test_the_refusal_comes_before_any_model_is_loaded() -> None:
    from edge_runtime.runtime.build import build_pipeline

    config = config_from_dict({"budget": {"memory_mib": 64}, "output": {"db": ""}})
    with pytest.raises(ConfigError, match=r"needs about \d+ MiB but only 64 MiB"):
        build_pipeline(config, quiet=True)


def test_estimate_grows_with_the_chat_context_and_the_frame_size() -> None:
    small, large = (estimate_memory(chat_config(ctx=c), machine(100_000)) for c in (1024, 4096))
    assert large.chat_kv_bytes == 4 * small.chat_kv_bytes
    assert large.total_bytes - small.total_bytes == large.chat_kv_bytes - small.chat_kv_bytes
    live = config_from_dict({"source": {"uri": "rtsp://cam.local/stream"}, "output": {"db": ""}})
    assert estimate_memory(live, machine(100_000)).parts["frames"] > \
        estimate_memory(default_config(), machine(100_000)).parts["frames"]  # 1080p assumed vs 768x576


# -- the machine -------------------------------------------------------------------------------------------
def fake_proc(tmp: Path, available_kib: int, rss_pages: int, cgroup: str) -> Path:
    proc = tmp / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: 4000000 kB\nMemFree: 100 kB\nMemAvailable: {available_kib} kB\n")
    (proc / "self" / "statm").write_text(f"1000 {rss_pages} 0 0 0 0 0\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def test_machine_memory_reads_meminfo_and_a_cgroup_v2_limit(tmp_path: Path) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    proc = fake_proc(tmp_path, 2_000_000, 25_600, "0::/system.slice/edge.service\n")
    cg = tmp_path / "cg" / "system.slice" / "edge.service"
    cg.mkdir(parents=True)
    (cg / "memory.max").write_text(f"{512 * MIB}\n")
    (cg / "memory.current").write_text(f"{25_600 * page + 100 * MIB}\n")  # us + 100 MiB of others
    m = machine_memory(proc=proc, cgroup_root=tmp_path / "cg")
    assert m.available_bytes == 2_000_000 * 1024 + 25_600 * page
    assert m.cgroup_limit_bytes == 512 * MIB and m.cgroup_room_bytes == 412 * MIB
    assert m.limit_bytes == 412 * MIB
    (cg / "memory.max").write_text("max\n")
    assert machine_memory(proc=proc, cgroup_root=tmp_path / "cg").cgroup_limit_bytes is None
    assert machine_memory(300, proc=proc, cgroup_root=tmp_path / "cg").limit_bytes == 300 * MIB


def test_machine_memory_reads_a_cgroup_v1_limit_and_refuses_by_it(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 8_000_000, 0, "4:memory:/docker/abc\n0::/\n")
    cg = tmp_path / "cg" / "memory" / "docker" / "abc"
    cg.mkdir(parents=True)
    (cg / "memory.limit_in_bytes").write_text(f"{256 * MIB}\n")
    (cg / "memory.usage_in_bytes").write_text("0\n")
    m = machine_memory(proc=proc, cgroup_root=tmp_path / "cg")
    assert m.limit_bytes == 256 * MIB
    with pytest.raises(ConfigError, match="cgroup limit of 256 MiB"):
        check_memory(chat_config(), m)
    (cg / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "unlimited"
    assert machine_memory(proc=proc, cgroup_root=tmp_path / "cg").cgroup_limit_bytes is None


def test_without_meminfo_only_the_configured_budget_limits(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    unknown = machine_memory(proc=proc, cgroup_root=tmp_path)
    assert unknown.limit_bytes is None and "budget.memory_mib" in unknown.describe()
    assert check_memory(chat_config(), unknown).fits  # nothing known, nothing refused
    limited = machine_memory(200, proc=proc, cgroup_root=tmp_path)
    assert limited.limit_bytes == 200 * MIB
    with pytest.raises(ConfigError, match="budget.memory_mib = 200"):
        check_memory(chat_config(), limited)


_ARENAS = r"""
import sys
from edge_runtime.runtime.malloc import limit_malloc_arenas
print(limit_malloc_arenas())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
def test_the_arena_cap_is_set_unless_the_environment_sets_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = lambda extra: subprocess.run([sys.executable, "-c", _ARENAS], capture_output=True, text=True,  # noqa: E731
                                       env={**env, **extra, "PYTHONPATH": str(ROOT)}, timeout=60).stdout.strip()
    assert run({}) == "True"
    assert run({"MALLOC_ARENA_MAX": "4"}) == "False"  # the operator's own setting wins
