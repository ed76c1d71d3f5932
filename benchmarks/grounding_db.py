"""Make the fixed results database the grounding benchmark asks its questions of.

Six real runs of the built-in detector, tracker and counters on vtest.avi (3 lines, 2 zones), replayed as
if the camera had recorded them at set wall-clock times over two days (UTC): frame timestamps are the
run's start time plus the frame's time in the file. Runs are cut at different lengths so the days differ.
The database is committed (``benchmarks/grounding/vtest_results.db``) with its sha256 in
``benchmarks/grounding/db.json``; expected answers are computed from it by SQL.

Run: ``python -m benchmarks.grounding_db [--out FILE]``  (about 1 minute per run on 2 cores)
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from edge_runtime.runtime.build import build_pipeline
from edge_runtime.runtime.config import config_from_dict

HERE = Path(__file__).resolve().parent / "grounding"
DB_PATH = HERE / "vtest_results.db"
META_PATH = HERE / "db.json"

TODAY = (2026, 5, 4)
#: (day offset, "HH:MM:SS" UTC, frames of vtest.avi processed)
RUNS = [(-1, "07:50:00", 795), (-1, "12:30:00", 500), (-1, "18:05:00", 795),
        (0, "07:58:00", 300), (0, "08:10:00", 795), (0, "09:00:00", 650)]

LINES = [{"name": "walkway", "start": [400, 400], "end": [400, 150]},
         {"name": "left_path", "start": [150, 300], "end": [150, 170]},
         {"name": "mid_diagonal", "start": [470, 420], "end": [560, 170]}]
ZONES = [{"name": "lamp", "polygon": [[340, 215], [460, 215], [460, 290], [340, 290]]},
         {"name": "lawn", "polygon": [[0, 262], [170, 268], [330, 326], [500, 396], [640, 456], [768, 496],
                                      [768, 576], [0, 576]]}]


def run_start_s(day: int, clock: str) -> float:
    h, m, s = (int(x) for x in clock.split(":"))
    return calendar.timegm((TODAY[0], TODAY[1], TODAY[2] + day, h, m, s, 0, 0, 0))


class _Shifted:
    """A frame source whose timestamps are moved by ``offset_s`` (a recording replayed at its time)."""

    def __init__(self, source: Any, offset_s: float) -> None:
        self._source, self._offset = source, offset_s

    def __enter__(self) -> "_Shifted":
        self._source.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._source.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        for frame in self._source:
            yield dataclasses.replace(frame, timestamp_s=frame.timestamp_s + self._offset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def make(out: Path) -> dict:
    if out.exists():
        out.unlink()
    for day, clock, frames in RUNS:
        config = config_from_dict({
            "source": {"uri": "builtin:vtest-video"},
            "model": {"path": "builtin:yolov8s-person", "labels": ["person", "fallen person"], "threads": 2},
            "lines": LINES, "zones": ZONES,
            "output": {"db": str(out), "print_every_s": 0, "max_frames": frames},
        })
        pipeline = build_pipeline(config, restart_source=True, quiet=True)
        pipeline.source = _Shifted(pipeline.source, run_start_s(day, clock))
        summary = pipeline.run(max_frames=frames)
        pipeline.store.close()
        print(f"run {clock} day {day:+d}: {summary.frames} frames, {summary.events} events", file=sys.stderr)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    meta = {"db": out.name, "sha256": digest, "timezone": "UTC", "today": "%04d-%02d-%02d" % TODAY,
            "runs": [{"day": d, "start_utc": c, "frames": f} for d, c, f in RUNS], "lines": LINES, "zones": ZONES}
    return meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DB_PATH)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = make(args.out)
    if args.out == DB_PATH:
        META_PATH.write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps({"db": str(args.out), "sha256": meta["sha256"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
