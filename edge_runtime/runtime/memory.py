"""The memory budget of a job: what it will need, what the machine (and its cgroup) can give, and a refusal
that says what to change when the two don't fit.

The estimate is a sum of parts, each from a file size or a config value (nothing is loaded)::

    runtime     Python, NumPy, OpenCV, ONNX Runtime and this package once imported (a constant)
    detector    per ONNX Runtime session: weights as prepared (x DETECTOR_WEIGHT_FACTOR of the file, or
                DETECTOR_WEIGHT_FACTOR_CACHED once the rewritten model is in the on-disk cache) + the
                activation arena of one 640x640 inference (ACTIVATION_BYTES_PER_PIXEL per input pixel); one
                session alone, more next to chat (one per thread count the scheduler switches between, and
                the probe of ``budget.policy = "auto"``)
    frames      FRAME_BUFFERS decoded frames in flight (decoder, grabber slot, the frame being processed,
                drawing) + the letterboxed float input; the frame size of a file from its header, a live
                source's assumed to be 1920x1080
    queues      the bounded in-memory queues at their caps: recent events, and the frames a full disk
                keeps waiting (:class:`~edge_runtime.runtime.sinks.StoreSink`)
    chat        the GGUF model's weights (memory-mapped, all of them touched), its KV cache for
                ``chat.ctx``: :func:`edge_runtime.llm.inspect.inspect_gguf`'s estimate, with compute buffers
                of CHAT_OVERHEAD_MIB

The constants were calibrated on the built-in job (yolov8s fp32, vtest.avi, SmolLM2-135M) on x86-64 and
are meant as an upper bound: ``tests/test_memory.py`` runs the real job and requires the estimate to lie
between the measured peak RSS and 1.3 times it. ARM builds of the same libraries are smaller, so on a
board the estimate errs on the safe side.

What the machine gives: ``MemAvailable`` from /proc/meminfo (memory usable without swapping) plus what
this process already holds, capped by the cgroup's memory limit (v2 ``memory.max``, v1
``memory.limit_in_bytes``, minus what the rest of the cgroup uses) and by ``budget.memory_mib`` when set.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config

__all__ = ["MemoryBudget", "MachineMemory", "estimate_memory", "machine_memory", "check_memory",
           "RUNTIME_BASE_BYTES", "DETECTOR_WEIGHT_FACTOR", "DETECTOR_WEIGHT_FACTOR_CACHED", "ACTIVATION_BYTES_PER_PIXEL",
           "FRAME_BUFFERS",
           "CHAT_OVERHEAD_MIB"]

MIB = 1 << 20
#: Python + NumPy + OpenCV + ONNX Runtime + edge_runtime imported (measured 85 MiB on x86-64), and the
#: Python heap a running job grows (the rest of the calibration run's peak).
RUNTIME_BASE_BYTES = 112 * MIB
#: ONNX Runtime holds the weights once more as prepared (pre-packed) kernels (session RSS / file size: 2.39),
#: and on its first start the detector builds its session from a rewritten copy of the model (its DFL head,
#: ``vision/dfl_rewrite.py``), parsed and re-serialised in this process, which the allocator keeps. That
#: part varies from run to run (the built-in job peaked at 328-374 MiB): 4.4 in all.
DETECTOR_WEIGHT_FACTOR = 4.4
#: The same once the rewritten model is in the on-disk cache (``vision/rewrite_cache.py``) and onnxruntime
#: loads it as a file: the prepared weights alone (the built-in job peaked at 262 MiB).
DETECTOR_WEIGHT_FACTOR_CACHED = 2.39
#: ONNX Runtime's activation arena per input pixel of one inference (YOLOv8s at 640x640: about 50 MiB).
ACTIVATION_BYTES_PER_PIXEL = 128
DETECTOR_INPUT_HW = (640, 640)
#: Decoded frames alive at once: FFmpeg's decoder threads and frame pool, the grabber's slot, the frame in
#: the pipeline, the drawing.
FRAME_BUFFERS = 16
#: llama.cpp's compute buffers, logits and allocator next to weights and KV cache (measured 12 MiB for
#: SmolLM2-135M at 2048 tokens; inspect's generic default is 64), and the rows of llama-cpp-python's
#: (n_ctx, n_vocab) logits array an answer touches: one per generated token and per prompt chunk (192 KiB
#: each for SmolLM2's 49152-token vocabulary, ~18 MiB for a 64-token answer to a grounded prompt).
CHAT_OVERHEAD_MIB = 48
LIVE_FRAME_HW = (1080, 1920)
EVENT_BYTES = 256  # one CountEvent kept in a deque (measured 208 B)
_CGROUP_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MachineMemory:
    """What this process may use, in bytes, and where each figure came from."""

    available_bytes: Optional[int]  # MemAvailable + this process's RSS; None without /proc/meminfo
    cgroup_limit_bytes: Optional[int] = None  # the cgroup's limit, None when unlimited or unknown
    cgroup_room_bytes: Optional[int] = None  # limit - what the rest of the cgroup uses
    configured_bytes: Optional[int] = None  # budget.memory_mib

    @property
    def limit_bytes(self) -> Optional[int]:
        """The smallest of the known limits; None when none is known (nothing can be enforced)."""
        known = [v for v in (self.available_bytes, self.cgroup_room_bytes, self.configured_bytes) if v is not None]
        return min(known) if known else None

    def describe(self) -> str:
        parts = [f"{self.available_bytes / MIB:.0f} MiB available on the machine" if self.available_bytes is not None
                 else "the machine's memory unknown (no /proc/meminfo): set budget.memory_mib to enforce a budget"]
        if self.cgroup_room_bytes is not None:
            parts.append(f"{self.cgroup_room_bytes / MIB:.0f} MiB left under the cgroup limit of "
                         f"{(self.cgroup_limit_bytes or 0) / MIB:.0f} MiB")
        if self.configured_bytes is not None:
            parts.append(f"budget.memory_mib = {self.configured_bytes // MIB}")
        return ", ".join(parts)


@dataclass(frozen=True)
class MemoryBudget:
    """The estimate of a job, part by part (bytes), against the machine's memory.

    Attributes:
        parts: {part: bytes} in the order of the module docstring (chat only when enabled).
        notes: {part: how it was worked out}.
        machine: what the machine gives.
        chat_kv_bytes, chat_ctx: the chat's KV cache and context (0 without chat), for the advice.
    """

    parts: Dict[str, int]
    notes: Dict[str, str]
    machine: MachineMemory
    chat_kv_bytes: int = 0
    chat_ctx: int = 0
    detector_weight_bytes: int = 0
    advice: Tuple[str, ...] = ()  # changes that would make it fit (set when it does not)

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        limit = self.machine.limit_bytes
        return limit is None or self.total_bytes <= limit

    def summary(self) -> str:
        """One line: the total, its parts, the machine's limit."""
        parts = ", ".join(f"{k} {v / MIB:.0f}" for k, v in self.parts.items())
        limit = self.machine.limit_bytes
        of = "" if limit is None else f" of {limit / MIB:.0f} MiB"
        return f"memory budget: about {self.total_bytes / MIB:.0f} MiB ({parts}){of} ({self.machine.describe()})"


