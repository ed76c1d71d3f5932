"""Run only by scripts/sanitize.sh (named so the normal suite does not collect it): the process under test
really runs the sanitized native module with the ASan runtime loaded, so a clean run means something."""

from __future__ import annotations

import os
from pathlib import Path

import edge_runtime._native as native


def test_the_sanitized_module_is_the_one_imported():
    folder = Path(os.environ["EDGE_RUNTIME_NATIVE_DIR"]).resolve()
    assert Path(native.__file__).resolve().parent == folder


def test_the_asan_runtime_is_loaded():
    maps = Path("/proc/self/maps").read_text()
    assert "libasan" in maps, "LD_PRELOAD did not load the ASan runtime"
    assert "libubsan" in maps, "the sanitized module did not bring the UBSan runtime"
