"""Bounded fuzzing in CI (tests/fuzz): the GGUF reader, the ONNX loader, model metadata, the TOML and YAML
config loader, the chat server's request bodies (the parser, and the real app) and the link protocol.

Each target runs under atheris for FUZZ_SECONDS (default 6) in its own process: an exception other than
the documented ones, or an input slower than 10 s, is a failure whose input is kept in the test's temp
folder. The committed seeds are replayed in-process first. With the model load and atheris's start-up,
about 1.5 min in all. `make fuzz` runs every target for FUZZ_SECONDS=300.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import targets  # noqa: E402  (tests/fuzz is not a package)

sys.path.remove(str(FUZZ))

try:
    import atheris  # noqa: F401
    _ATHERIS = True
except ImportError:
    _ATHERIS = False
if os.environ.get("CI") and not _ATHERIS and platform.machine() == "x86_64":
    pytest.fail("atheris (dev extra) is missing in CI", pytrace=False)
needs_atheris = pytest.mark.skipif(not _ATHERIS, reason="atheris is installed on x86-64 only (its wheels)")

SECONDS = int(os.environ.get("FUZZ_SECONDS", "6"))


def test_seed_corpora_are_what_the_script_writes():
    done = subprocess.run([sys.executable, str(FUZZ / "make_seeds.py"), "--check"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", targets.TARGETS)
def test_seeds_pass_their_target(name):
    t = targets.target(name)
    seeds = sorted((FUZZ / "corpus" / name).iterdir())
    assert len(seeds) >= 2
    for seed in seeds:
        targets.run_one(t, seed.read_bytes())  # anything but a documented refusal fails here


def _fuzz(name: str, tmp_path: Path, *args: str, seconds: int = SECONDS) -> subprocess.CompletedProcess:
    env = {**os.environ, "FUZZ_SECONDS": str(seconds), "FUZZ_TIMEOUT_S": "10", "FUZZ_ARTIFACTS": str(tmp_path)}
    return subprocess.run([sys.executable, str(FUZZ / "run.py"), name, *args], capture_output=True, text=True,
                          env=env, timeout=seconds + 240, cwd=tmp_path)


@needs_atheris
@pytest.mark.slow
@pytest.mark.parametrize("name", targets.TARGETS)
def test_fuzz_target_finds_nothing(name, tmp_path):
    done = _fuzz(name, tmp_path)
    found = sorted(p.name for p in tmp_path.iterdir() if re.match(r"(crash|timeout|oom|leak)-", p.name))
    assert done.returncode == 0 and not found, f"{name}: exit {done.returncode}, {found}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    runs = re.search(r"stat::number_of_executed_units: (\d+)", done.stderr)
    # It ran mutated inputs, not only the seeds (a slow target, such as the chat app with its model, manages a
    # few a second on a loaded 2-core machine, so the bar is the seed count, not a rate).
    seeds = len(list((FUZZ / "corpus" / name).iterdir()))
    assert runs and int(runs.group(1)) > seeds, done.stderr[-2000:]
    assert re.search(r"INITED cov: (\d+)", done.stderr) and int(re.search(r"INITED cov: (\d+)", done.stderr)
                                                                 .group(1)) > 20  # coverage is instrumented


@needs_atheris
@pytest.mark.parametrize("seed, report", [(b"boom", "KeyError"), (b"hang", "timeout")])
def test_the_harness_fails_on_a_crash_and_on_a_hang(tmp_path, seed, report):
    """The canary target raises an undocumented error for b"boom..." and stalls 30 s for b"hang...": both
    must end the run with a non-zero exit and the input saved (the hang within -timeout=2 s)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(seed)
    done = _fuzz("canary", tmp_path, "-timeout=2", str(corpus), seconds=20)
    assert done.returncode != 0
    assert report in done.stdout + done.stderr  # atheris prints the Python traceback on stdout
    kind = "crash" if seed == b"boom" else "timeout"
    saved = [p for p in tmp_path.iterdir() if p.name.startswith(f"{kind}-")]
    assert saved and saved[0].read_bytes() == seed
