"""Run one fuzz target under atheris (coverage-guided, libFuzzer's engine), seeded from its corpus.

    python tests/fuzz/run.py TARGET [libFuzzer flags...]
    python tests/fuzz/run.py gguf -max_total_time=600          # ten minutes on the GGUF reader

Defaults: -max_total_time=$FUZZ_SECONDS (10), -timeout=$FUZZ_TIMEOUT_S (10: an input slower than that is a
hang), -rss_limit_mb=4096, seeds from tests/fuzz/corpus/TARGET (read only; new inputs go to a scratch
folder unless a corpus folder is passed), crash files to $FUZZ_ARTIFACTS (default the current folder).
Exit status 0: no finding. Otherwise libFuzzer's (a crash-* / timeout-* file holds the input).
Replay one input: python tests/fuzz/run.py TARGET crash-1234abcd
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    import atheris

    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    name, flags = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, str(HERE))
    import targets

    t = targets.target(name)
    for module in targets.MODULES.get(name, ()):  # what the target runs, loaded before instrumenting
        importlib.import_module(module)
    # instrument_all, not instrument_imports: the editable install imports edge_runtime through its own
    # loader, which atheris's import hook does not see (coverage would stay at a handful of edges).
    atheris.instrument_all()

    def one(data: bytes) -> None:
        targets.run_one(t, data)

    defaults = {"-max_total_time": os.environ.get("FUZZ_SECONDS", "10"),
                "-timeout": os.environ.get("FUZZ_TIMEOUT_S", "10"), "-rss_limit_mb": "4096",
                "-artifact_prefix": os.environ.get("FUZZ_ARTIFACTS", "./").rstrip("/") + "/",
                "-print_final_stats": "1"}
    given = {f.split("=", 1)[0] for f in flags if f.startswith("-")}
    args = [f"{k}={v}" for k, v in defaults.items() if k not in given] + flags
    inputs = [f for f in flags if not f.startswith("-")]
    if not inputs:  # a fresh scratch corpus seeded from the committed one (which stays untouched)
        scratch = tempfile.mkdtemp(prefix=f"fuzz-{name}-")
        args += [scratch, str(HERE / "corpus" / name)]
    atheris.Setup([sys.argv[0], *args], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
