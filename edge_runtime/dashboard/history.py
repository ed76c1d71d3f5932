"""What the charts and the events timeline show, read from the results database.

Times are on the data's clock (:meth:`~edge_runtime.runtime.store.Store.now_s`): Unix time for live
sources, the file's own seconds for a video file. "The last hour" ends at the latest processed frame,
so the chart's right edge moves with the job.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InputError
from ..runtime.store_schema import clipped_seconds
from .snapshots import Snapshots, snapshot_name

__all__ = ["RANGES", "chart_series", "timeline"]

#: range name -> (span seconds, bin seconds)
RANGES: Dict[str, Tuple[int, int]] = {"hour": (3600, 60), "day": (86_400, 900), "week": (604_800, 3600)}

_DIRECTIONS = {"line": ("in", "out"), "zone": ("enter", "exit")}


def chart_series(store: Any, range_name: str, places: Dict[str, str]) -> Dict[str, Any]:
    """Counts per bin over ``range_name`` ("hour", "day" or "week") for every line and zone and direction.

    Returns:
        {"range", "bin_s", "start_s", "end_s", "now_s", "clock" ("unix" | "source"), "series": [{"name",
        "kind", "direction", "values": [count per bin, oldest first], "total"}], "outages": [{"start_s",
        "end_s", "reason", "attempts"}], "outage_s"}; the last bin holds the current, still filling
        interval. ``outages`` are the stored outages of the source that overlap the range (whole, not
        clipped); ``outage_s`` the seconds of the range they cover (bins there may read low).

    Raises:
        InputError: an unknown range name.
    """
    if range_name not in RANGES:
        raise InputError(f"range: expected one of {', '.join(RANGES)}, got {range_name!r}")
    span, step = RANGES[range_name]
    now = store.now_s()
    now = 0.0 if now is None else float(now)
    bins = span // step
    last = math.floor(now / step) * step
    if now < 1e9:  # a file's own clock starts at 0: no bins before it
        bins = min(bins, int(last // step) + 1)
    start = last - (bins - 1) * step
    kinds = dict(places)
    values: Dict[Tuple[str, str], List[int]] = {}
    for name, kind in kinds.items():
        for d in _DIRECTIONS.get(kind, ()):
            values[(name, d)] = [0] * bins
    for b in store.counts(since_s=start, until_s=last + step):
        kind = kinds.setdefault(b.name, b.kind)
        i = int((b.start_s - start) // step)
        if not 0 <= i < bins:
            continue
        d_in, d_out = _DIRECTIONS.get(kind, ("in", "out"))
        for d, n in ((d_in, b.in_count), (d_out, b.out_count)):
            values.setdefault((b.name, d), [0] * bins)[i] += int(n)
    series = [{"name": name, "kind": kinds.get(name, "line"), "direction": d, "values": v, "total": sum(v)}
              for (name, d), v in sorted(values.items())]
    outages = store.outages(start, last + step)
    return {"range": range_name, "bin_s": step, "start_s": start, "end_s": last + step, "now_s": now,
            "clock": "unix" if now >= 1e9 else "source", "series": series,
            "outages": [{"start_s": o.start_s, "end_s": o.end_s, "reason": o.reason, "attempts": o.attempts}
                        for o in outages],
            "outage_s": round(clipped_seconds(outages, start, last + step), 1)}


def timeline(store: Any, snapshots: Optional[Snapshots], limit: int = 50) -> List[Dict[str, Any]]:
    """The ``limit`` latest events, newest first, each with its thumbnail's name (or None)."""
    out = []
    for event_id, e in store.latest_events(max(1, min(int(limit), 500))):
        thumb = snapshot_name(e.name, e.frame_index, e.track_id, e.direction)
        out.append({"id": event_id, "t_s": e.timestamp_s, "frame": e.frame_index, "track_id": e.track_id,
                    "class": e.class_name, "kind": e.kind, "direction": e.direction, "name": e.name,
                    "snapshot": thumb if snapshots is not None and snapshots.path_for(thumb) else None})
    return out
