"""Shared test set-up: hypothesis profiles, real-asset fixtures."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# "ci": thorough but bounded. "qemu": the ARM emulation runs (SIMD code is ~75x slower there).
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("qemu", max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
# "sanitize": the native suites on the ASan/UBSan build (scripts/sanitize.sh; the instrumented kernels are
# slower, so no health check on speed); "sanitize-long" for `SANITIZE_HYPOTHESIS_PROFILE=sanitize-long make sanitize`.
settings.register_profile("sanitize", max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("sanitize-long", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _load_native_from(folder: str) -> None:
    """Use the ``_native`` module built in ``folder`` (the sanitized build) instead of the installed one.

    Set by scripts/sanitize.sh through EDGE_RUNTIME_NATIVE_DIR. Fails loudly when the folder has no such
    module or another one was already imported: a sanitizer run must never test the unsanitized build.
    """
    found = sorted(Path(folder).glob("_native.*.so"))
    if len(found) != 1:
        raise pytest.UsageError(f"EDGE_RUNTIME_NATIVE_DIR={folder}: expected one _native.*.so there, found {found}")
    if "edge_runtime._native" in sys.modules:
        raise pytest.UsageError("EDGE_RUNTIME_NATIVE_DIR: edge_runtime._native was imported before conftest.py")
    import edge_runtime

    spec = importlib.util.spec_from_file_location("edge_runtime._native", found[0])
    module = importlib.util.module_from_spec(spec)
    sys.modules["edge_runtime._native"] = module
    spec.loader.exec_module(module)
    edge_runtime._native = module


if os.environ.get("EDGE_RUNTIME_NATIVE_DIR"):
    _load_native_from(os.environ["EDGE_RUNTIME_NATIVE_DIR"])


@pytest.fixture(autouse=True)
def _restore_cli_logging():
    """``edge_runtime.cli.main`` attaches a stderr handler to the ``edge_runtime`` logger, as a program
    should; in a test that stderr is pytest's capture, closed after the test. Undo it after every test
    so a later test's log record (a server thread finishing, say) is not written to a closed stream."""
    logger = logging.getLogger("edge_runtime")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture(scope="module")
def model_path():
    """The built-in YOLOv8s person detector (fetched and verified once, then cached)."""
    from edge_runtime.assets import ensure

    return ensure("yolov8s-person")
