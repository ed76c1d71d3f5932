"""Schema of the results database, its version, the checks that refuse a file we don't understand, and
the row types queries return.

Version history (``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as ours):
    1: runs, events, totals, counts, checkpoints, meta.
    2: readings (sensor values reported by nodes over edge-link).
    3: outages (stretches in which a run's video source delivered nothing: stream lost, stalled, unplugged).

To change the schema: bump ``SCHEMA_VERSION``, add ``MIGRATIONS[old] = [statements]`` that take a
version-``old`` database to ``old + 1``, and a test that opens a file made by the old code.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from ..errors import StoreCorruptError, StoreError

__all__ = ["SCHEMA_VERSION", "APPLICATION_ID", "SQLITE_HEADER", "check_header", "prepare_schema", "StoredEvent",
           "Total", "Bucket", "Checkpoint", "Outage", "clipped_seconds"]

SCHEMA_VERSION = 3
APPLICATION_ID = 0x45445254  # "EDRT"
SQLITE_HEADER = b"SQLite format 3\x00"  # https://www.sqlite.org/fileformat.html#the_database_header

_TABLES_V1 = ("meta", "runs", "events", "totals", "counts", "checkpoints")
_TABLES_V2 = _TABLES_V1 + ("readings",)
_TABLES = _TABLES_V2 + ("outages",)
_TABLES_BY_VERSION = {1: _TABLES_V1, 2: _TABLES_V2, 3: _TABLES}  # what a file of each version must hold

SCHEMA_V1 = [
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,          -- Unix time
        ended_at REAL,                     -- NULL: still running, or killed
        config_hash TEXT NOT NULL,
        source TEXT NOT NULL,
        class_names TEXT NOT NULL DEFAULT '{}'   -- JSON {class_id: name}
    )""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        frame_index INTEGER NOT NULL,
        timestamp_s REAL NOT NULL,         -- source clock: file time, or Unix time for live sources
        track_id INTEGER NOT NULL,
        class_id INTEGER NOT NULL,
        class_name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('line', 'zone')),
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'enter', 'exit')),
        name TEXT NOT NULL,                -- the line's or zone's name
        recorded_at REAL NOT NULL          -- Unix time of the write
    )""",
    "CREATE INDEX events_by_time ON events (timestamp_s)",
    "CREATE INDEX events_by_name ON events (name, timestamp_s)",
    """CREATE TABLE totals (
        name TEXT NOT NULL,
        class_id INTEGER NOT NULL,
        direction TEXT NOT NULL,
        kind TEXT NOT NULL,
        class_name TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_timestamp_s REAL NOT NULL,
        PRIMARY KEY (name, class_id, direction)
    ) WITHOUT ROWID""",
    """CREATE TABLE counts (
        interval_s REAL NOT NULL,
        bucket_start_s REAL NOT NULL,      -- floor(timestamp_s / interval_s) * interval_s
        name TEXT NOT NULL,
        class_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        in_count INTEGER NOT NULL DEFAULT 0,     -- line: in; zone: enter
        out_count INTEGER NOT NULL DEFAULT 0,    -- line: out; zone: exit
        occupancy_max INTEGER NOT NULL DEFAULT 0,
        occupancy_last INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (interval_s, bucket_start_s, name, class_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE checkpoints (
        source TEXT PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        frame_index INTEGER NOT NULL,      -- last frame fully processed
        timestamp_s REAL NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
]

_READINGS = [
    """CREATE TABLE readings (
        id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,                -- the node id from its HELLO
        name TEXT NOT NULL,                -- the sensor's name
        value REAL NOT NULL,
        timestamp_s REAL NOT NULL          -- Unix time the gateway received it
    )""",
    "CREATE INDEX readings_by_name ON readings (name, timestamp_s)",
]
_OUTAGES = [
    """CREATE TABLE outages (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        source TEXT NOT NULL,              -- the run's source key (a camera's URL, a device)
        start_s REAL NOT NULL,             -- source clock, as events: the last frame before the loss
        end_s REAL NOT NULL,               -- the first frame after it
        reason TEXT NOT NULL,              -- what ended the stream ("stream lost", "read timed out ...")
        attempts INTEGER NOT NULL,         -- connection attempts it took to get frames again
        recorded_at REAL NOT NULL          -- Unix time of the write
    )""",
    "CREATE INDEX outages_by_start ON outages (start_s)",
]
# version n -> statements that make it version n + 1
MIGRATIONS: Dict[int, List[str]] = {1: _READINGS, 2: _OUTAGES}


@dataclass(frozen=True)
class StoredEvent:
    """One event as stored (``direction``: in/out for lines, enter/exit for zones)."""

    run_id: int
    frame_index: int
    timestamp_s: float
    track_id: int
    class_id: int
    class_name: str
    kind: str
    direction: str
    name: str


@dataclass(frozen=True)
class Outage:
    """A stretch of source time in which a run's video source delivered nothing (stream lost, stalled,
    unplugged): nothing could be counted between ``start_s`` and ``end_s`` (source clock, as events)."""

    run_id: int
    source: str
    start_s: float
    end_s: float
    reason: str
    attempts: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def clipped_seconds(spans: Iterable[Any], since_s: Optional[float], until_s: Optional[float]) -> float:
    """Seconds of ``[since_s, until_s]`` covered by any of ``spans`` (anything with ``start_s`` and
    ``end_s``: :class:`Outage`, a source's ``Gap``). Each span is clipped to the window (None = unbounded
    on that side) and overlapping spans are counted once."""
    lo = -math.inf if since_s is None else since_s
    hi = math.inf if until_s is None else until_s
    clipped = sorted((max(s.start_s, lo), min(s.end_s, hi)) for s in spans)
    total, reach = 0.0, -math.inf
    for start, end in clipped:
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total


@dataclass(frozen=True)
class Total:
    """Running count of one line/zone x class x direction since the database was created."""

    name: str
    kind: str
    class_id: int
    class_name: str
    direction: str
    count: int
    last_timestamp_s: float


@dataclass(frozen=True)
class Bucket:
    """Counts of one line/zone and class in one interval ``[start_s, start_s + interval_s)``."""

    start_s: float
    interval_s: float
    name: str
    kind: str
    class_id: int
    in_count: int
    out_count: int
    occupancy_max: int
    occupancy_last: int


@dataclass(frozen=True)
class Checkpoint:
    """Last frame fully processed from a source (resume a file at ``frame_index + 1``)."""

    source: str
    run_id: int
    frame_index: int
    timestamp_s: float


def check_header(path: Path) -> None:
    """Refuse a non-empty file that is not SQLite, before sqlite3 gets to it.

    Raises:
        StoreError: naming the file and what its first bytes are.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the results database: {exc}") from exc
    if head and head != SQLITE_HEADER:
        raise StoreError(f"{path}: not an SQLite database (starts with {head[:16]!r}); refusing to touch it")


