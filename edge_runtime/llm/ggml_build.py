"""Does the installed llama.cpp use the instructions this CPU has?

pip builds llama-cpp-python from source on Linux. Since scikit-build-core exports ``SOURCE_DATE_EPOCH`` to
the CMake build, ggml takes that as a sign of a reproducible (portable) build and turns ``GGML_NATIVE``
off: the library is compiled for AVX2 on x86-64 whatever the CPU has (no AVX-512, no VNNI) and for the
compiler's default target on aarch64 (ARMv8-A on Debian: without the dot product and fp16 arithmetic a
Raspberry Pi 5 has), so the quantized matrix products that dominate decoding take the slower paths. Building with ``CMAKE_ARGS="-DGGML_NATIVE=ON"`` (what
``make setup`` does) gives the CPU's own instruction set, as llama.cpp's own build does by default.

This module compares what ``llama_print_system_info()`` says the library was built with against the CPU's
flags (``/proc/cpuinfo``) and names what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Set

__all__ = ["CPU_FLAG_TO_GGML", "cpu_flags", "ggml_features", "missing_features", "build_advice"]

#: CPU flag (as /proc/cpuinfo spells it) -> the name llama.cpp's system info gives the same feature.
#: Only features ggml has kernels for, on x86-64 and aarch64.
CPU_FLAG_TO_GGML: Mapping[str, str] = {
    "avx2": "AVX2", "fma": "FMA", "f16c": "F16C",
    "avx512f": "AVX512", "avx512_vnni": "AVX512_VNNI", "avx512_vbmi": "AVX512_VBMI",
    "avx512_bf16": "AVX512_BF16", "avx_vnni": "AVX_VNNI",
    "asimddp": "DOTPROD", "i8mm": "MATMUL_INT8", "asimdhp": "FP16_VA",
}


def cpu_flags(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> Set[str]:
    """The first CPU's feature flags (x86 ``flags``, ARM ``Features``); empty if the file is unreadable."""
    try:
        text = cpuinfo_path.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def ggml_features(system_info: str) -> Dict[str, bool]:
    """``"CPU : AVX = 1 | AVX2 = 1 | ..."`` -> ``{"AVX": True, "AVX2": True, ...}`` (every backend's part)."""
    out: Dict[str, bool] = {}
    for part in system_info.replace("\n", "|").split("|"):
        if "=" not in part:
            continue
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        value = value.strip()
        if name and value.isdigit():
            out[name] = out.get(name, False) or value != "0"
    return out


def missing_features(system_info: str, flags: Iterable[str]) -> List[str]:
    """ggml names of features the CPU has and the library was built without, in a fixed order.

    Empty when the system info lists no CPU features at all (an unknown format: nothing to say).
    """
    built = ggml_features(system_info)
    if not built:
        return []
    have = set(flags)
    return [ggml for flag, ggml in CPU_FLAG_TO_GGML.items() if flag in have and not built.get(ggml, False)]


def build_advice(system_info: Optional[str] = None, flags: Optional[Iterable[str]] = None) -> Optional[str]:
    """A one-line warning naming the CPU features the installed llama.cpp leaves unused, or None.

    By default reads the loaded library's ``llama_print_system_info()`` and this CPU's flags.
    """
    if system_info is None:
        import llama_cpp

        raw = llama_cpp.llama_print_system_info()
        system_info = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    missing = missing_features(system_info, cpu_flags() if flags is None else flags)
    if not missing:
        return None
    return (f"llama-cpp-python was built without {', '.join(missing)}, which this CPU has: decoding takes "
            f"slower paths. Rebuild it for this CPU: CMAKE_ARGS=\"-DGGML_NATIVE=ON\" pip install "
            f"--force-reinstall --no-cache-dir --no-deps llama-cpp-python")
