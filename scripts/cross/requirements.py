"""Print the pip requirements to install next to the project wheel in an ARM root filesystem, one per line.

aarch64: the wheel's own dependencies (proving they all have aarch64 wheels) + the test tools and oracles
         the ARM-run tests import (TEST_TOOLS below; not the whole dev extra, which also holds benchmark
         baselines with heavy dependency trees).
armv7l:  PyPI has no armv7l wheels of numpy, scipy, onnxruntime or OpenCV; numpy and scipy come from
         Debian (DEB_PACKAGES in common.sh) and only the pure-Python test tools come from PyPI. The wheel's
         own dependencies are not installed there: only tests that need numpy + the native module run.

Each is pinned to the version in the host venv when it is installed there, so the ARM run tests what the
host suite tests; otherwise the project's own specifier is used.

Usage: python scripts/cross/requirements.py --arch {aarch64,armv7l} --wheel WHEEL --pyproject pyproject.toml
       [--no-deps]   (the packages to install with pip --no-deps instead)
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Dict, List

# What the ARM-run tests import besides the wheel's dependencies; specifiers come from pyproject's extras.
# pytest/hypothesis run them; scipy is the assignment oracle of test_native_track.py, gguf that of
# test_native_quant.py; onnx builds the tiny hostile models of test_detector.py. Add a name here when an ARM-run test starts importing a new package.
TEST_TOOLS = {
    "aarch64": ["pytest", "hypothesis", "scipy", "onnx", "gguf"],
    "armv7l": ["pytest", "hypothesis"],  # pure Python; numpy and scipy are Debian's python3-numpy/-scipy
}
# Pure-Python packages installed without their dependencies, which Debian supplies (armv7l: gguf, the
# oracle of test_native_quant.py, needs numpy and PyYAML at import; both have no armv7l wheels on PyPI).
NO_DEPS = {"aarch64": [], "armv7l": ["gguf"]}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def req_name(req: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if not match:
        raise ValueError(f"cannot read a package name from requirement {req!r}")
    return canonical(match.group(1))


def wheel_requirements(wheel: Path) -> List[str]:
    """Requires-Dist lines of the wheel that apply without extras."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    reqs = re.findall(r"^Requires-Dist:\s*(.+)$", text, re.M)
    return [r.strip() for r in reqs if "extra ==" not in r and "extra==" not in r]


def pinned(req: str) -> str:
    """`name==<host version>` when the host venv has the package, else the requirement as written."""
    name = req_name(req)
    try:
        return f"{name}=={md.version(name)}"
    except md.PackageNotFoundError:
        return req.split(";")[0].strip()


def requirements(arch: str, wheel: Path, pyproject: Path, no_deps: bool = False) -> List[str]:
    """Pinned requirement lines for `arch`: those pip resolves, or (`no_deps`) those installed alone."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras: Dict[str, List[str]] = project.get("optional-dependencies", {})
    every_extra = {req_name(r): r for reqs in extras.values() for r in reqs}
    if no_deps:
        return sorted(pinned(every_extra.get(name, name)) for name in NO_DEPS[arch])
    wanted: Dict[str, str] = {}
    if arch == "aarch64":
        for r in wheel_requirements(wheel):
            wanted.setdefault(req_name(r), r)
    for name in TEST_TOOLS[arch]:
        wanted.setdefault(name, every_extra.get(name, name))
    return sorted(pinned(r) for r in wanted.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, choices=["aarch64", "armv7l"])
    parser.add_argument("--wheel", required=True, type=Path)
    parser.add_argument("--pyproject", required=True, type=Path)
    parser.add_argument("--no-deps", action="store_true", help="print the packages installed without deps")
    args = parser.parse_args()
    print("\n".join(requirements(args.arch, args.wheel, args.pyproject, args.no_deps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
