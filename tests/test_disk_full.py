"""The job on a disk that fills up and frees again: counting goes on in memory, the frames wait, and once
space returns the database holds exactly what a run on a roomy disk holds — the camera's outages
reported while the disk was full included.

The pipeline is the real one (vtest.avi, tracker, walkway line, StoreSink); the detector's output is the
frozen detections of the built-in model (``benchmarks/truth/detections``, proven equal to the detector by
tests/test_counting_truth.py), so both runs see the same boxes and the test takes seconds.

The disk is filled twice: a real 1 MiB tmpfs (root and mount rights: CI runs as root, so there a refused
mount fails the test) whose last bytes a filler file takes, and, everywhere, SQLite's own page cap
(``Store.open(max_bytes=...)``, ``PRAGMA max_page_count``) filled by a blob that is deleted later: the
same SQLITE_FULL reaches the store either way.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from benchmarks.frozen import committed_path, load_frozen
from edge_runtime.assets import ensure
from edge_runtime.errors import StoreError
from edge_runtime.runtime.pipeline import FrameResult, Pipeline
from edge_runtime.runtime.sinks import StoreSink
from edge_runtime.runtime.store import Store
from edge_runtime.vision.counting import LineCounter
from edge_runtime.vision.detector import DetectorTimings
from edge_runtime.vision.sources import open_source
from edge_runtime.vision.sources_base import Gap
from edge_runtime.vision.tracking import ByteTracker

pytest.importorskip("cv2", reason="opencv-python-headless has no wheel for this platform (armv7)")

FRAMES = 500


class FrozenDetector:
    """The built-in detector's recorded output, frame by frame (the pipeline reads every frame in order)."""

    class_names = {0: "person", 1: "fallen person"}

    def __init__(self) -> None:
        self.frozen = load_frozen(committed_path("vtest-video"))
        self.timings = DetectorTimings()
        self._next = 0

    def __call__(self, image):
        d = self.frozen.frame(self._next, min_score=0.1)
        self._next += 1
        return d[d.class_id == 0]


class AtFrame:
    """A sink that calls ``action`` once, when frame ``index`` has been through the other sinks."""

    def __init__(self, index: int, action: Callable[[], None]) -> None:
        self.index, self.action = index, action

    def write(self, result: FrameResult, pipeline: Pipeline) -> None:
        if result.frame.index == self.index:
            self.action()

    def close(self, pipeline: Pipeline) -> None:
        pass


class WithGaps:
    """A real source whose frames at the given indices report an outage that ended on them, as a live
    source's first frame after a reconnect does (``Frame.gap``: the last frame's time to this one's);
    ``actions`` run as frame ``index`` is handed to the pipeline (pause, resume, stop it there)."""

    def __init__(self, source: Any, gaps: Dict[int, str], actions: Optional[Dict[int, Callable[[], None]]] = None
                 ) -> None:
        self.source, self.gaps, self.actions = source, gaps, actions or {}
        #: The gaps reported, in order.
        self.reported: List[Gap] = []

    def __enter__(self) -> "WithGaps":
        self.source.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.source.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        last_s = None
        for frame in self.source:
            reason = self.gaps.get(frame.index)
            if reason is not None and last_s is not None:
                gap = Gap(start_s=last_s, end_s=frame.timestamp_s, reason=reason, attempts=frame.index % 5 + 1)
                frame = dataclasses.replace(frame, gap=gap)
                self.reported.append(gap)
            last_s = frame.timestamp_s
            if frame.index in self.actions:
                self.actions[frame.index]()
            yield frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


def run_job(store: Store, extra=()) -> Tuple[StoreSink, Pipeline]:
    run = store.begin_run(source="vtest", class_names={0: "person"})
    sink = StoreSink(store, run, retry_every_s=0.0)
    pipe = Pipeline(open_source(ensure("vtest-video")), FrozenDetector(), tracker=ByteTracker.for_video(10.0),
                    counters=[LineCounter("walkway", (400, 400), (400, 150))], sinks=[sink, *extra])
    pipe.run(max_frames=FRAMES)
    return sink, pipe


