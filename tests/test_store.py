"""The results store: round trips, resume after restart, a real kill -9 of a writing process, readers
while a writer runs, the source's outages, schema migrations and corruption checks, and a disk that
really fills up.

Full disk is tested twice: on a 1 MiB tmpfs mounted for the test (needs root and mount rights; skipped
where the platform refuses the mount, a failure in CI) and, always, with the store's ``max_bytes`` cap, which makes
SQLite fail the same way (SQLITE_FULL) through ``PRAGMA max_page_count``.
"""

from __future__ import annotations

import collections
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.errors import InputError, StoreError
from edge_runtime.runtime.store import SCHEMA_VERSION, Store
from edge_runtime.vision.counting import CountEvent, Direction

REPO = Path(__file__).resolve().parents[1]

# A fixed, seeded sequence of frames: (frame_index, timestamp_s, [event tuples], occupancy). Shared by
# this process and the writer child processes (it is exec'd in both), so both know the truth.
SEQUENCE_SRC = r'''
import random

def make_sequence(n_frames, seed=7):
    rng = random.Random(seed)
    frames = []
    inside = {0: 0, 1: 0}
    for i in range(n_frames):
        events = []
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):
            kind = rng.random()
            cls = rng.choice((0, 0, 1))
            if kind < 0.6:
                events.append((i, i / 10.0, rng.randrange(1, 500), cls, rng.choice(("in", "out")),
                               rng.choice(("walkway", "gate"))))
            elif kind < 0.8 or inside[cls] == 0:
                inside[cls] += 1
                events.append((i, i / 10.0, rng.randrange(1, 500), cls, "enter", "lawn"))
            else:
                inside[cls] -= 1
                events.append((i, i / 10.0, rng.randrange(1, 500), cls, "exit", "lawn"))
        frames.append((i, i / 10.0, events, {"lawn": dict(inside)}))
    return frames
'''

WRITER_SRC = SEQUENCE_SRC + r'''
import sys
from edge_runtime.runtime.store import Store
from edge_runtime.vision.counting import CountEvent, Direction

path, n_frames = sys.argv[1], int(sys.argv[2])
store = Store.open(path)
cp = store.checkpoint("seq.avi")
start = 0 if cp is None else cp.frame_index + 1
run = store.begin_run(source="seq.avi", config_hash="test", class_names={0: "person", 1: "fall"})
print("started", start, flush=True)
for i, ts, events, occ in make_sequence(n_frames)[start:]:
    store.record_frame(run, i, ts, [CountEvent(f, t, tid, c, Direction(d), n) for f, t, tid, c, d, n in events],
                       occupancy=occ)
store.end_run(run)
store.close()
print("done", flush=True)
'''

_ns: Dict[str, object] = {}
exec(SEQUENCE_SRC, _ns)
make_sequence = _ns["make_sequence"]


def as_events(frame_events) -> List[CountEvent]:
    return [CountEvent(f, t, tid, c, Direction(d), n) for f, t, tid, c, d, n in frame_events]


def stored_tuples(store: Store) -> List[tuple]:
    return [(e.frame_index, e.timestamp_s, e.track_id, e.class_id, e.direction, e.name)
            for e in store.events(limit=10**9)]


def sums(events: List[tuple]) -> Dict[Tuple[str, int, str], int]:
    return dict(collections.Counter((e[5], e[3], e[4]) for e in events))


def totals_dict(store: Store) -> Dict[Tuple[str, int, str], int]:
    return {(t.name, t.class_id, t.direction): t.count for t in store.totals()}


