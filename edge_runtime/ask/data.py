"""Where answers' numbers come from: the results database (SQL) or a running pipeline (its memory).

Both views offer the same few exact queries — event counts, first/last event, events per interval,
zone occupancy now, the source's outages in a window — so :mod:`.facts` never computes a number from
anything else.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

from .query import Catalog

__all__ = ["EventFilter", "DataView", "StoreView", "PipelineView", "catalog_from_store"]

#: (places, class ids, stored directions); an empty tuple / None means "all".
EventFilter = Tuple[Tuple[str, ...], Optional[Tuple[int, ...]], Tuple[str, ...]]


class DataView(Protocol):
    """The exact queries an answer may use (times on the source clock, ``since_s < t <= until_s``)."""

    def now_s(self) -> Optional[float]: ...

    def event_counts(self, since_s: Optional[float], until_s: Optional[float], flt: EventFilter
                     ) -> Dict[Tuple[str, int, str], int]: ...

    def extreme_event(self, since_s: Optional[float], until_s: Optional[float], flt: EventFilter, *, first: bool
                      ) -> Optional[Tuple[float, str, int, str]]: ...

    def bucket_counts(self, interval_s: float, since_s: Optional[float], until_s: Optional[float], flt: EventFilter
                      ) -> Dict[float, int]: ...

    def occupancy(self, zones: Sequence[str]) -> Dict[str, Dict[int, int]]: ...

    def in_view(self) -> Optional[Dict[int, int]]: ...

    def outages(self, since_s: Optional[float], until_s: Optional[float]) -> List[Any]:
        """Outages of the source (``start_s``, ``end_s``, ``reason``, ``attempts``) overlapping
        ``(since_s, until_s)``, oldest first."""
        ...


def _where(since_s: Optional[float], until_s: Optional[float], flt: EventFilter) -> Tuple[str, List[Any]]:
    places, class_ids, directions = flt
    clauses, args = [], []  # type: List[str], List[Any]
    if since_s is not None:
        clauses.append("timestamp_s > ?")
        args.append(since_s)
    if until_s is not None:
        clauses.append("timestamp_s <= ?")
        args.append(until_s)
    for column, values in (("name", places), ("class_id", class_ids), ("direction", directions)):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class StoreView:
    """Answers from a :class:`~edge_runtime.runtime.store.Store` (every run in the file)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _sql(self, sql: str, args: Sequence[Any]) -> List[tuple]:
        return self.store._read(lambda c: c.execute(sql, list(args)).fetchall())

    def now_s(self) -> Optional[float]:
        return self.store.now_s()

    def event_counts(self, since_s, until_s, flt):
        where, args = _where(since_s, until_s, flt)
        rows = self._sql(f"SELECT name, class_id, direction, count(*) FROM events{where} "
                         "GROUP BY name, class_id, direction", args)
        return {(r[0], int(r[1]), r[2]): int(r[3]) for r in rows}

    def extreme_event(self, since_s, until_s, flt, *, first):
        where, args = _where(since_s, until_s, flt)
        order = "ASC" if first else "DESC"
        rows = self._sql(f"SELECT timestamp_s, name, class_id, direction FROM events{where} "
                         f"ORDER BY timestamp_s {order}, id {order} LIMIT 1", args)
        return None if not rows else (float(rows[0][0]), rows[0][1], int(rows[0][2]), rows[0][3])

    def bucket_counts(self, interval_s, since_s, until_s, flt):
        where, args = _where(since_s, until_s, flt)
        rows = self._sql(f"SELECT CAST(floor(timestamp_s / ?) AS INTEGER), count(*) FROM events{where} "
                         "GROUP BY 1", [interval_s, *args]) if _has_floor(self) else None
        if rows is None:  # SQLite built without math functions: bucket in Python, still from the rows
            rows_t = self._sql(f"SELECT timestamp_s FROM events{where}", args)
            out: Dict[float, int] = defaultdict(int)
            for (t,) in rows_t:
                out[math.floor(t / interval_s) * interval_s] += 1
            return dict(out)
        return {float(r[0]) * interval_s: int(r[1]) for r in rows}

    def occupancy(self, zones):
        """Per zone, the occupancy recorded last (the latest count bucket the zone has rows in)."""
        out: Dict[str, Dict[int, int]] = {}
        for zone in zones:
            rows = self._sql("SELECT class_id, occupancy_last FROM counts WHERE name = ? AND kind = 'zone' AND "
                             "bucket_start_s = (SELECT max(bucket_start_s) FROM counts WHERE name = ? AND "
                             "kind = 'zone' AND interval_s = ?) AND interval_s = ?",
                             [zone, zone, self.store.interval_s, self.store.interval_s])
            out[zone] = {int(c): int(n) for c, n in rows if n}
        return out

    def in_view(self):
        return None  # the database records zones' occupancy, not every track in view

    def outages(self, since_s, until_s):
        """The stored outages of every run (:meth:`~edge_runtime.runtime.store.Store.outages`)."""
        return self.store.outages(since_s, until_s)

    def reading_at(self, name, at_s):
        return self.store.reading_at(name, at_s)


