"""Smoke check run on the emulated ARM target before its tests: the installed wheel imports, was built for
this architecture with NEON, and the emulator really models the CPU asked for.

The last point is what makes the Cortex-A72 run a proof of the SIMD fallbacks: qemu's default CPU has
every extension (SVE, dot product, fp16), so a kernel that used them unconditionally would pass there and
die with SIGILL on a Pi 4. Here the kernel's own HWCAP bits (what run-time dispatch reads) are checked
against the profile of the named core.

Usage (inside the target): python3 smoke.py --arch {aarch64,armv7l} --cpu NAME
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import sys
from typing import Dict, List

AT_HWCAP = 16  # <elf.h>

# Linux uapi asm/hwcap.h bit numbers.
HWCAP_AARCH64 = {"fp": 0, "asimd": 1, "aes": 3, "crc32": 7, "atomics": 8, "fphp": 9, "asimdhp": 10,
                 "asimdrdm": 12, "asimddp": 20, "sve": 22}
HWCAP_ARM = {"vfp": 6, "neon": 12, "vfpv3": 13, "vfpv4": 16, "idiva": 17}

# What each emulated core must and must not report. Pi 4 = Cortex-A72 (ARMv8.0: no fp16 arithmetic, no
# dot product); Pi 5 = Cortex-A76 (ARMv8.2 with both); Pi 2 = Cortex-A7 (ARMv7 with NEON/VFPv4).
PROFILES: Dict[str, Dict[str, List[str]]] = {
    "cortex-a72": {"has": ["fp", "asimd"], "lacks": ["fphp", "asimdhp", "asimddp", "sve"]},
    "cortex-a76": {"has": ["fp", "asimd", "fphp", "asimdhp", "asimddp"], "lacks": ["sve"]},
    "cortex-a7": {"has": ["vfp", "neon", "vfpv4", "idiva"], "lacks": []},
}
EXPECTED = {"aarch64": {"machine": "aarch64", "native_arch": "aarch64", "table": HWCAP_AARCH64},
            "armv7l": {"machine": "armv7l", "native_arch": "armv7", "table": HWCAP_ARM}}


def hwcap_flags(table: Dict[str, int]) -> Dict[str, bool]:
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    bits = libc.getauxval(AT_HWCAP)
    return {name: bool(bits >> bit & 1) for name, bit in table.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, choices=sorted(EXPECTED))
    parser.add_argument("--cpu", required=True, choices=sorted(PROFILES))
    args = parser.parse_args()
    want = EXPECTED[args.arch]
    problems: List[str] = []

    machine = platform.machine()
    if machine != want["machine"]:
        problems.append(f"platform.machine() is {machine!r}, expected {want['machine']!r}")

    from edge_runtime import _native  # the installed wheel's module, not a source tree

    if _native.ARCH != want["native_arch"]:
        problems.append(f"_native.ARCH is {_native.ARCH!r}, expected {want['native_arch']!r}")
    if _native.HAS_NEON is not True:
        problems.append(f"_native.HAS_NEON is {_native.HAS_NEON!r}: the wheel was built without NEON")

    flags = hwcap_flags(want["table"])
    profile = PROFILES[args.cpu]
    for name in profile["has"]:
        if not flags[name]:
            problems.append(f"QEMU_CPU={args.cpu} should report {name} in AT_HWCAP but does not")
    for name in profile["lacks"]:
        if flags[name]:
            problems.append(f"QEMU_CPU={args.cpu} reports {name}, which a real {args.cpu} lacks "
                            "(is QEMU_CPU reaching the emulator?)")

    import numpy

    shown = " ".join(("" if on else "no-") + name for name, on in flags.items())
    print(f"smoke {args.arch}/{args.cpu}: _native ARCH={_native.ARCH} HAS_NEON={_native.HAS_NEON} "
          f"({_native.__file__}); numpy {numpy.__version__}; python {platform.python_version()}; "
          f"hwcap: {shown}")
    for problem in problems:
        print(f"smoke {args.arch}/{args.cpu}: FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
