"""The native module under AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitize.sh, `make sanitize`).

Builds ``_native`` with ``EDGE_SANITIZE=ON`` into build/sanitize (incremental; about 1.5 min from scratch on
2 cores), proves the sanitizers are armed (each deliberate bug of ``_sanitize_canary`` stops a child
interpreter with its report), then runs the native and hypothesis suites on the sanitized module in a child
process (about 40 s, hypothesis profile "sanitize": 200 examples a property): any finding fails this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sanitize.sh"
CXX = os.environ.get("SANITIZE_CXX", "g++")

pytestmark = pytest.mark.slow


def _runtime(name: str) -> str:
    """Path of a runtime library of the compiler (`g++ -print-file-name`); a bare name when it has none."""
    return subprocess.run([CXX, f"-print-file-name={name}"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def sanitized_dir() -> Path:
    if not Path(_runtime("libasan.so")).is_absolute():
        if os.environ.get("CI"):
            pytest.fail(f"{CXX} has no ASan runtime in CI (libasan comes with Debian's gcc)", pytrace=False)
        pytest.skip(f"{CXX} has no ASan runtime (libasan.so)")
    env = {**os.environ, "VENV": str(Path(sys.executable).parents[1])}
    done = subprocess.run(["bash", str(SCRIPT), "--build"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"sanitized build failed:\n{done.stderr[-4000:]}"
    return Path(done.stdout.strip().splitlines()[-1])


def _sanitized_env(folder: Path) -> dict:
    preload = f"{_runtime('libasan.so')} {os.path.realpath(_runtime('libstdc++.so'))}"
    return {**os.environ, "LD_PRELOAD": preload, "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:exitcode=86",
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87", "PYTHONPATH": str(folder)}


@pytest.mark.parametrize("bug, arg, exit_code, report", [
    ("read_past_end", 5, 86, "heap-buffer-overflow"),
    ("use_after_free", 5, 86, "heap-use-after-free"),
    ("signed_overflow", 1, 87, "signed integer overflow"),
    ("shift_too_far", 40, 87, "shift exponent 40"),
])
def test_sanitizers_stop_a_deliberate_bug(sanitized_dir, bug, arg, exit_code, report):
    code = f"import _sanitize_canary as c; c.{bug}({arg}); print('survived')"
    done = subprocess.run([sys.executable, "-c", code], env=_sanitized_env(sanitized_dir), capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, "survived" in done.stdout) == (exit_code, False), done.stderr[-2000:]
    assert report in done.stderr


def test_sanitizers_pass_a_correct_call(sanitized_dir):
    """The same module without a bug runs to the end: the canary's reports come from the bugs."""
    code = "import _sanitize_canary as c; print(c.signed_overflow(-1), c.shift_too_far(3))"
    done = subprocess.run([sys.executable, "-c", code], env=_sanitized_env(sanitized_dir), capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"{2**31 - 2} 8"), done.stderr[-2000:]


def test_native_suites_are_clean_under_sanitizers(sanitized_dir):
    env = {**os.environ, "VENV": str(Path(sys.executable).parents[1])}
    env.pop("HYPOTHESIS_PROFILE", None)
    done = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"exit {done.returncode}:\n{out[-6000:]}"
    for finding in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert finding not in out, out[-6000:]
    assert " passed" in out and "failed" not in out
