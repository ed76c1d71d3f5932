"""Check a cross-built, repaired wheel before anyone installs it: tags, ELF class and machine, ARM float ABI
and, for armv7, that the code was built for NEON + VFPv4.

Why: a cross build that misses one of its environment variables still "succeeds", with an ARM .so named
and tagged for x86-64; a toolchain without -mfpu=neon-vfpv4 silently gives a wheel whose NEON paths were
compiled out. Both are caught here, on the host, in well under a second.

Usage: python scripts/cross/check_wheel.py WHEEL --arch {aarch64,armv7l} [--plat manylinux_2_34] [--py 3.11]
Exit status 0 when every check passes; otherwise each failed check is printed and the status is 1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List

# ELF constants (System V gABI; ARM: "ELF for the Arm Architecture", AAELF32 / AAELF64).
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
EM_ARM, EM_AARCH64 = 40, 183
EF_ARM_EABIMASK, EF_ARM_EABI_VER5 = 0xFF000000, 0x05000000
EF_ARM_ABI_FLOAT_HARD = 0x400

TARGETS: Dict[str, dict] = {
    "aarch64": {"triple": "aarch64-linux-gnu", "elf_class": ELFCLASS64, "machine": EM_AARCH64,
                "objdump": "aarch64-linux-gnu-objdump"},
    "armv7l": {"triple": "arm-linux-gnueabihf", "elf_class": ELFCLASS32, "machine": EM_ARM,
               "objdump": "arm-linux-gnueabihf-objdump"},
}

# A NEON data-processing instruction in objdump's output: AArch64 vector arrangement operands
# (v3.4s, v0.16b, ...); ARMv7 q registers or NEON-only mnemonics (vld1/vst1/vmla.f32 on d/q registers).
NEON_RE = {
    "aarch64": re.compile(r"\tv\d+\.(?:16b|8b|8h|4h|4s|2s|2d)\b|\bv\d+\.(?:16b|8h|4s|2d),"),
    "armv7l": re.compile(r"\t(?:vld[1-4]|vst[1-4]|vmla|vfma|vmul|vadd|vmax|vmin|vcvt|vqmovn|vmovl)\S*\s+\{?[qd]\d+"),
}


class Report:
    def __init__(self) -> None:
        self.failures: List[str] = []

    def check(self, ok: bool, what: str, detail: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: {detail}")
        if not ok:
            self.failures.append(f"{what}: {detail}")


def elf_header(data: bytes) -> dict:
    """The few ELF header fields the checks need; raises ValueError if `data` is not ELF."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    cls, endian = data[4], data[5]
    fmt = "<" if endian == ELFDATA2LSB else ">"
    (machine,) = struct.unpack_from(fmt + "H", data, 18)
    # e_flags follows e_entry, e_phoff, e_shoff (4 bytes each in ELF32, 8 in ELF64).
    flags_at = 36 if cls == ELFCLASS32 else 48
    (flags,) = struct.unpack_from(fmt + "I", data, flags_at)
    return {"class": cls, "endian": endian, "machine": machine, "flags": flags}


def arm_attributes(path: Path) -> Dict[str, str]:
    """The .ARM.attributes build attributes of an ARM ELF file, as readelf -A prints them."""
    out = subprocess.run(["readelf", "-A", str(path)], check=True, capture_output=True, text=True).stdout
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s*(Tag_\w+):\s*(.*)$", out, re.M)}