def _has_floor(view: StoreView) -> bool:
    cached = getattr(view, "_floor_ok", None)
    if cached is None:
        try:
            view._sql("SELECT floor(1.5)", [])
            cached = True
        except Exception:  # sqlite3 without SQLITE_ENABLE_MATH_FUNCTIONS
            cached = False
        view._floor_ok = cached  # type: ignore[attr-defined]
    return cached


class PipelineView:
    """Answers from a running :class:`~edge_runtime.runtime.pipeline.Pipeline` without a database
    (its ``recent_events``, its zones' occupancy and the tracks of its latest frame)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def _rows(self, since_s, until_s, flt) -> List[Tuple[float, str, int, str]]:
        places, class_ids, directions = flt
        rows = []
        for e in list(self.pipeline.recent_events):
            t = e.timestamp_s if e.timestamp_s is not None else 0.0
            d = getattr(e.direction, "value", e.direction)
            if ((since_s is None or t > since_s) and (until_s is None or t <= until_s)
                    and (not places or e.name in places) and (not class_ids or e.class_id in class_ids)
                    and (not directions or d in directions)):
                rows.append((float(t), e.name, int(e.class_id), d))
        return rows

    def now_s(self):
        return self.pipeline.now_s

    def event_counts(self, since_s, until_s, flt):
        out: Dict[Tuple[str, int, str], int] = defaultdict(int)
        for _, name, cid, d in self._rows(since_s, until_s, flt):
            out[(name, cid, d)] += 1
        return dict(out)

    def extreme_event(self, since_s, until_s, flt, *, first):
        rows = self._rows(since_s, until_s, flt)
        if not rows:
            return None
        return min(rows, key=lambda r: r[0]) if first else max(rows, key=lambda r: r[0])

    def bucket_counts(self, interval_s, since_s, until_s, flt):
        out: Dict[float, int] = defaultdict(int)
        for t, *_ in self._rows(since_s, until_s, flt):
            out[math.floor(t / interval_s) * interval_s] += 1
        return dict(out)

    def occupancy(self, zones):
        return {z.name: {c: n for c, n in z.occupancy.items() if n} for z in self.pipeline.zones if z.name in zones}

    def in_view(self):
        return self.pipeline.in_view()

    def outages(self, since_s, until_s):
        """The outages the pipeline's source reported since it opened (its ``stats.gaps``; the newest
        1000), or [] for a source that has none."""
        stats = getattr(getattr(self.pipeline, "source", None), "stats", None)
        gaps = sorted(getattr(stats, "gaps", ()), key=lambda g: g.start_s)
        return [g for g in gaps if (since_s is None or g.end_s > since_s) and (until_s is None or g.start_s < until_s)]

    def reading_at(self, name, at_s):
        store = getattr(self.pipeline, "store", None)
        return None if store is None else store.reading_at(name, at_s)


def catalog_from_store(store: Any, *, labels: Optional[Sequence[str]] = None) -> Catalog:
    """The places and classes a database knows (``labels`` replace class names, in class order)."""
    classes = store.class_names()
    if labels:
        classes.update(dict(enumerate(labels)))
    return Catalog(store.places(), classes, tuple(store.sensor_names()))
