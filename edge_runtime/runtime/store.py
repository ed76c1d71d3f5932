"""Crash-safe results store: counting events, running totals, per-interval counts, resume points and
the source's outages.

One SQLite file (stdlib ``sqlite3``) in WAL mode. Each processed frame that produced something is one
transaction: its events, the totals they change, their interval buckets and the source's checkpoint are
committed together or not at all, so totals always equal the sum of the stored events and a restart
resumes exactly after the last committed frame.

Durability, and why ``synchronous=NORMAL`` is enough: in WAL mode a COMMIT appends the transaction's
pages to the ``-wal`` file with write(2) before it returns; NORMAL skips only the fsync of that append
(the WAL is fsynced at each checkpoint). A process crash — ``kill -9``, an OOM kill, a segfault — leaves
the appended pages in the OS page cache, and the next open replays them: nothing committed is lost.
Losing power or the kernel can lose the transactions since the last WAL fsync, but never corrupts the
database (https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html).
FULL would fsync every frame: milliseconds each on an SD card, and flash wear for no gain against the
failure we expect on a board (the process dying, not the power).

Flash wear is also why a frame with no event and no change of zone occupancy is not written at once:
its checkpoint is folded into the next write, at most ``checkpoint_every_s`` later. A restart may then
re-read up to that many seconds of frames in which nothing was counted — nothing is lost or doubled.

Outages: a live source that loses its stream reports how long it delivered nothing (``Frame.gap``);
:class:`~edge_runtime.runtime.sinks.StoreSink` stores each one (:meth:`Store.add_outage`), so whoever reads
the counts of a window can tell a quiet hour from a camera that was down (:meth:`Store.outages`,
:meth:`Store.outage_seconds`).

Clocks: ``timestamp_s`` is the source clock (seconds into a file, Unix time for live sources); interval
buckets and "the last N seconds" use it, so a replayed file answers in video time. ``recorded_at`` and
run start/end are Unix time.

Example::

    store = Store.open("edge-runtime.db")
    run = store.begin_run(source="walkway.avi", config_hash="3f2a...", class_names={0: "person"})
    for frame in frames:
        events = line.update(dets, frame_index=frame.index, timestamp_s=frame.timestamp_s)
        store.record_frame(run, frame.index, frame.timestamp_s, events, occupancy={"door": zone.occupancy})
    store.end_run(run)
    print(store.totals())
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import InputError, StoreCorruptError, StoreError
from .store_schema import (SCHEMA_VERSION, Bucket, Checkpoint, Outage, StoredEvent, Total, check_header,
                           clipped_seconds, prepare_schema)

__all__ = ["Store", "StoredEvent", "Total", "Bucket", "Checkpoint", "Outage", "SCHEMA_VERSION"]

log = logging.getLogger("edge_runtime.store")

_DIRECTIONS = {"in": "line", "out": "line", "enter": "zone", "exit": "zone"}
_MAX_NAME = 256
_MAX_REASON = 1000  # characters of an outage's reason kept


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorname", "")
    return code == "SQLITE_FULL" or "database or disk is full" in str(exc)


class Store:
    """The results database. Use :meth:`open`; one writer process per file, any number of readers.

    Thread-safe (one connection behind a lock), so the pipeline can write while the chat server reads.

    Attributes:
        path: the database file.
        healthy: False after a failed write (full disk, I/O error) until :meth:`retry` succeeds.
        interval_s: width of the count buckets written by this store.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool, interval_s: float,
                 checkpoint_every_s: float) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        self.interval_s = interval_s
        self.checkpoint_every_s = checkpoint_every_s
        self.healthy = True
        self._lock = threading.RLock()
        self._runs: Dict[int, Tuple[str, Dict[int, str]]] = {}  # run id -> (source, class names)
        self._last_frame: Dict[int, int] = {}  # run id -> last frame recorded (written or not)
        self._pending: Dict[int, Tuple[int, float]] = {}  # run id -> checkpoint not written yet
        self._written_at: Dict[int, float] = {}  # run id -> monotonic time of its last commit
        self._occupancy: Dict[Tuple[int, str], Tuple[float, Dict[int, int]]] = {}  # last written

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Union[str, Path], *, readonly: bool = False, interval_s: float = 10.0,
             checkpoint_every_s: float = 1.0, max_bytes: Optional[int] = None, verify: Union[bool, str] = False,
             busy_timeout_s: float = 5.0) -> "Store":
        """Open (or create) a results database and check that it is one we can use.

        Args:
            path: the SQLite file; created with its schema if missing (unless ``readonly``).
            readonly: open for queries only (another process may be writing).
            interval_s: width of the per-interval count buckets (seconds of source time).
            checkpoint_every_s: longest delay before an event-less frame's checkpoint is written.
            max_bytes: cap on the database file (a flash budget); reaching it fails writes exactly as a
                full disk does (``PRAGMA max_page_count``; the WAL is bounded separately, 16 MB).
            verify: run ``PRAGMA quick_check`` (True) or the full ``integrity_check`` ("full"); both read the
                whole file (seconds for a large one on a Pi). A failure raises StoreCorruptError.
            busy_timeout_s: how long a write waits for another connection's lock.

        Raises:
            StoreError: not SQLite, corrupt, another application's database, a newer schema, or the
                file can't be opened or created. The message names the file.
            InputError: on an argument out of range.
        """
        path = Path(path)
        if not (0 < interval_s <= 86_400 and math.isfinite(interval_s)):
            raise InputError(f"Store.open: interval_s must be in (0, 86400], got {interval_s!r}")
        if not (0 <= checkpoint_every_s <= 3600):
            raise InputError(f"Store.open: checkpoint_every_s must be in [0, 3600], got {checkpoint_every_s!r}")
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)
                                      or max_bytes < 65536):
            raise InputError(f"Store.open: max_bytes must be an integer >= 65536 or None, got {max_bytes!r}")
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, expected a database file")
        if readonly and not path.exists():
            raise StoreError(f"{path}: no such results database")
        check_header(path)
        try:
            if readonly:
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                       check_same_thread=False, timeout=busy_timeout_s)
            else:
                conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                       timeout=busy_timeout_s)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the results database: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if not readonly:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{path}: the filesystem does not support SQLite's WAL mode (got "
                                     f"journal_mode={mode}); put the database on a local disk")
                conn.execute("PRAGMA synchronous = NORMAL")  # see the module docstring
                conn.execute("PRAGMA journal_size_limit = 16777216")  # truncate the WAL to 16 MB after checkpoints
            conn.execute("PRAGMA foreign_keys = ON")
            prepare_schema(conn, path, writable=not readonly)
            if max_bytes is not None:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size)}")
            if verify:
                check = "integrity_check" if verify == "full" else "quick_check"
                problems = [r[0] for r in conn.execute(f"PRAGMA {check}(5)")]
                if problems != ["ok"]:
                    raise StoreCorruptError(f"{path}: the database is corrupt: {'; '.join(problems)}")
        except StoreError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreCorruptError(f"{path}: not a usable results database: {exc}") from exc
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{path}: not a usable results database: {exc}") from exc
        return cls(conn, path, readonly=readonly, interval_s=float(interval_s),
                   checkpoint_every_s=float(checkpoint_every_s))

    @classmethod
    def open_or_heal(cls, path: Union[str, Path], **kwargs: Any) -> "Store":
        """Open for writing after a full ``PRAGMA integrity_check``; a damaged database is moved aside (to
        ``NAME.corrupt-YYYYmmdd-HHMMSS``, with its ``-wal``/``-shm``) with an error logged, and a fresh one is
        started — a job restarted by systemd never loops on the same broken file.

        Only damage is healed: another application's file, a newer schema or an unreadable path still raise
        :class:`StoreError` (nothing is moved).
        """
        path = Path(path)
        try:
            return cls.open(path, verify="full", **kwargs)
        except StoreCorruptError as exc:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = path.with_name(f"{path.name}.corrupt-{stamp}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(path) + suffix)
                if part.exists():
                    part.rename(Path(str(aside) + suffix))
            log.error("%s; moved it to %s and started a fresh database (totals start again from zero; the old "
                      "file is kept for recovery)", exc, aside)
            return cls.open(path, **kwargs)

    def close(self) -> None:
        """Write any pending checkpoint and close. Safe to call twice."""
        with self._lock:
            if self._conn is None:
                return
            try:
                if not self.readonly and self.healthy:
                    self.flush()
            finally:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------
    def begin_run(self, *, source: str, config_hash: str = "", class_names: Optional[Mapping[int, str]] = None,
                  started_at: Optional[float] = None, places: Optional[Mapping[str, str]] = None) -> int:
        """Record the start of a run and return its id.

        Args:
            source: the source key checkpoints are kept under (a file's path, a camera's URL).
            config_hash: digest of the run's configuration.
            class_names: {class_id: name} for the events' ``class_name``.
            started_at: Unix time (default: now).
            places: the run's lines and zones, {name: "line" | "zone"}; kept (merged over runs) so questions
                about a place that has no events yet are answered with 0, not "unknown".

        Raises:
            StoreError: write failed (see :meth:`record_frame`).
        """
        names = {int(k): str(v) for k, v in (class_names or {}).items()}
        if not isinstance(source, str) or not source:
            raise InputError(f"Store.begin_run: source must be a non-empty string, got {source!r}")
        started = time.time() if started_at is None else float(started_at)
        kinds = {str(k): str(v) for k, v in (places or {}).items()}
        if any(v not in ("line", "zone") for v in kinds.values()):
            raise InputError(f"Store.begin_run: places must map names to 'line' or 'zone', got {kinds!r}")

        def start(c: sqlite3.Connection) -> sqlite3.Cursor:
            if kinds:
                row = c.execute("SELECT value FROM meta WHERE key = 'places'").fetchone()
                known = json.loads(row[0]) if row else {}
                known.update(kinds)
                c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('places', ?)",
                          (json.dumps(known, sort_keys=True),))
            return c.execute("INSERT INTO runs (started_at, config_hash, source, class_names) VALUES (?, ?, ?, ?)",
                             (started, str(config_hash), source, json.dumps(names)))

        with self._lock:
            cur = self._write(start, "starting a run")
            run_id = int(cur.lastrowid)
            self._runs[run_id] = (source, names)
            return run_id

    def end_run(self, run_id: int, *, ended_at: Optional[float] = None) -> None:
        """Write the pending checkpoint and mark the run as ended cleanly."""
        ended = time.time() if ended_at is None else float(ended_at)
        with self._lock:
            self._source(run_id)
            self.flush()
            self._write(lambda c: c.execute("UPDATE runs SET ended_at = ? WHERE id = ?", (ended, run_id)),
                        "ending a run")

    def record_frame(self, run_id: int, frame_index: int, timestamp_s: float, events: Sequence[Any] = (),
                     occupancy: Optional[Mapping[str, Mapping[int, int]]] = None, *, again: bool = False) -> bool:
        """Record one processed frame: its events, totals, interval counts and checkpoint, atomically.

        Args:
            run_id: from :meth:`begin_run`.
            frame_index: the source frame number; strictly increasing within a run.
            timestamp_s: the frame's timestamp (source clock).
            events: the frame's counting events (``CountEvent`` or anything with ``frame_index``,
                ``timestamp_s`` (None = the frame's), ``track_id``, ``class_id``, ``direction`` and ``name``).
            occupancy: {zone name: {class_id: tracks inside}} for this frame.
            again: the frame may be the last one recorded (events reported after it, e.g. the crossings
                the counters still held when the stream ended).

        Returns:
            True if a transaction was committed now; False if only the checkpoint was deferred.

        Raises:
            InputError: a malformed event, a frame index that does not increase, an unknown run.
            StoreError: the write failed (full disk: "database or disk is full"); nothing of this frame is
                stored, ``healthy`` turns False; keep counting in memory and call :meth:`retry`.
        """
        if isinstance(frame_index, bool) or int(frame_index) != frame_index:
            raise InputError(f"Store.record_frame: frame_index must be an integer, got {frame_index!r}")
        frame_index, ts = int(frame_index), float(timestamp_s)
        if not math.isfinite(ts):
            raise InputError(f"Store.record_frame: frame {frame_index}: timestamp_s must be finite, got {ts}")
        with self._lock:
            source, names = self._source(run_id)
            last = self._last_frame.get(run_id)
            if last is not None and (frame_index < last or (frame_index == last and not again)):
                raise InputError(f"Store.record_frame: run {run_id}: frame {frame_index} after frame {last}; "
                                 f"frame indices must increase")
            rows = [self._event_row(run_id, frame_index, ts, ev, names) for ev in events]
            occ = self._occupancy_changes(run_id, ts, occupancy)
            now = time.monotonic()
            written_at = self._written_at.get(run_id)
            if not rows and not occ and written_at is not None and now - written_at < self.checkpoint_every_s:
                self._pending[run_id] = (frame_index, ts)
                self._last_frame[run_id] = frame_index
                return False
            self._write(lambda c: self._frame_sql(c, run_id, source, frame_index, ts, rows, occ),
                        f"recording frame {frame_index}")
            self._last_frame[run_id] = frame_index
            self._pending.pop(run_id, None)
            self._written_at[run_id] = now
            for (zone, bucket, counts, _) in occ:
                self._occupancy[(run_id, zone)] = (bucket, counts)
            return True

    def flush(self) -> None:
        """Write the deferred checkpoints now (done by :meth:`end_run` and :meth:`close`)."""
        with self._lock:
            for run_id, (frame_index, ts) in list(self._pending.items()):
                source, _ = self._source(run_id)
                self._write(lambda c: self._checkpoint_sql(c, run_id, source, frame_index, ts),
                            f"writing the checkpoint of frame {frame_index}")
                del self._pending[run_id]
                self._written_at[run_id] = time.monotonic()

    def prune(self, before_s: float) -> int:
        """Delete events, count buckets and outages older than ``before_s`` (source clock); totals are kept.

        The retention step of a long-running device: freed pages are reused, so a database at its
        ``max_bytes`` cap (or on a full disk, if the WAL can still grow) takes new frames again.
        Returns the number of events deleted.

        Raises:
            StoreError: the delete failed.
        """
        if not math.isfinite(before_s):
            raise InputError(f"Store.prune: before_s must be finite, got {before_s!r}")

        def delete(c: sqlite3.Connection) -> int:
            n = c.execute("DELETE FROM events WHERE timestamp_s < ?", (before_s,)).rowcount
            c.execute("DELETE FROM counts WHERE bucket_start_s + interval_s <= ?", (before_s,))
            c.execute("DELETE FROM outages WHERE end_s < ?", (before_s,))
            return n

        with self._lock:
            return int(self._write(delete, f"deleting events before t={before_s:g} s"))

    def retry(self) -> bool:
        """After a failed write: check there is room again; on success the store is ``healthy`` again.

        The probe writes and deletes 64 KiB in one transaction (room for dozens of frames), so a disk
        with a few bytes free does not pass for a healthy one. Returns the new ``healthy``.
        """
        def probe(c: sqlite3.Connection) -> None:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?)", ("x" * 65536,))
            c.execute("DELETE FROM meta WHERE key = 'write_probe'")

        with self._lock:
            try:
                self._write(probe, "checking for free space", quiet=True)
            except StoreError:
                return False
            if not self.healthy:
                log.warning("%s: writes work again", self.path)
            self.healthy = True
            return True

    # -- writing: internals ------------------------------------------------------------------------
    def _source(self, run_id: int) -> Tuple[str, Dict[int, str]]:
        known = self._runs.get(run_id)
        if known is None:
            row = self._read(lambda c: c.execute("SELECT source, class_names FROM runs WHERE id = ?",
                                                   (run_id,)).fetchone())
            if row is None:
                raise InputError(f"Store: no run {run_id!r} in {self.path}")
            known = (row[0], {int(k): v for k, v in json.loads(row[1]).items()})
            self._runs[run_id] = known
        return known

    def _event_row(self, run_id: int, frame_index: int, ts: float, ev: Any, names: Dict[int, str]) -> tuple:
        try:
            direction = str(getattr(ev.direction, "value", ev.direction))
            name, ev_frame = ev.name, ev.frame_index
            track_id, class_id = int(ev.track_id), int(ev.class_id)
            ev_ts = ts if ev.timestamp_s is None else float(ev.timestamp_s)
        except (AttributeError, TypeError, ValueError) as exc:
            raise InputError(f"Store.record_frame: frame {frame_index}: not a counting event: {ev!r} "
                             f"({exc})") from None
        kind = _DIRECTIONS.get(direction)
        problem = (
            f"direction must be one of {sorted(_DIRECTIONS)}, got {direction!r}" if kind is None else
            f"name must be a non-empty string of at most {_MAX_NAME} characters, got {name!r}"
            if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME else
            f"event of frame {ev_frame!r} recorded with frame {frame_index}"
            if ev_frame is not None and ev_frame != frame_index else
            f"timestamp_s must be finite, got {ev_ts}" if not math.isfinite(ev_ts) else
            f"track_id and class_id must be >= 0, got {track_id} and {class_id}" if min(track_id, class_id) < 0
            else "")
        if problem:
            raise InputError(f"Store.record_frame: frame {frame_index}: {problem}")
        return (run_id, frame_index, ev_ts, track_id, class_id, names.get(class_id, str(class_id)), kind,
                direction, name, time.time())

    def _occupancy_changes(self, run_id: int, ts: float, occupancy: Optional[Mapping[str, Mapping[int, int]]]
                           ) -> List[Tuple[str, float, Dict[int, int], List[int]]]:
        changes = []
        names = self._source(run_id)[1]
        bucket = self._bucket(ts)
        for zone, per_class in (occupancy or {}).items():
            if not isinstance(zone, str) or not 0 < len(zone) <= _MAX_NAME:
                raise InputError(f"Store.record_frame: occupancy zone names must be non-empty strings, "
                                 f"got {zone!r}")
            counts = {int(k): int(v) for k, v in per_class.items() if int(v) != 0}
            if any(k < 0 or v < 0 for k, v in counts.items()):
                raise InputError(f"Store.record_frame: zone {zone!r}: occupancy must be "
                                 f"{{class_id >= 0: n >= 0}}, got {dict(per_class)!r}")
            before = self._occupancy.get((run_id, zone))
            if before != (bucket, counts):  # changed, or a new bucket began
                # Classes that left are written as 0 (the first write of a run zeroes every class), so
                # the latest bucket with rows always holds the zone's current occupancy.
                gone = set(names) if before is None else set(before[1])
                changes.append((zone, bucket, counts, sorted(gone - set(counts))))
        return changes

    def _bucket(self, ts: float) -> float:
        return math.floor(ts / self.interval_s) * self.interval_s

    def _frame_sql(self, c: sqlite3.Connection, run_id: int, source: str, frame_index: int, ts: float,
                   rows: List[tuple], occ: List[Tuple[str, float, Dict[int, int]]]) -> None:
        c.executemany("INSERT INTO events (run_id, frame_index, timestamp_s, track_id, class_id, class_name, "
                      "kind, direction, name, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        c.executemany(
            "INSERT INTO totals (name, class_id, direction, kind, class_name, count, last_timestamp_s) "
            "VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (name, class_id, direction) DO UPDATE SET "
            "count = count + 1, last_timestamp_s = max(last_timestamp_s, excluded.last_timestamp_s)",
            [(r[8], r[4], r[7], r[6], r[5], r[2]) for r in rows])
        c.executemany(
            "INSERT INTO counts (interval_s, bucket_start_s, name, class_id, kind, in_count, out_count) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (interval_s, bucket_start_s, name, class_id) DO UPDATE "
            "SET in_count = in_count + excluded.in_count, out_count = out_count + excluded.out_count",
            [(self.interval_s, self._bucket(r[2]), r[8], r[4], r[6], int(r[7] in ("in", "enter")),
              int(r[7] in ("out", "exit"))) for r in rows])
        for zone, bucket, counts, gone in occ:
            c.execute("UPDATE counts SET occupancy_last = 0 WHERE interval_s = ? AND bucket_start_s = ? "
                      "AND name = ?", (self.interval_s, bucket, zone))
            c.executemany(
                "INSERT INTO counts (interval_s, bucket_start_s, name, class_id, kind, occupancy_max, "
                "occupancy_last) VALUES (?, ?, ?, ?, 'zone', ?, ?) ON CONFLICT (interval_s, bucket_start_s, "
                "name, class_id) DO UPDATE SET occupancy_max = max(occupancy_max, excluded.occupancy_max), "
                "occupancy_last = excluded.occupancy_last",
                [(self.interval_s, bucket, zone, k, v, v) for k, v in [*counts.items(), *((g, 0) for g in gone)]])
        self._checkpoint_sql(c, run_id, source, frame_index, ts)

    @staticmethod
    def _checkpoint_sql(c: sqlite3.Connection, run_id: int, source: str, frame_index: int, ts: float) -> None:
        c.execute("INSERT INTO checkpoints (source, run_id, frame_index, timestamp_s, updated_at) VALUES "
                  "(?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET run_id = excluded.run_id, frame_index = "
                  "excluded.frame_index, timestamp_s = excluded.timestamp_s, updated_at = excluded.updated_at",
                  (source, run_id, frame_index, ts, time.time()))

    def _write(self, body, doing: str, *, quiet: bool = False) -> Any:
        """Run ``body(conn)`` in one IMMEDIATE transaction; map failures to StoreError."""
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; cannot write ({doing})")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            first_failure, self.healthy = self.healthy, False
            if _is_full(exc):
                msg = (f"{self.path}: database or disk is full while {doing}; nothing of it was stored. "
                       f"Free space on that disk; counting can go on in memory and Store.retry() resumes writes")
            else:
                msg = f"{self.path}: write failed while {doing}: {exc}"
            if not quiet and first_failure:  # once per outage, not once per frame
                log.error("%s", msg)
            elif not quiet:
                log.debug("%s", msg)
            raise StoreError(msg) from exc

    # -- reading -----------------------------------------------------------------------------------
    def _read(self, body) -> Any:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"{self.path}: the store is closed")
            try:
                conn.execute("BEGIN")  # one snapshot for the whole query
                try:
                    return body(conn)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: query failed: {exc}") from exc

    def totals(self, *, name: Optional[str] = None, class_id: Optional[int] = None) -> List[Total]:
        """Running totals per line/zone x class x direction (all runs), sorted by name, class, direction."""
        where, args = _filters(name=name, class_id=class_id)
        rows = self._read(lambda c: c.execute(
            "SELECT name, kind, class_id, class_name, direction, count, last_timestamp_s FROM totals"
            f"{where} ORDER BY name, class_id, direction", args).fetchall())
        return [Total(*r) for r in rows]

    def events(self, *, since_s: Optional[float] = None, until_s: Optional[float] = None,
               name: Optional[str] = None, class_id: Optional[int] = None, direction: Optional[str] = None,
               run_id: Optional[int] = None, limit: int = 10_000) -> List[StoredEvent]:
        """Events with ``since_s < timestamp_s <= until_s`` (source clock), oldest first, at most ``limit``."""
        where, args = _filters(name=name, class_id=class_id, direction=direction, run_id=run_id,
                               since_s=since_s, until_s=until_s)
        rows = self._read(lambda c: c.execute(
            "SELECT run_id, frame_index, timestamp_s, track_id, class_id, class_name, kind, direction, name "
            f"FROM events{where} ORDER BY timestamp_s, id LIMIT ?", args + [int(limit)]).fetchall())
        return [StoredEvent(*r) for r in rows]

    def now_s(self) -> Optional[float]:
        """Source-clock time of the latest processed frame (the "now" of :meth:`recent_events`)."""
        with self._lock:
            pending = [ts for _, ts in self._pending.values()]
        row = self._read(lambda c: c.execute("SELECT max(timestamp_s) FROM checkpoints").fetchone())
        known = [t for t in pending + [row[0]] if t is not None]
        return max(known) if known else None

    def recent_events(self, window_s: float, *, now_s: Optional[float] = None,
                      **filters: Any) -> List[StoredEvent]:
        """Events of the last ``window_s`` seconds before ``now_s`` (default :meth:`now_s`), filtered as
        :meth:`events`."""
        now = self.now_s() if now_s is None else now_s
        if now is None:
            return []
        return self.events(since_s=now - window_s, until_s=now, **filters)

    def event_counts(self, *, since_s: Optional[float] = None, until_s: Optional[float] = None,
                     **filters: Any) -> Dict[Tuple[str, int, str], int]:
        """{(name, class_id, direction): events} in ``(since_s, until_s]`` — "how many in the last hour"."""
        where, args = _filters(since_s=since_s, until_s=until_s, **filters)
        rows = self._read(lambda c: c.execute(
            f"SELECT name, class_id, direction, count(*) FROM events{where} GROUP BY name, class_id, direction",
            args).fetchall())
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def counts(self, *, since_s: Optional[float] = None, until_s: Optional[float] = None,
               name: Optional[str] = None, class_id: Optional[int] = None,
               interval_s: Optional[float] = None) -> List[Bucket]:
        """Per-interval buckets starting in ``[since_s, until_s)``, oldest first.

        ``interval_s`` selects buckets of another width written earlier (default: this store's).
        """
        where, args = _filters(name=name, class_id=class_id, interval_s=interval_s or self.interval_s,
                               bucket_from=since_s, bucket_to=until_s)
        rows = self._read(lambda c: c.execute(
            "SELECT bucket_start_s, interval_s, name, kind, class_id, in_count, out_count, occupancy_max, "
            f"occupancy_last FROM counts{where} ORDER BY bucket_start_s, name, class_id", args).fetchall())
        return [Bucket(*r) for r in rows]

    def last_event_times(self) -> Dict[Tuple[str, int, str], float]:
        """{(name, class_id, direction): timestamp_s of the latest event}."""
        return {(t.name, t.class_id, t.direction): t.last_timestamp_s for t in self.totals()}

    def checkpoint(self, source: str) -> Optional[Checkpoint]:
        """Where processing of ``source`` stopped (as committed), or None if never."""
        row = self._read(lambda c: c.execute(
            "SELECT source, run_id, frame_index, timestamp_s FROM checkpoints WHERE source = ?",
            (source,)).fetchone())
        return None if row is None else Checkpoint(*row)

    def add_reading(self, node: str, name: str, value: float, timestamp_s: Optional[float] = None) -> None:
        """Store a sensor reading reported by a node (Unix time; default now).

        Raises:
            InputError: a non-finite value or empty names. StoreError: the write failed.
        """
        value = float(value)
        if not math.isfinite(value) or not node or not name:
            raise InputError(f"Store.add_reading: node and name must be non-empty and the value finite, got "
                             f"{node!r}, {name!r}, {value!r}")
        ts = time.time() if timestamp_s is None else float(timestamp_s)
        with self._lock:
            self._write(lambda c: c.execute("INSERT INTO readings (node, name, value, timestamp_s) VALUES "
                                            "(?, ?, ?, ?)", (str(node)[:_MAX_NAME], str(name)[:_MAX_NAME], value, ts)),
                        f"storing a reading of {name}")

    def add_outage(self, run_id: int, start_s: float, end_s: float, reason: str, attempts: int) -> None:
        """Store an outage of the run's source: from ``start_s`` to ``end_s`` (source clock, as the events;
        a :class:`~edge_runtime.vision.sources_base.Gap`'s fields) it delivered no frame, because of
        ``reason``, and it took ``attempts`` connection attempts to get frames again.

        Committed before this returns, in its own transaction. A failed write is handled as in
        :meth:`record_frame`: nothing is stored, ``healthy`` turns False (logged once per outage of the
        disk), and the caller keeps the outage until :meth:`retry` succeeds (StoreSink does).

        Raises:
            InputError: an unknown run, times that are not finite or end before they start, a negative
                ``attempts``.
            StoreError: the write failed (full disk: "database or disk is full").
        """
        start, end = float(start_s), float(end_s)
        if not (math.isfinite(start) and math.isfinite(end) and start <= end):
            raise InputError(f"Store.add_outage: need finite start_s <= end_s, got {start_s!r} and {end_s!r}")
        if isinstance(attempts, bool) or int(attempts) != attempts or attempts < 0:
            raise InputError(f"Store.add_outage: attempts must be an integer >= 0, got {attempts!r}")
        with self._lock:
            source, _ = self._source(run_id)
            row = (run_id, source, start, end, str(reason)[:_MAX_REASON], int(attempts), time.time())
            self._write(lambda c: c.execute("INSERT INTO outages (run_id, source, start_s, end_s, reason, attempts, "
                                            "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)", row),
                        f"storing an outage of {source} ({end - start:.1f} s)")

    def outages(self, since_s: Optional[float] = None, until_s: Optional[float] = None, *,
                limit: int = 10_000) -> List[Outage]:
        """Outages of every run that overlap the window ``(since_s, until_s)`` (source clock; None =
        unbounded), oldest start first, at most ``limit``; [] in a database made before outages were
        stored, opened read-only. An outage is returned whole, not clipped to the window."""
        def read(c: sqlite3.Connection) -> List[Outage]:
            if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'outages'").fetchone() is None:
                return []
            rows = c.execute("SELECT run_id, source, start_s, end_s, reason, attempts FROM outages "
                             "WHERE end_s > ? AND start_s < ? ORDER BY start_s, id LIMIT ?",
                             (-math.inf if since_s is None else float(since_s),
                              math.inf if until_s is None else float(until_s), int(limit))).fetchall()
            return [Outage(*r) for r in rows]
        return self._read(read)

    def outage_seconds(self, since_s: Optional[float] = None, until_s: Optional[float] = None) -> float:
        """Seconds of the window ``(since_s, until_s)`` in which the source delivered nothing: the stored
        outages clipped to the window, overlaps counted once (0.0 when there were none)."""
        return clipped_seconds(self.outages(since_s, until_s), since_s, until_s)

    def readings(self, name: Optional[str] = None, *, since_s: Optional[float] = None,
                 limit: int = 10_000) -> List[Tuple[str, str, float, float]]:
        """(node, name, value, timestamp_s) of sensor readings, oldest first ([] in a database made before
        readings existed, opened read-only)."""
        def read(c: sqlite3.Connection) -> List[Tuple[str, str, float, float]]:
            if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings'").fetchone() is None:
                return []
            where, args = [], []
            if name is not None:
                where.append("name = ?")
                args.append(name)
            if since_s is not None:
                where.append("timestamp_s > ?")
                args.append(since_s)
            sql = "SELECT node, name, value, timestamp_s FROM readings" + (" WHERE " + " AND ".join(where)
                                                                            if where else "")
            return [tuple(r) for r in c.execute(sql + " ORDER BY timestamp_s, id LIMIT ?", args + [int(limit)])]
        return self._read(read)

    def reading_at(self, name: str, at_s: Optional[float] = None) -> Optional[Tuple[str, float, float]]:
        """(node, value, timestamp_s) of the last reading of ``name`` at or before ``at_s`` (default: the
        latest), or None."""
        def read(c: sqlite3.Connection) -> Optional[Tuple[str, float, float]]:
            if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings'").fetchone() is None:
                return None
            row = c.execute("SELECT node, value, timestamp_s FROM readings WHERE name = ? AND timestamp_s <= ? "
                            "ORDER BY timestamp_s DESC, id DESC LIMIT 1",
                            (name, math.inf if at_s is None else at_s)).fetchone()
            return None if row is None else (row[0], float(row[1]), float(row[2]))
        return self._read(read)

    def sensor_names(self) -> List[str]:
        """Names of every sensor with a reading."""
        def read(c: sqlite3.Connection) -> List[str]:
            if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings'").fetchone() is None:
                return []
            return [r[0] for r in c.execute("SELECT DISTINCT name FROM readings ORDER BY name")]
        return self._read(read)

    def meta(self, key: str) -> Optional[str]:
        """A value kept in the database's ``meta`` table (publisher cursors, the places), or None."""
        row = self._read(lambda c: c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone())
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` in the ``meta`` table (committed before this returns)."""
        with self._lock:
            self._write(lambda c: c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                            (str(key), str(value))), f"writing {key}")

    def events_after(self, event_id: int, limit: int = 100) -> List[Tuple[int, StoredEvent]]:
        """Events with a row id above ``event_id``, in the order they were recorded: (id, event)."""
        rows = self._read(lambda c: c.execute(
            "SELECT id, run_id, frame_index, timestamp_s, track_id, class_id, class_name, kind, direction, name "
            "FROM events WHERE id > ? ORDER BY id LIMIT ?", (int(event_id), int(limit))).fetchall())
        return [(int(r[0]), StoredEvent(*r[1:])) for r in rows]

    def latest_events(self, limit: int = 50) -> List[Tuple[int, StoredEvent]]:
        """The ``limit`` most recently recorded events, newest first: (id, event)."""
        rows = self._read(lambda c: c.execute(
            "SELECT id, run_id, frame_index, timestamp_s, track_id, class_id, class_name, kind, direction, name "
            "FROM events ORDER BY id DESC LIMIT ?", (int(limit),)).fetchall())
        return [(int(r[0]), StoredEvent(*r[1:])) for r in rows]

    def places(self) -> Dict[str, str]:
        """Every line and zone the database knows, {name: "line" | "zone"}: those runs declared
        (:meth:`begin_run`) and those with events."""
        def read(c: sqlite3.Connection) -> Dict[str, str]:
            row = c.execute("SELECT value FROM meta WHERE key = 'places'").fetchone()
            out = dict(json.loads(row[0])) if row else {}
            for name, kind in c.execute("SELECT DISTINCT name, kind FROM totals UNION "
                                        "SELECT DISTINCT name, kind FROM counts"):
                out.setdefault(name, kind)
            return dict(sorted(out.items()))
        return self._read(read)

    def class_names(self) -> Dict[int, str]:
        """{class_id: name} over every run (a later run's names win)."""
        out: Dict[int, str] = {}
        for (names,) in self._read(lambda c: c.execute("SELECT class_names FROM runs ORDER BY id").fetchall()):
            out.update({int(k): v for k, v in json.loads(names).items()})
        return out

    def runs(self) -> List[Dict[str, Any]]:
        """All runs, oldest first: id, started_at, ended_at, config_hash, source."""
        rows = self._read(lambda c: c.execute(
            "SELECT id, started_at, ended_at, config_hash, source FROM runs ORDER BY id").fetchall())
        return [dict(zip(("id", "started_at", "ended_at", "config_hash", "source"), r)) for r in rows]


def _filters(**kw: Any) -> Tuple[str, List[Any]]:
    sql = {"name": "name = ?", "class_id": "class_id = ?", "direction": "direction = ?", "run_id": "run_id = ?",
           "since_s": "timestamp_s > ?", "until_s": "timestamp_s <= ?", "interval_s": "interval_s = ?",
           "bucket_from": "bucket_start_s >= ?", "bucket_to": "bucket_start_s < ?"}
    clauses, args = [], []
    for key, value in kw.items():
        if key not in sql:
            raise InputError(f"Store query: unknown filter {key!r}; expected one of {sorted(sql)}")
        if value is not None:
            clauses.append(sql[key])
            args.append(getattr(value, "value", value))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
