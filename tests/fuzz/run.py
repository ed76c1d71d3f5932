"""Run one fuzz target under atheris (coverage-guided, libFuzzer's engine), seeded from its corpus.

    python tests/fuzz/run.py TARGET [libFuzzer flags...]
    python tests/fuzz/run.py gguf -max_total_time=600          # ten minutes on the GGUF reader

Defaults: -max_total_time=$FUZZ_SECONDS (10), -timeout=$FUZZ_TIMEOUT_S (10: an input slower than that is a
hang), -rss_limit_mb=4096 (or 2 GB above an RSS inherited from the parent), seeds from tests/fuzz/corpus/TARGET (read only; new inputs go to a scratch
folder unless a corpus folder is passed), crash files to $FUZZ_ARTIFACTS (default the current folder).
Exit status 0: no finding. Otherwise libFuzzer's (a crash-* / timeout-* file holds the input).
Replay one input: python tests/fuzz/run.py TARGET crash-1234abcd
"""

from __future__ import annotations

import importlib
import inspect
import os
import resource
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_limit_mb() -> int:
    """2 GB above what this process started with. libFuzzer reads peak RSS from getrusage, which Linux
    carries across fork + exec: started from a 3 GB pytest, a fixed 4 GB limit would report an "OOM" that
    is the parent's."""
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return max(4096, inherited_mb + 2048)


def _instrument_module(atheris, module, done: set) -> None:
    """Instrument every Python function and method defined in ``module`` (in place, once each)."""
    def visit(obj, depth: int = 0) -> None:
        if id(obj) in done or depth > 3:
            return
        done.add(id(obj))
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if inspect.isfunction(obj) and getattr(obj, "__module__", None) == module.__name__:
            atheris.instrument_func(obj)
        elif inspect.isclass(obj) and obj.__module__ == module.__name__:
            for member in vars(obj).values():
                visit(member, depth + 1)
        elif isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                if f is not None:
                    visit(f, depth + 1)

    for value in list(vars(module).values()):
        visit(value)


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
    # Only the code under test gets coverage instrumentation: edge_runtime, the targets and the pure-Python
    # parsers they drive. (atheris.instrument_imports does not see modules that the editable install
    # loads through its own finder; instrument_all takes half a minute on everything loaded.)
    prefixes = ("edge_runtime", "targets", "tomllib", "yaml", "cobs")
    done = set()
    for mod_name, module in list(sys.modules.items()):
        if module is not None and mod_name.split(".")[0] in prefixes:
            _instrument_module(atheris, module, done)

    def one(data: bytes) -> None:
        targets.run_one(t, data)

    defaults = {"-max_total_time": os.environ.get("FUZZ_SECONDS", "10"),
                "-timeout": os.environ.get("FUZZ_TIMEOUT_S", "10"), "-rss_limit_mb": str(_rss_limit_mb()),
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
