"""Shared test set-up: hypothesis profiles, real-asset fixtures."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci": thorough but bounded. "qemu": the ARM emulation runs (SIMD code is ~75x slower there).
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("qemu", max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
