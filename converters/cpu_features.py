"""What this CPU can do for int8 inference, read from ``/proc/cpuinfo`` (Linux) — and what that means.

ONNX Runtime's int8 kernels pay off only with an int8 dot-product instruction: VNNI on x86-64
(``avx512_vnni``, ``avx_vnni``, or AMX), ``sdot``/``udot`` on ARM (``asimddp``; Cortex-A76/A55 and later,
so the Raspberry Pi 5 but not the Pi 4's Cortex-A72). Without one, int8 matrix products go through
16-bit multiply-add sequences (x86 ``vpmaddubsw``, which can also saturate for u8×s8) or widening NEON
multiplies, and an int8 model is often no faster than fp32; 4-bit weight-only models still save memory
and bandwidth. The report carries that warning so nobody is surprised on the board.

Nothing is probed at import; call :func:`detect_cpu`.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

__all__ = ["CpuFeatures", "detect_cpu", "parse_cpuinfo"]

# x86 flags that give int8 dot products, best first (as spelled in /proc/cpuinfo).
_X86_INT8_DOT = ("amx_int8", "avx512_vnni", "avx_vnni", "avx_vnni_int8")
# ARM: asimddp = SDOT/UDOT (ARMv8.2-A DotProd); i8mm = SMMLA (ARMv8.6-A). Same names on armv7 kernels.
_ARM_INT8_DOT = ("i8mm", "asimddp")
_INTERESTING = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                *_X86_INT8_DOT, "neon", "asimd", "asimdhp", "fphp", "vfpv4", "sve", "sve2", *_ARM_INT8_DOT)

# ARM CPU part numbers (implementer 0x41) for names in reports; see the ARM TRMs' MIDR tables.
_ARM_PARTS = {0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57",
              0xD08: "Cortex-A72", 0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76",
              0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77", 0xD41: "Cortex-A78", 0xD44: "Cortex-X1",
              0xD46: "Cortex-A510", 0xD47: "Cortex-A710", 0xD4F: "Neoverse-V2", 0xC07: "Cortex-A7",
              0xC09: "Cortex-A9", 0xC0F: "Cortex-A15"}


@dataclass(frozen=True)
class CpuFeatures:
    """A CPU's identity and the instruction-set features that decide int8 speed.

    Attributes:
        arch: ``platform.machine()`` style name (``x86_64``, ``aarch64``, ``armv7l``).
        model: human-readable CPU model (``model name`` on x86, the core name on ARM when known).
        logical_cpus: number of processors listed.
        flags: the subset of feature flags that matter here, sorted.
        int8_dot: the best int8 dot-product feature present (e.g. ``avx512_vnni``, ``asimddp``) or None.
    """

    arch: str
    model: str
    logical_cpus: int
    flags: Tuple[str, ...] = field(default_factory=tuple)
    int8_dot: Optional[str] = None

    @property
    def has_int8_dot(self) -> bool:
        """True when int8 GEMMs have a dot-product instruction to run on."""
        return self.int8_dot is not None

    def warnings(self) -> List[str]:
        """Plain-language warnings for a conversion report (empty when int8 should pay off)."""
        if self.has_int8_dot:
            return []
        if self.arch in ("x86_64", "amd64", "i686", "i386"):
            why = "this x86 CPU has no VNNI (avx512_vnni / avx_vnni)"
        elif self.arch.startswith(("arm", "aarch64")):
            why = f"this ARM CPU ({self.model}) has no dot-product instructions (asimddp), like the Pi 4's Cortex-A72"
        else:
            why = f"no int8 dot-product instruction is known for {self.arch}"
        return [f"int8 may not be faster than fp32 here: {why}; int8 matrix products fall back to 16-bit "
                "multiply-add sequences. Judge int8 by the latency measured in this report, on this CPU; "
                "4-bit weight-only models still cut memory and bandwidth."]

    def to_dict(self) -> Dict[str, object]:
        """JSON-ready form, with the warnings."""
        out = asdict(self)
        out["flags"] = list(self.flags)
        out["has_int8_dot"] = self.has_int8_dot
        out["warnings"] = self.warnings()
        return out


def _first(blocks: List[Dict[str, str]], *keys: str) -> Optional[str]:
    for block in blocks:
        for key in keys:
            if block.get(key):
                return block[key]
    return None


def parse_cpuinfo(text: str, arch: str) -> CpuFeatures:
    """Build :class:`CpuFeatures` from the text of ``/proc/cpuinfo``.

    Args:
        text: the file's contents (x86 ``flags`` lines or ARM ``Features`` lines).
        arch: machine name as ``platform.machine()`` reports it.

    Returns:
        The parsed features; unknown or empty input gives an entry with no flags.

    Example:
        >>> parse_cpuinfo("processor: 0\\nFeatures: fp asimd asimddp\\nCPU part: 0xd0b\\n", "aarch64").int8_dot
        'asimddp'
    """
    blocks: List[Dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, sep, value = line.partition(":")
        if sep:
            blocks[-1][key.strip().lower()] = value.strip()
    blocks = [b for b in blocks if b]
    n_cpus = sum(1 for b in blocks if "processor" in b) or 1
    raw = (_first(blocks, "flags", "features") or "").split()
    present = set(raw)
    flags = tuple(sorted(f for f in present if f in _INTERESTING))
    model = _first(blocks, "model name", "cpu model") or ""
    part = _first(blocks, "cpu part")
    if part and _first(blocks, "cpu implementer") in (None, "0x41"):
        try:
            core = _ARM_PARTS.get(int(part, 16))
        except ValueError:
            core = None
        if core:
            model = core if not model or model.startswith("ARMv") else f"{model} ({core})"
    if not model:
        model = _first(blocks, "hardware", "model") or arch
    candidates = _X86_INT8_DOT if arch in ("x86_64", "amd64", "i686", "i386") else _ARM_INT8_DOT
    int8_dot = next((f for f in candidates if f in present), None)
    return CpuFeatures(arch=arch, model=model, logical_cpus=n_cpus, flags=flags, int8_dot=int8_dot)


def detect_cpu(cpuinfo: "os.PathLike[str] | str" = "/proc/cpuinfo") -> CpuFeatures:
    """Features of the CPU this process runs on (Linux; elsewhere only the architecture is known)."""
    arch = platform.machine() or "unknown"
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuFeatures(arch=arch, model=platform.processor() or arch, logical_cpus=os.cpu_count() or 1)
    return parse_cpuinfo(text, arch)