# -- the machine -----------------------------------------------------------------------------------------
def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= _CGROUP_UNLIMITED else value


def _cgroup_memory(proc_cgroup: str, root: Path) -> Tuple[Optional[int], Optional[int]]:
    """(limit, usage) of this process's memory cgroup (v2, else v1), None where there is none."""
    v1_path = v2_path = None
    for line in proc_cgroup.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if fields[0] == "0" and fields[1] == "":
            v2_path = fields[2]
        elif "memory" in fields[1].split(","):
            v1_path = fields[2]
    if v2_path is not None:
        base = root / v2_path.lstrip("/")
        limit = _read_int(base / "memory.max")
        if limit is not None:
            return limit, _read_int(base / "memory.current")
    if v1_path is not None:
        base = root / "memory" / v1_path.lstrip("/")
        limit = _read_int(base / "memory.limit_in_bytes")
        if limit is not None:
            return limit, _read_int(base / "memory.usage_in_bytes")
    return None, None


def machine_memory(configured_mib: int = 0, *, proc: Path = Path("/proc"),
                   cgroup_root: Path = Path("/sys/fs/cgroup")) -> MachineMemory:
    """What this process may use: MemAvailable (+ its own RSS), the cgroup's room, ``budget.memory_mib``.

    Args:
        configured_mib: ``budget.memory_mib`` (0 = not set).
        proc, cgroup_root: where /proc and the cgroup filesystem are (tests point them at a made-up tree).

    Without /proc/meminfo (not Linux) the machine's figure is None: only the cgroup and ``budget.memory_mib``
    limit the job then.
    """
    available = None
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        available = None
    own = 0
    try:
        own = int((proc / "self" / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        cgroup_text = (proc / "self" / "cgroup").read_text()
    except OSError:
        cgroup_text = ""
    limit, usage = _cgroup_memory(cgroup_text, cgroup_root)
    room = None if limit is None else max(0, limit - max(0, (usage or 0) - own))
    return MachineMemory(available_bytes=None if available is None else available + own, cgroup_limit_bytes=limit,
                         cgroup_room_bytes=room,
                         configured_bytes=configured_mib * MIB if configured_mib else None)


# -- the job -----------------------------------------------------------------------------------------------
def _frame_hw(uri: str) -> Tuple[Tuple[int, int], str]:
    """(height, width) of a file source from its header; live sources are assumed 1080p."""
    from ..vision.sources import _resolve

    try:
        kind, target = _resolve(uri)
    except Exception:  # the source's own errors are raised where it is opened, with its message
        return LIVE_FRAME_HW, "unknown source, assumed 1920x1080"
    if kind == "video":
        import cv2

        cap = cv2.VideoCapture(str(target))
        try:
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            cap.release()
        if w > 0 and h > 0:
            return (h, w), f"{w}x{h} from the file"
    return LIVE_FRAME_HW, "a live source, assumed 1920x1080"


def _detector_sessions(config: "Config") -> int:
    """ONNX Runtime sessions of the detector alive at once. Alone, the job has one. With chat, the
    supervisor keeps one per thread count its scheduling policy switches between, next to the session
    the pipeline was built with; ``budget.policy = "auto"`` first times a session of its own (next to the
    pipeline's, freed before the others are made)."""
    if not config.chat.enabled:
        return 1
    from .cpus import available_cores
    from .scheduler import Scheduler

    cores = config.budget.cores or available_cores()
    base = config.model.threads or cores
    policies = ("fair", "detection-first") if config.budget.policy == "auto" else (config.budget.policy,)
    held = max(len({base, *Scheduler.from_config(config.budget, policy=p).detector_thread_counts()})
               for p in policies)
    probe = config.budget.policy == "auto" and cores >= 2  # freed before the sessions are made
    return max(held, 2 if probe else 1)


def estimate_memory(config: "Config", machine: Optional[MachineMemory] = None) -> MemoryBudget:
    """The job's memory budget, part by part, from file sizes and the config (nothing is loaded).

    Args:
        config: a validated config.
        machine: what the machine gives (default :func:`machine_memory` with ``budget.memory_mib``).

    Raises:
        AssetError, ModelFormatError: a model cannot be found or its header is broken.
    """
    from ..assets import resolve

    machine = machine if machine is not None else machine_memory(config.budget.memory_mib)
    parts: Dict[str, int] = {}
    notes: Dict[str, str] = {}
    parts["runtime"] = RUNTIME_BASE_BYTES
    notes["runtime"] = "Python, NumPy, OpenCV, ONNX Runtime"
    model = resolve(config.model.path)
    # A missing model is the detector's to report (ModelFormatError naming the file), when it loads.
    file_bytes = model.stat().st_size if model.is_file() else 0
    in_h, in_w = DETECTOR_INPUT_HW
    from ..vision.rewrite_cache import has_entry

    factor = DETECTOR_WEIGHT_FACTOR_CACHED if file_bytes and has_entry(model) else DETECTOR_WEIGHT_FACTOR
    weights = int(file_bytes * factor)
    sessions = _detector_sessions(config)
    parts["detector"] = sessions * (weights + ACTIVATION_BYTES_PER_PIXEL * in_h * in_w)
    notes["detector"] = (f"{sessions} session{'s' if sessions > 1 else ''} x ({file_bytes / MIB:.0f} MiB file x "
                         f"{factor:g}{' (rewritten model cached)' if factor != DETECTOR_WEIGHT_FACTOR else ''} + activations of a "
                         f"{in_w}x{in_h} input)")
    (h, w), how = _frame_hw(config.source.uri)
    parts["frames"] = FRAME_BUFFERS * h * w * 3 + 3 * in_h * in_w * 4
    notes["frames"] = f"{FRAME_BUFFERS} frames of {how}"
    from .pipeline import RECENT_EVENTS_MAX
    from .sinks import BACKLOG_EVENTS_MAX

    parts["queues"] = EVENT_BYTES * (RECENT_EVENTS_MAX + (BACKLOG_EVENTS_MAX if config.output.db else 0))
    notes["queues"] = "recent events" + (" and the full-disk backlog" if config.output.db else "") + " at their caps"
    kv = ctx = 0
    if config.chat.enabled:
        from ..llm.inspect import inspect_gguf

        ctx = int(config.chat.ctx)
        ram = inspect_gguf(resolve(config.chat.model), ctx=ctx, overhead_mib=CHAT_OVERHEAD_MIB)["ram_estimate"]
        kv = int(ram["kv_cache_bytes"] or 0)
        parts["chat"] = int(ram["weights_bytes"]) + kv + int(ram["overhead_bytes"])
        notes["chat"] = (f"weights {ram['weights_bytes'] / MIB:.0f} MiB + KV cache {kv / MIB:.0f} MiB for chat.ctx = "
                         f"{ctx} + compute buffers {ram['overhead_bytes'] / MIB:.0f} MiB")
    budget = MemoryBudget(parts, notes, machine, chat_kv_bytes=kv, chat_ctx=ctx, detector_weight_bytes=weights)
    return budget if budget.fits else dataclasses.replace(budget, advice=_advice(budget, config))


def _advice(budget: MemoryBudget, config: "Config") -> Tuple[str, ...]:
    """Changes that would make the job fit, each with what it saves; the first ones fit on their own."""
    over = budget.total_bytes - (budget.machine.limit_bytes or 0)
    out: List[str] = []
    if budget.chat_kv_bytes and budget.chat_ctx > 256:
        per_token = budget.chat_kv_bytes / budget.chat_ctx
        ctx = int((budget.chat_ctx - math.ceil(over / per_token)) // 256 * 256)
        if ctx >= 256:
            out.append(f"a smaller chat context: chat.ctx = {ctx} (KV cache {budget.chat_kv_bytes / MIB:.0f} -> "
                       f"{ctx * per_token / MIB:.0f} MiB)")
    if "chat" in budget.parts:
        fits = budget.parts["chat"] >= over
        out.append(f"no chat: chat.enabled = false (saves {budget.parts['chat'] / MIB:.0f} MiB"
                   f"{'' if fits else ', not enough on its own'})")
    int8_saving = int(budget.detector_weight_bytes * 0.75)
    out.append(f"an int8 detector (`edge-runtime convert yolo MODEL --calib FRAMES --out DIR`, then model.path = its int8 file; saves "
               f"about {int8_saving / MIB:.0f} MiB{'' if int8_saving >= over else ', not enough on its own'})")
    if budget.machine.configured_bytes is not None:
        out.append("or a larger budget.memory_mib, if the machine has it")
    return tuple(out)


def check_memory(config: "Config", machine: Optional[MachineMemory] = None) -> MemoryBudget:
    """:func:`estimate_memory`, refusing a job that cannot fit.

    Raises:
        ConfigError: the estimate exceeds what the machine (cgroup, ``budget.memory_mib``) gives; the message
            lists the parts and the changes that would make it fit.
    """
    budget = estimate_memory(config, machine)
    if budget.fits:
        return budget
    parts = "; ".join(f"{k} {v / MIB:.0f} MiB ({budget.notes[k]})" for k, v in budget.parts.items())
    raise ConfigError(
        f"config: the job needs about {budget.total_bytes / MIB:.0f} MiB but only "
        f"{(budget.machine.limit_bytes or 0) / MIB:.0f} MiB can be had ({budget.machine.describe()}). Needed: {parts}. "
        f"To fit, change one of: " + "; ".join(budget.advice))
