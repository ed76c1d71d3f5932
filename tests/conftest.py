"""Shared test set-up: hypothesis profiles, real-asset fixtures."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import HealthCheck, settings

# "ci": thorough but bounded. "qemu": the ARM emulation runs (SIMD code is ~75x slower there).
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("qemu", max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


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