def count_neon(path: Path, arch: str) -> int:
    """Number of SIMD data-processing instructions in `path` (information only); -1 if it can't be counted."""
    tool = TARGETS[arch]["objdump"]
    if shutil.which(tool) is None:
        return -1
    run = subprocess.run([tool, "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True)
    if run.returncode != 0:
        return -1
    return sum(1 for line in run.stdout.splitlines() if NEON_RE[arch].search(line))


def check_wheel(wheel: Path, arch: str, plat: str, py: str) -> List[str]:
    target = TARGETS[arch]
    report = Report()
    cp = "cp" + py.replace(".", "")
    want_tag = f"{cp}-{cp}-{plat}_{arch}"
    print(f"{wheel.name}:")

    # Tags: file name and the WHEEL metadata must agree, and name this very platform.
    parts = wheel.name[: -len(".whl")].split("-")
    got_tag = "-".join(parts[-3:]) if len(parts) >= 5 else "?"
    report.check(got_tag == want_tag, "file-name tag", f"expected {want_tag}, got {got_tag}")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        wheel_meta = next((n for n in names if n.endswith(".dist-info/WHEEL")), None)
        meta = zf.read(wheel_meta).decode() if wheel_meta else ""
        tags = sorted(re.findall(r"^Tag:\s*(\S+)$", meta, re.M))
        report.check(tags == [want_tag], "WHEEL Tag", f"expected [{want_tag}], got {tags}")
        report.check("Root-Is-Purelib: false" in meta, "WHEEL Root-Is-Purelib", "false (platform wheel)")

        # Extension modules: ours and any library auditwheel vendored (under *.libs/).
        modules = [n for n in names if n.endswith(".so") or ".so." in n]
        suffix = f".cpython-{cp[2:]}-{target['triple']}.so"
        native = [n for n in modules if n.startswith("edge_runtime/_native.")]
        report.check(native == [f"edge_runtime/_native{suffix}"], "extension module name",
                     f"expected edge_runtime/_native{suffix}, got {native or 'none'}")
        with tempfile.TemporaryDirectory() as tmp:
            for name in modules:
                data = zf.read(name)
                try:
                    hdr = elf_header(data)
                except ValueError as exc:
                    report.check(False, name, str(exc))
                    continue
                bits = {ELFCLASS32: "ELF32", ELFCLASS64: "ELF64"}.get(hdr["class"], f"class {hdr['class']}")
                want_bits = {ELFCLASS32: "ELF32", ELFCLASS64: "ELF64"}[target["elf_class"]]
                report.check(hdr["class"] == target["elf_class"] and hdr["endian"] == ELFDATA2LSB
                             and hdr["machine"] == target["machine"], f"{name} ELF",
                             f"expected {want_bits} little-endian machine {target['machine']}, got {bits} "
                             f"{'LE' if hdr['endian'] == ELFDATA2LSB else 'BE'} machine {hdr['machine']}")
                if arch != "armv7l":
                    if name in native:
                        n = count_neon(_write(tmp, name, data), arch)
                        print(f"  info {name}: {n} Advanced SIMD instructions" if n >= 0 else
                              f"  info {name}: SIMD instructions not counted ({target['objdump']} missing or failed)")
                    continue
                report.check((hdr["flags"] & EF_ARM_EABIMASK) == EF_ARM_EABI_VER5
                             and bool(hdr["flags"] & EF_ARM_ABI_FLOAT_HARD), f"{name} ABI",
                             f"expected EABI5 hard-float (armhf), got e_flags {hdr['flags']:#010x}")
                if name not in native:
                    continue
                path = _write(tmp, name, data)
                attrs = arm_attributes(path)
                simd, fp = attrs.get("Tag_Advanced_SIMD_arch", "none"), attrs.get("Tag_FP_arch", "none")
                report.check(simd.startswith("NEON"), f"{name} Tag_Advanced_SIMD_arch",
                             f"expected NEON (built with -mfpu=neon-vfpv4), got {simd!r}")
                report.check(fp.startswith("VFPv4"), f"{name} Tag_FP_arch", f"expected VFPv4, got {fp!r}")
                report.check(attrs.get("Tag_ABI_VFP_args", "") == "VFP registers", f"{name} Tag_ABI_VFP_args",
                             f"expected 'VFP registers', got {attrs.get('Tag_ABI_VFP_args')!r}")
                n = count_neon(path, arch)
                print(f"  info {name}: {n} NEON instructions" if n >= 0 else
                      f"  info {name}: NEON instructions not counted ({target['objdump']} missing or failed)")
    return report.failures


def _write(tmp: str, name: str, data: bytes) -> Path:
    path = Path(tmp) / name.replace("/", "_")
    path.write_bytes(data)
    return path


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--arch", required=True, choices=sorted(TARGETS))
    parser.add_argument("--plat", default="manylinux_2_34", help="expected manylinux tag without the arch")
    parser.add_argument("--py", default="3.11", help="target Python version")
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        print(f"check_wheel: {args.wheel}: no such wheel", file=sys.stderr)
        return 1
    failures = check_wheel(args.wheel, args.arch, args.plat, args.py)
    if failures:
        print(f"check_wheel: {args.wheel.name}: {len(failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