def spawn_writer(path: Path, n_frames: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SRC, str(path), str(n_frames)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("started"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


# -- round trip ----------------------------------------------------------------------------------------
def test_round_trip_events_totals_counts_checkpoint(tmp_path: Path) -> None:
    seq = make_sequence(300)
    with Store.open(tmp_path / "r.db", interval_s=10.0) as store:
        run = store.begin_run(source="seq.avi", config_hash="abc", class_names={0: "person", 1: "fall"})
        for i, ts, events, occ in seq:
            store.record_frame(run, i, ts, as_events(events), occupancy=occ)
        store.end_run(run)
        truth = [e for f in seq for e in f[2]]
        assert stored_tuples(store) == truth
        assert totals_dict(store) == sums(truth)
        names = {t.class_id: t.class_name for t in store.totals()}
        assert names == {0: "person", 1: "fall"}
        assert {t.name: t.kind for t in store.totals()} == {"walkway": "line", "gate": "line", "lawn": "zone"}
        # Buckets: 300 frames at 10 fps = 30 s = three 10 s buckets.
        buckets = store.counts()
        assert sorted({b.start_s for b in buckets}) == [0.0, 10.0, 20.0]
        for b in buckets:
            inside = [e for e in truth
                      if e[5] == b.name and e[3] == b.class_id and b.start_s <= e[1] < b.start_s + 10]
            assert b.in_count == sum(e[4] in ("in", "enter") for e in inside)
            assert b.out_count == sum(e[4] in ("out", "exit") for e in inside)
        for start in (0.0, 10.0, 20.0):
            frames = [f for f in seq if start <= f[1] < start + 10]
            for cls in (0, 1):
                occ = [f[3]["lawn"].get(cls, 0) for f in frames]
                row = [b for b in buckets if b.name == "lawn" and b.class_id == cls and b.start_s == start]
                if max(occ) == 0:
                    assert not row or (row[0].occupancy_max, row[0].occupancy_last) == (0, 0)
                else:
                    assert (row[0].occupancy_max, row[0].occupancy_last) == (max(occ), occ[-1])
        cp = store.checkpoint("seq.avi")
        assert (cp.frame_index, cp.timestamp_s, cp.run_id) == (299, 29.9, run)
        # Queries the chat grounding uses.
        assert store.now_s() == pytest.approx(29.9)
        recent = store.recent_events(5.0)
        assert [(e.frame_index, e.name) for e in recent] == [(e[0], e[5]) for e in truth if e[1] > 29.9 - 5.0]
        walkway_in = store.events(name="walkway", direction="in", class_id=0)
        assert len(walkway_in) == sum(1 for e in truth if e[5] == "walkway" and e[4] == "in" and e[3] == 0)
        assert store.event_counts(since_s=10.0, until_s=20.0) == sums([e for e in truth if 10.0 < e[1] <= 20.0])
        last = store.last_event_times()
        for key in sums(truth):
            assert last[key] == max(e[1] for e in truth if (e[5], e[3], e[4]) == key)
        assert store.runs()[0]["ended_at"] is not None and store.runs()[0]["config_hash"] == "abc"


def test_restart_resumes_totals(tmp_path: Path) -> None:
    seq = make_sequence(400)
    path = tmp_path / "r.db"
    with Store.open(path) as store:
        run = store.begin_run(source="cam")
        for i, ts, events, occ in seq[:200]:
            store.record_frame(run, i, ts, as_events(events))
    # A new process, a new run, the same line and zone names: totals continue from where they were.
    with Store.open(path) as store:
        assert store.checkpoint("cam").frame_index == 199
        assert totals_dict(store) == sums([e for f in seq[:200] for e in f[2]])
        run2 = store.begin_run(source="cam")
        for i, ts, events, occ in seq[200:]:
            store.record_frame(run2, i, ts, as_events(events))
        assert totals_dict(store) == sums([e for f in seq for e in f[2]])
        assert len(store.runs()) == 2
        assert len(store.events(run_id=run2, limit=10**9)) == sum(len(f[2]) for f in seq[200:])


def test_event_less_frames_defer_the_checkpoint_but_never_lose_events(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = Store.open(path, checkpoint_every_s=3600)
    run = store.begin_run(source="cam")
    assert store.record_frame(run, 0, 0.0)  # first frame: written
    assert not store.record_frame(run, 1, 0.1)  # nothing new: deferred
    assert not store.record_frame(run, 2, 0.2)
    assert store.record_frame(run, 3, 0.3, as_events([(3, 0.3, 5, 0, "in", "door")]))  # events: written now
    assert not store.record_frame(run, 4, 0.4)
    other = Store.open(path, readonly=True)
    assert other.checkpoint("cam").frame_index == 3 and len(other.events()) == 1
    store.close()  # writes the deferred checkpoint
    assert other.checkpoint("cam").frame_index == 4
    other.close()
    always = Store.open(tmp_path / "b.db", checkpoint_every_s=0)
    run = always.begin_run(source="cam")
    assert all(always.record_frame(run, i, i * 0.1) for i in range(5))
    always.close()


def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with Store.open(tmp_path / "r.db") as store:
        run = store.begin_run(source="cam")
        store.record_frame(run, 5, 0.5)
        with pytest.raises(InputError, match="must increase"):
            store.record_frame(run, 5, 0.5)
        bad = [
            CountEvent(6, 0.6, 1, 0, "sideways", "door"),  # type: ignore[arg-type]
            CountEvent(6, 0.6, 1, 0, Direction.IN, ""),
            CountEvent(7, 0.6, 1, 0, Direction.IN, "door"),
            CountEvent(6, float("nan"), 1, 0, Direction.IN, "door"),
            CountEvent(6, 0.6, -1, 0, Direction.IN, "door"),
            "not an event",
        ]
        for ev in bad:
            with pytest.raises(InputError, match="frame 6"):
                store.record_frame(run, 6, 0.6, [CountEvent(6, 0.6, 2, 0, Direction.IN, "door"), ev])
        with pytest.raises(InputError, match="no run 99"):
            store.record_frame(99, 0, 0.0)
        with pytest.raises(InputError, match="finite"):
            store.record_frame(run, 6, float("inf"))
        store.record_frame(run, 6, 0.6, [CountEvent(6, None, 2, 0, Direction.IN, "door")])  # None = frame's time
        assert stored_tuples(store) == [(6, 0.6, 2, 0, "in", "door")]
    with pytest.raises(InputError):
        Store.open(tmp_path / "x.db", interval_s=0)


# -- crash safety --------------------------------------------------------------------------------------
def test_kill_9_mid_run_leaves_an_exact_prefix_and_resume_completes(tmp_path: Path) -> None:
    """A real writer process, SIGKILLed at random moments; each restart resumes from the checkpoint."""
    n = 6000
    seq = make_sequence(n)
    truth = [e for f in seq for e in f[2]]
    path = tmp_path / "crash.db"
    rng = random.Random(int(time.time()))
    kills = 0
    for attempt in range(12):
        proc = spawn_writer(path, n)
        # Until the first kill lands, kill sooner: an idle machine can write all frames in a few tenths.
        time.sleep(rng.uniform(0.02, 0.25) if kills == 0 else rng.uniform(0.05, 0.6))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(30)
        with Store.open(path, readonly=True) as store:
            cp = store.checkpoint("seq.avi")
            last = -1 if cp is None else cp.frame_index  # None: killed before its first commit
            stored = stored_tuples(store)
            # Exactly the events of frames 0..checkpoint, each once, in order: no frame half-written.
            assert stored == [e for e in truth if e[0] <= last], f"after kill {kills}"
            assert totals_dict(store) == sums(stored)
            by_bucket = collections.Counter()
            for b in store.counts():
                by_bucket[(b.name, b.class_id, "in")] += b.in_count
                by_bucket[(b.name, b.class_id, "out")] += b.out_count
            from_events = collections.Counter()
            for e in stored:
                from_events[(e[5], e[3], "in" if e[4] in ("in", "enter") else "out")] += 1
            assert +by_bucket == +from_events
        if proc.returncode == 0:
            if kills == 0:  # finished before any kill: start over on a fresh file
                for leftover in tmp_path.glob("crash.db*"):
                    leftover.unlink()
                continue
            break
    assert kills >= 1, "the writer finished before any kill; the test proved nothing"
    if proc.returncode != 0:  # finish the sequence without killing
        proc = spawn_writer(path, n)
        assert proc.wait(120) == 0, proc.stderr.read()
    with Store.open(path, readonly=True) as store:
        assert stored_tuples(store) == truth
        assert totals_dict(store) == sums(truth)
        assert store.checkpoint("seq.avi").frame_index == n - 1


def test_wal_mode_files_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = Store.open(path)
    run = store.begin_run(source="cam")
    store.record_frame(run, 0, 0.0, as_events([(0, 0.0, 1, 0, "in", "door")]))
    assert Path(str(path) + "-wal").exists() and Path(str(path) + "-shm").exists()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()


def test_readers_see_consistent_snapshots_while_a_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    with Store.open(path):
        pass  # create the schema before the reader opens it
    proc = spawn_writer(path, 3000)
    reader = Store.open(path, readonly=True)
    raw = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    seen = set()
    try:
        while proc.poll() is None:
            raw.execute("BEGIN")
            total = raw.execute("SELECT coalesce(sum(count), 0) FROM totals").fetchone()[0]
            events = raw.execute("SELECT count(*) FROM events").fetchone()[0]
            last = raw.execute("SELECT coalesce(max(frame_index), -1) FROM events").fetchone()[0]
            cp = raw.execute("SELECT coalesce(max(frame_index), -1) FROM checkpoints").fetchone()[0]
            raw.execute("COMMIT")
            assert total == events and cp >= last  # totals and checkpoint move with the events
            seen.add(events)
            reader.totals()
            reader.recent_events(10.0)
            time.sleep(0.01)
    finally:
        raw.close()
        reader.close()
    assert proc.wait(60) == 0, proc.stderr.read()
    assert len(seen) >= 3, f"the reader saw only {sorted(seen)}: it did not read while the writer wrote"


# -- what is not ours, not sane, or not writable --------------------------------------------------------
def test_not_sqlite_corrupt_foreign_and_newer_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("this is a text file, not a database\n" * 20)
    with pytest.raises(StoreError, match="notes.db.*not an SQLite database"):
        Store.open(text)

    foreign = tmp_path / "foreign.db"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="foreign.db.*another application"):
        Store.open(foreign)

    newer = tmp_path / "newer.db"
    Store.open(newer).close()
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match=f"newer.db.*newer edge-runtime.*v{SCHEMA_VERSION + 1}"):
        Store.open(newer)

    damaged = tmp_path / "damaged.db"
    with Store.open(damaged) as store:
        run = store.begin_run(source="cam")
        for i, ts, events, occ in make_sequence(2000):
            store.record_frame(run, i, ts, as_events(events))
    size = damaged.stat().st_size
    assert size > 16 * 4096
    with open(damaged, "r+b") as f:  # overwrite pages in the middle of the file with noise
        f.seek(size // 2 - 4096 * 4)
        f.write(os.urandom(4096 * 8))
    with pytest.raises(StoreError, match="damaged.db.*corrupt"):
        Store.open(damaged, verify=True)
    with pytest.raises(StoreError, match="damaged.db"):  # without verify: the first query that reads it
        with Store.open(damaged) as store:
            store.events(limit=10**9)
            store.counts()
            store.totals()

    empty = tmp_path / "empty.db"
    empty.touch()  # a zero-byte file is an empty SQLite database: gets the schema
    with Store.open(empty) as store:
        assert store.totals() == []
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)
    with pytest.raises(StoreError, match="no such results database"):
        Store.open(tmp_path / "missing.db", readonly=True)


def test_readonly_store_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    Store.open(path).close()
    with Store.open(path, readonly=True) as store:
        with pytest.raises(StoreError, match="read-only"):
            store.begin_run(source="cam")
        assert store.healthy


def _fill_until_full(store: Store, run: int, start: int) -> Tuple[int, StoreError]:
    for i in range(start, start + 10**6):
        events = [CountEvent(i, i / 10, t, 0, Direction.IN, "walkway-" + "x" * 200) for t in range(8)]
        try:
            store.record_frame(run, i, i / 10, events)
        except StoreError as exc:
            return i, exc
    raise AssertionError("the disk never filled")


def _check_full_then_recover(store: Store, path: Path, free_space, consistent_totals: bool = True) -> None:
    run = store.begin_run(source="cam")
    failed_at, exc = _fill_until_full(store, run, 0)
    assert "database or disk is full" in str(exc) and str(path) in str(exc)
    assert not store.healthy and not store.retry()
    # What was committed is intact and consistent; the failed frame left nothing behind.
    stored = stored_tuples(store)
    assert stored and stored[-1][0] == failed_at - 1
    assert totals_dict(store) == sums(stored)
    free_space()
    assert store.retry() and store.healthy
    store.record_frame(run, failed_at, failed_at / 10,
                       [CountEvent(failed_at, None, 1, 0, Direction.OUT, "walkway")])
    assert store.checkpoint("cam").frame_index == failed_at
    if consistent_totals:  # (pruning keeps totals but drops the events they summed)
        assert totals_dict(store) == sums(stored_tuples(store))


def test_full_disk_on_a_real_tiny_filesystem(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
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
        if os.environ.get("CI"):  # CI runs as root on a machine that mounts tmpfs
            pytest.fail(f"CI must be able to mount the test's tmpfs: {problem}")
        pytest.skip(problem)
    try:
        filler = mnt / "filler.bin"
        filler.write_bytes(b"\0" * 256 * 1024)
        path = mnt / "r.db"
        store = Store.open(path)
        with caplog.at_level("ERROR", logger="edge_runtime.store"):
            _check_full_then_recover(store, path, free_space=filler.unlink)
        assert any("database or disk is full" in r.message for r in caplog.records)
        assert sum("database or disk is full" in r.message for r in caplog.records) == 1  # once, not per frame
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_database_at_its_size_cap_and_pruning_makes_room(tmp_path: Path) -> None:
    path = tmp_path / "capped.db"
    store = Store.open(path, max_bytes=256 * 1024)
    holder: Dict[str, int] = {}

    def prune_old() -> None:  # a device's retention policy: drop old events, keep the running totals
        totals_before = totals_dict(store)
        holder["deleted"] = store.prune(before_s=5.0)
        assert totals_dict(store) == totals_before

    _check_full_then_recover(store, path, free_space=prune_old, consistent_totals=False)
    assert holder["deleted"] > 0
    # Every event before the cut is gone; the frame written after the prune (the one the full database
    # refused, a few frames earlier or later as the schema's own pages change) is kept wherever it lies.
    refused = store.checkpoint("cam").frame_index
    assert all(e[1] >= 5.0 or e[0] == refused for e in stored_tuples(store))
    assert path.stat().st_size <= 256 * 1024
    store.close()


# -- property: any sequence, any interval ----------------------------------------------------------------
_event = st.tuples(st.integers(0, 1000), st.integers(0, 3), st.sampled_from(["in", "out", "enter", "exit"]),
                   st.sampled_from(["a", "b", "zone ü"]))


@given(frames=st.lists(st.tuples(st.floats(-1e6, 1e9, allow_nan=False), st.lists(_event, max_size=4)),
                       max_size=25),
       interval=st.sampled_from([0.5, 1.0, 10.0, 3600.0]))
def test_totals_and_buckets_match_the_events_for_any_sequence(tmp_path_factory, frames, interval) -> None:
    path = tmp_path_factory.mktemp("prop") / "p.db"
    truth = []
    with Store.open(path, interval_s=interval) as store:
        run = store.begin_run(source="s")
        for i, (ts, events) in enumerate(frames):
            evs = [CountEvent(i, ts, tid, c, Direction(d), n) for tid, c, d, n in events]
            store.record_frame(run, i, ts, evs)
            truth += [(i, ts, tid, c, d, n) for tid, c, d, n in events]
        assert totals_dict(store) == sums(truth)
        def order(e: tuple) -> tuple:
            return (e[1], e[0])

        assert sorted(stored_tuples(store), key=order) == sorted(truth, key=order)
        expected = collections.Counter()
        for _, ts, _, c, d, n in truth:
            start = math.floor(ts / interval) * interval  # buckets are [k * interval, (k + 1) * interval)
            expected[(start, n, c, d in ("in", "enter"))] += 1
        got = collections.Counter()
        for b in store.counts():
            got[(b.start_s, b.name, b.class_id, True)] += b.in_count
            got[(b.start_s, b.name, b.class_id, False)] += b.out_count
        assert +got == +expected


def test_a_version_1_database_is_read_as_is_and_migrated_when_opened_for_writing(tmp_path):
    import sqlite3

    from edge_runtime.runtime.store_schema import APPLICATION_ID, SCHEMA_V1

    path = tmp_path / "v1.db"
    raw = sqlite3.connect(path)
    for sql in SCHEMA_V1:
        raw.execute(sql)
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with Store.open(path, readonly=True) as ro:  # a reader never changes the file
        assert ro.readings() == [] and ro.totals() == []
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
    with Store.open(path) as rw:
        rw.add_reading("door-1", "door_open", 1.0, timestamp_s=1000.0)
        assert rw.readings("door_open") == [("door-1", "door_open", 1.0, 1000.0)]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_a_version_2_database_is_read_as_is_and_migrated_to_3_keeping_its_data(tmp_path):
    """A file the previous version made (schema v2: v1 plus readings) with a run, events, totals and a
    reading: a reader sees it all and no outages, without changing it; a writer adds the outages table and
    keeps everything else."""
    import sqlite3

    from edge_runtime.runtime.store_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_V1

    path = tmp_path / "v2.db"
    raw = sqlite3.connect(path)
    for sql in SCHEMA_V1 + MIGRATIONS[1]:  # what edge-runtime with schema v2 created
        raw.execute(sql)
    raw.execute("INSERT INTO runs (id, started_at, ended_at, config_hash, source, class_names) VALUES "
                "(1, 900.0, 1200.0, 'abc', 'rtsp://cam', '{\"0\": \"person\"}')")
    raw.execute("INSERT INTO events (run_id, frame_index, timestamp_s, track_id, class_id, class_name, kind, "
                "direction, name, recorded_at) VALUES (1, 7, 1000.5, 3, 0, 'person', 'line', 'in', 'walkway', 1.0)")
    raw.execute("INSERT INTO totals VALUES ('walkway', 0, 'in', 'line', 'person', 1, 1000.5)")
    raw.execute("INSERT INTO readings (node, name, value, timestamp_s) VALUES ('door-1', 'door_open', 1.0, 1000.0)")
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 2")
    raw.commit()
    raw.close()
    with Store.open(path, readonly=True) as ro:
        assert ro.outages() == [] and ro.outage_seconds(0, 2000) == 0.0
        assert [(e.frame_index, e.name) for e in ro.events()] == [(7, "walkway")]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
    with Store.open(path) as rw:
        assert [(t.name, t.count) for t in rw.totals()] == [("walkway", 1)]
        assert rw.readings("door_open") == [("door-1", "door_open", 1.0, 1000.0)]
        assert [(r["id"], r["source"], r["ended_at"]) for r in rw.runs()] == [(1, "rtsp://cam", 1200.0)]
        rw.add_outage(1, 1010.0, 1050.0, "stream lost", 2)
        assert [(o.run_id, o.source, o.start_s) for o in rw.outages()] == [(1, "rtsp://cam", 1010.0)]
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert raw.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outages'").fetchall() \
        == [("outages_by_start",)]
    raw.close()


# -- outages of the source ---------------------------------------------------------------------------------
def test_an_outage_is_stored_as_reported_and_found_by_any_window_it_overlaps(tmp_path: Path) -> None:
    import sqlite3

    with Store.open(tmp_path / "o.db") as store:
        run = store.begin_run(source="rtsp://cam/1")
        before = time.time()
        store.add_outage(run, 1000.0, 1600.0, "read timed out after 5.0 s", 4)  # 10 min
        store.add_outage(run, 1500.0, 1700.0, "stream lost", 1)  # overlaps the first by 100 s
        store.add_outage(run, 3000.0, 3030.0, "stream ended", 0)
        raw = sqlite3.connect(tmp_path / "o.db").execute(
            "SELECT run_id, source, start_s, end_s, reason, attempts, recorded_at FROM outages ORDER BY id").fetchall()
        assert raw[0][:6] == (run, "rtsp://cam/1", 1000.0, 1600.0, "read timed out after 5.0 s", 4)
        assert before <= raw[0][6] <= time.time()
        first = store.outages()[0]
        assert (first.reason, first.attempts, first.duration_s) == ("read timed out after 5.0 s", 4, 600.0)

        def starts(since, until):
            return [o.start_s for o in store.outages(since, until)]

        assert starts(None, None) == [1000.0, 1500.0, 3000.0]  # oldest first
        assert starts(1200.0, 1300.0) == [1000.0]  # a window inside an outage
        assert starts(1650.0, 3000.0) == [1500.0]  # touching at the end: 3000 is not inside (.., 3000)
        assert starts(1700.0, 2999.0) == []  # between outages
        assert starts(None, 1000.0) == [] and starts(3030.0, None) == []
        assert starts(2000.0, None) == [3000.0]
        # Seconds without video in a window: clipped to it, the overlap of the first two counted once.
        assert store.outage_seconds(None, None) == 700.0 + 30.0
        assert store.outage_seconds(1200.0, 1300.0) == 100.0
        assert store.outage_seconds(900.0, 1100.0) == 100.0
        assert store.outage_seconds(1550.0, 3010.0) == 150.0 + 10.0
        assert store.outage_seconds(1700.0, 3000.0) == 0.0
        # Retention drops outages that ended before the cut, like the events.
        store.prune(before_s=2000.0)
        assert starts(None, None) == [3000.0]


def test_bad_outages_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with Store.open(tmp_path / "o.db") as store:
        run = store.begin_run(source="cam")
        for args, match in [((run, 10.0, 5.0, "x", 1), "start_s <= end_s"), ((run, math.nan, 5.0, "x", 1), "finite"),
                            ((run, 0.0, math.inf, "x", 1), "finite"), ((run, 0.0, 1.0, "x", -1), "attempts"),
                            ((run, 0.0, 1.0, "x", 1.5), "attempts"), ((run + 1, 0.0, 1.0, "x", 1), "no run")]:
            with pytest.raises(InputError, match=match):
                store.add_outage(*args)
        assert store.outages() == [] and store.healthy
    with Store.open(tmp_path / "o.db", readonly=True) as ro:
        with pytest.raises(StoreError, match="read-only"):
            ro.add_outage(run, 0.0, 1.0, "stream lost", 1)


def test_a_corrupt_database_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    from types import SimpleNamespace

    path = tmp_path / "counts.db"
    with Store.open(path, checkpoint_every_s=0) as s:
        run = s.begin_run(source="cam", places={"walkway": "line"})
        for f in range(300):
            ev = SimpleNamespace(name="walkway", timestamp_s=float(f), class_id=0, direction="in", frame_index=f,
                                 track_id=f)
            s.record_frame(run, f, float(f), [ev])
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    data[2 * 4096:3 * 4096] = b"\xa5" * 4096  # a page of garbage, as a bad SD card gives
    path.write_bytes(bytes(data))
    with caplog.at_level("ERROR", logger="edge_runtime.store"):
        healed = Store.open_or_heal(path)
    try:
        assert healed.totals() == [] and healed.healthy
        aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
        assert len(aside) == 1 and aside[0].read_bytes() == bytes(data)
        assert "moved it to" in caplog.text and "corrupt" in caplog.text
    finally:
        healed.close()


def test_heal_never_moves_a_file_it_does_not_own(tmp_path):
    import sqlite3

    other = tmp_path / "other.db"
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE notes (x)")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="another application"):
        Store.open_or_heal(other)
    assert other.exists() and not list(tmp_path.glob("*.corrupt-*"))