def stored(store: Store) -> List[Tuple[int, str, int]]:
    return [(e.frame_index, e.direction, e.track_id) for e in store.events(name="walkway")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Dict[str, object]:
    """The same job on a roomy disk."""
    path = tmp_path_factory.mktemp("ref") / "ref.db"
    with Store.open(path) as store:
        _, pipe = run_job(store)
        out = {"events": stored(store), "totals": {t.direction: t.count for t in store.totals()},
               "checkpoint": store.checkpoint("vtest").frame_index, "lines": pipe.totals().lines}
    assert len(out["events"]) >= 8, out  # the walkway sees crossings in these frames
    return out


def check_full_run(store: Store, reference: Dict[str, object], fill: Callable[[], None],
                   free: Callable[[], None], caplog: pytest.LogCaptureFixture,
                   fill_at: Optional[int] = 60) -> StoreSink:
    """Fill the disk at frame ``fill_at`` (None: before the run begins) and free it at frame 380 (walkway
    crossings at about frames 67 .. 345 fall into the outage). The camera reports an outage on frame 200,
    while the disk is full, and one on frame 420, after."""
    free_at = 380
    seen: Dict[str, object] = {}

    def freeing() -> None:
        seen["healthy"], seen["backlog"] = store.healthy, sink_box[0].backlog_frames
        free()

    def begin() -> int:
        return store.begin_run(source="vtest", class_names={0: "person"})

    sink_box: List[StoreSink] = []
    if fill_at is None:
        fill()
        with pytest.raises(StoreError, match="database or disk is full"):
            begin()
        sink = StoreSink(store, None, retry_every_s=0.0, begin_run=begin)
    else:
        sink = StoreSink(store, begin(), retry_every_s=0.0)
    sink_box.append(sink)
    sinks = [sink, AtFrame(free_at, freeing)] if fill_at is None else [AtFrame(fill_at, fill), sink,
                                                                         AtFrame(free_at, freeing)]
    source = WithGaps(open_source(ensure("vtest-video")), {200: "stream lost", 420: "read timed out after 5.0 s"})
    pipe = Pipeline(source, FrozenDetector(), tracker=ByteTracker.for_video(10.0),
                    counters=[LineCounter("walkway", (400, 400), (400, 150))], sinks=sinks)
    with caplog.at_level(logging.WARNING):
        summary = pipe.run(max_frames=FRAMES)
    # During the outage: writes failed, frames waited in memory, counting went on.
    assert seen["healthy"] is False and seen["backlog"] >= 5, seen
    assert summary.lines == reference["lines"], "counting in memory must not depend on the disk"
    full = [r.getMessage() for r in caplog.records
            if "database or disk is full" in r.getMessage() and r.name == "edge_runtime.store"]
    assert len(full) == 1, full  # once per outage, not once per frame
    assert any("takes writes again" in r.getMessage() for r in caplog.records)
    # After it: the database holds exactly the roomy run's events, totals and resume point.
    assert stored(store) == reference["events"]
    assert {t.direction: t.count for t in store.totals()} == reference["totals"]
    assert store.checkpoint("vtest").frame_index == reference["checkpoint"]
    assert sink.backlog_frames == 0 and sink.lost_events == 0 and sink.unsaved_events >= 5
    # The outage reported while the disk was full waited with the frames, and is stored once, as reported.
    assert [(o.start_s, o.end_s, o.reason, o.attempts, o.run_id) for o in store.outages()] == \
        [(g.start_s, g.end_s, g.reason, g.attempts, sink.run_id) for g in source.reported]
    assert [round(o.end_s * 10) for o in store.outages()] == [200, 420]  # vtest runs at 10 fps
    assert sink.backlog_outages == 0 and sink.lost_outages == 0
    return sink


def test_disk_fills_and_frees_on_a_real_tmpfs(tmp_path: Path, reference, caplog) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    problem = None
    if os.geteuid() != 0:
        problem = "mounting a tmpfs needs root"
    else:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
        if res.returncode != 0:
            problem = f"this platform refuses to mount a tmpfs: {res.stderr.decode().strip()}"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root and must mount the test's tmpfs: {problem}")
        pytest.skip(problem)
    try:
        filler = mnt / "filler.bin"

        def fill() -> None:  # every byte left, as another program filling the card would
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)

        with Store.open(mnt / "r.db") as store:
            check_full_run(store, reference, fill, filler.unlink, caplog)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("when", ["mid-run", "before the run began"])
def test_database_at_its_page_cap_fills_and_frees(tmp_path: Path, reference, caplog, when: str) -> None:
    path = tmp_path / "capped.db"
    with Store.open(path, max_bytes=256 * 1024) as store:
        def fill() -> None:  # blobs up to the cap, the last ones small enough to take every page left
            i = 0
            for size in (16384, 2048, 256):
                while True:
                    try:
                        store.set_meta(f"filler-{i}", "x" * size)
                    except StoreError:
                        break
                    i += 1
            while True:  # and the runs table's pages (a new run row must find none)
                try:
                    store.begin_run(source="filler")
                except StoreError:
                    break
            assert not store.healthy

        def free() -> None:  # another connection deletes them: their pages return to the free list
            with sqlite3.connect(path) as other:
                other.execute("DELETE FROM meta WHERE key LIKE 'filler-%'")
                other.execute("DELETE FROM runs WHERE source = 'filler'")

        check_full_run(store, reference, fill, free, caplog, fill_at=60 if when == "mid-run" else None)


def test_a_backlog_past_its_cap_gives_up_the_oldest_and_says_so(tmp_path: Path, reference, caplog) -> None:
    """With room for only 2 waiting events, the oldest crossings of the outage are given up (counted and
    logged once); the newest are written once space returns, and the totals in memory stay right."""
    path = tmp_path / "capped.db"
    with Store.open(path, max_bytes=256 * 1024) as store:
        run = store.begin_run(source="vtest", class_names={0: "person"})
        sink = StoreSink(store, run, retry_every_s=0.0, max_backlog_events=2)
        i = 0

        def fill() -> None:
            nonlocal i
            for size in (16384, 2048, 256):
                while True:
                    try:
                        store.set_meta(f"filler-{i}", "x" * size)
                    except StoreError:
                        break
                    i += 1

        def free() -> None:
            with sqlite3.connect(path) as other:
                other.execute("DELETE FROM meta WHERE key LIKE 'filler-%'")

        pipe = Pipeline(open_source(ensure("vtest-video")), FrozenDetector(), tracker=ByteTracker.for_video(10.0),
                        counters=[LineCounter("walkway", (400, 400), (400, 150))],
                        sinks=[AtFrame(0, fill), sink, AtFrame(380, free)])
        with caplog.at_level(logging.ERROR):
            summary = pipe.run(max_frames=FRAMES)
        got, want = stored(store), reference["events"]
    assert summary.lines == reference["lines"]
    assert sink.lost_events > 0 and len(got) == len(want) - sink.lost_events
    assert got == want[len(want) - len(got):], "the newest events are kept, in order"
    assert sum("events are waiting for the disk" in r.getMessage() for r in caplog.records) == 1