def prepare_schema(conn: sqlite3.Connection, path: Path, *, writable: bool) -> int:
    """Create the schema in an empty database, migrate an older one, refuse anything else.

    Returns:
        The schema version now in the file.

    Raises:
        StoreError: another application's database, a newer or unknown schema version, missing tables.
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables and app_id == 0 and version == 0:
        if not writable:
            raise StoreError(f"{path}: empty database, and it was opened read-only")
        _run(conn, SCHEMA_V1 + _READINGS + _OUTAGES + [f"PRAGMA application_id = {APPLICATION_ID}",
                                                       f"PRAGMA user_version = {SCHEMA_VERSION}"])
        return SCHEMA_VERSION
    if app_id != APPLICATION_ID:
        raise StoreError(f"{path}: an SQLite database of another application (application_id {app_id:#x}, "
                         f"tables {sorted(tables)[:6]}); expected an edge-runtime results database")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: written by a newer edge-runtime (schema v{version}); this version reads "
                         f"up to v{SCHEMA_VERSION}. Upgrade edge-runtime or use another database file")
    if version < 1:
        raise StoreError(f"{path}: unknown schema version {version}")
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise StoreError(f"{path}: no migration from schema v{version} to v{SCHEMA_VERSION}")
        if not writable:
            break  # read as it is: every migration so far only adds tables, which then read as empty
        _run(conn, MIGRATIONS[version] + [f"PRAGMA user_version = {version + 1}"])
        version += 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    expected = _TABLES_BY_VERSION[version]
    missing = [t for t in expected if t not in tables]
    if missing:
        raise StoreCorruptError(f"{path}: damaged results database: tables {missing} are missing")
    return version


def _run(conn: sqlite3.Connection, statements: List[str]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql in statements:
            conn.execute(sql)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
