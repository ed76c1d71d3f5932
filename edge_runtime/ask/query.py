"""The query model: what a question about the counts asks for (an intent and its slots), and the
catalogue of names it may use.

Intents:

==============  ==========================================================================================
``count``       how many crossed / entered / left (by place, class, direction, window)
``exists``      yes/no: did anyone ... (a count compared with zero)
``occupancy``   how many are inside a zone (or in view) now
``last``        when something last happened; ``first``: when it first happened
``busiest``     the interval with the most events
``series``      events per interval over a window (rate and trend)
``net``         in minus out (lines) / entries minus exits (zones)
``compare``     the same count for two or more places, which had more
``places``      which lines, zones and classes exist
``sensor``      a node's sensor reading now or at a time ("was the pen door open at 6 pm?")
``other``       not about the counts: the LLM answers it as a chat
==============  ==========================================================================================

A :class:`WindowSpec` is relative ("the last 5 minutes", "today", "since 8 am") and is resolved against
the data's clock by :meth:`WindowSpec.resolve`; clock-time windows need a wall-clock source (a live
camera, or a file replayed with its start time), and say so when the data is in seconds of a video.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from ..errors import InputError

__all__ = ["INTENTS", "WINDOW_KINDS", "Catalog", "WindowSpec", "ResolvedWindow", "Query", "WALL_CLOCK_MIN_S"]

INTENTS = ("count", "exists", "occupancy", "last", "first", "busiest", "series", "net", "compare", "places",
           "sensor", "other")
WINDOW_KINDS = ("all", "last", "today", "yesterday", "since_clock", "between_clock", "at_clock")
#: Timestamps at or above this (2001-09-09) are Unix time; below, seconds into a video file.
WALL_CLOCK_MIN_S = 1e9


@dataclass(frozen=True)
class Catalog:
    """What questions may name: places (line/zone name -> "line" | "zone") and classes (id -> label)."""

    places: Mapping[str, str]
    classes: Mapping[int, str]
    sensors: Tuple[str, ...] = ()  # names of sensors nodes report (edge-link)

    def kind(self, name: str) -> str:
        return self.places.get(name, "line")

    @property
    def lines(self) -> Tuple[str, ...]:
        return tuple(n for n, k in self.places.items() if k == "line")

    @property
    def zones(self) -> Tuple[str, ...]:
        return tuple(n for n, k in self.places.items() if k == "zone")


@dataclass(frozen=True)
class ResolvedWindow:
    """``since_s < t <= until_s`` on the data's clock (None = unbounded), and how to say it."""

    since_s: Optional[float]
    until_s: Optional[float]
    text_en: str
    text_zh: str
    numbers: Tuple[float, ...] = ()  # numbers the window's wording uses ("5" of "the last 5 minutes")


@dataclass(frozen=True)
class WindowSpec:
    """A time window as a question states it.

    Attributes:
        kind: one of :data:`WINDOW_KINDS`.
        seconds: the length, for ``last``.
        clock: "HH:MM" for ``since_clock``; ("HH:MM", "HH:MM") joined by "-" for ``between_clock``.
        day_offset: for clock windows, 0 = today, -1 = yesterday.
    """

    kind: str = "all"
    seconds: float = 0.0
    clock: str = ""
    day_offset: int = 0

    def __post_init__(self) -> None:
        if self.kind not in WINDOW_KINDS:
            raise InputError(f"WindowSpec.kind must be one of {WINDOW_KINDS}, got {self.kind!r}")
        if self.kind == "last" and not 0 < self.seconds <= 366 * 86400:
            raise InputError(f"WindowSpec: 'last' needs 0 < seconds <= one year, got {self.seconds!r}")

    @property
    def needs_wall_clock(self) -> bool:
        return self.kind in ("today", "yesterday", "since_clock", "between_clock", "at_clock")

    def resolve(self, now_s: Optional[float], tz: Optional[dt.tzinfo]) -> ResolvedWindow:
        """The absolute bounds at ``now_s`` (the latest processed frame) in time zone ``tz``.

        Raises:
            InputError: a clock-time window on data whose clock is seconds into a video.
        """
        if self.kind == "all":
            return ResolvedWindow(None, None, "since counting began", "自开始计数以来")
        if now_s is None:
            now_s = 0.0
        if self.kind == "last":
            n, unit_en, unit_zh = _say_duration(self.seconds)
            plural = "" if n == 1 else "s"
            en = f"in the last {unit_en}" if n == 1 and unit_en != "second" else f"in the last {_fmt(n)} {unit_en}{plural}"
            return ResolvedWindow(now_s - self.seconds, now_s, en, f"过去{_fmt(n)}{unit_zh}内", (n,))
        if now_s < WALL_CLOCK_MIN_S:
            raise InputError("the results are timed in seconds of a video file, not by the clock; ask for "
                             "'the last N minutes' or 'since counting began' instead")
        now = dt.datetime.fromtimestamp(now_s, tz)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.kind in ("today", "yesterday"):
            day = midnight + dt.timedelta(days=0 if self.kind == "today" else -1)
            end = now_s if self.kind == "today" else midnight.timestamp()
            return ResolvedWindow(day.timestamp(), end, self.kind, "今天" if self.kind == "today" else "昨天")
        day = midnight + dt.timedelta(days=self.day_offset)
        if self.kind == "at_clock":
            at = _at(day, self.clock)
            hh, mm = _hm(self.clock)
            en = f"at {_clock_en(hh, mm)}" + (" yesterday" if self.day_offset == -1 else "")
            zh = ("昨天" if self.day_offset == -1 else "") + f"{hh}点" + (f"{mm}分" if mm else "")
            return ResolvedWindow(None, min(at.timestamp(), now_s), en, zh, (hh, mm) if mm else (hh,))
        if self.kind == "since_clock":
            start = _at(day, self.clock)
            hh, mm = _hm(self.clock)
            en = f"since {_clock_en(hh, mm)}" + (" yesterday" if self.day_offset == -1 else "")
            zh = ("昨天" if self.day_offset == -1 else "") + f"{hh}点" + (f"{mm}分" if mm else "") + "以来"
            return ResolvedWindow(start.timestamp(), now_s, en, zh, (hh, mm) if mm else (hh,))
        a, b = self.clock.split("-")
        start, end = _at(day, a), _at(day, b)
        (h1, m1), (h2, m2) = _hm(a), _hm(b)
        when = " yesterday" if self.day_offset == -1 else ""
        en = f"between {_clock_en(h1, m1)} and {_clock_en(h2, m2)}{when}"
        zh = ("昨天" if self.day_offset == -1 else "") + f"{h1}点{m1 or ''}{'分' if m1 else ''}到{h2}点{m2 or ''}{'分' if m2 else ''}"
        return ResolvedWindow(start.timestamp(), min(end.timestamp(), now_s), en, zh,
                              tuple(v for v in (h1, m1, h2, m2) if v))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _say_duration(seconds: float) -> Tuple[float, str, str]:
    for unit, en, zh in ((86400, "day", "天"), (3600, "hour", "小时"), (60, "minute", "分钟")):
        if seconds >= unit and (seconds / unit).is_integer():
            return seconds / unit, en, zh
    if seconds >= 3600 and (seconds / 1800).is_integer():
        return seconds / 3600, "hour", "小时"
    return seconds, "second", "秒"


def _hm(clock: str) -> Tuple[int, int]:
    hh, mm = clock.split(":")
    h, m = int(hh), int(mm)
    if not (0 <= h <= 24 and 0 <= m < 60):
        raise InputError(f"not a clock time: {clock!r}")
    return h, m


def _at(day: dt.datetime, clock: str) -> dt.datetime:
    h, m = _hm(clock)
    return day + dt.timedelta(hours=h, minutes=m)


def _clock_en(h: int, m: int) -> str:
    suffix = "am" if h < 12 or h == 24 else "pm"
    h12 = h % 12 or 12
    return f"{h12}{':%02d' % m if m else ''} {suffix}"


@dataclass(frozen=True)
class Query:
    """What a question asks (see the module docs for the intents).

    Attributes:
        places: line/zone names (empty: every place; for ``occupancy``: every zone).
        class_ids: classes (None: every class).
        direction: "in" | "out" (zones: entries | exits), None: both.
        window: the time window.
        interval_s: bucket width for ``busiest`` / ``series`` (None: chosen from the window).
        lang: "en" | "zh" — the language to answer in.
        unknown: names the question used that the catalogue lacks ("the gate line", "cars").
        yes_no: the question wants yes or no ("did anyone ...?", "is anyone in ...?").
    """

    intent: str
    places: Tuple[str, ...] = ()
    class_ids: Optional[Tuple[int, ...]] = None
    direction: Optional[str] = None
    window: WindowSpec = field(default_factory=WindowSpec)
    interval_s: Optional[float] = None
    lang: str = "en"
    unknown: Tuple[str, ...] = ()
    yes_no: bool = False

    def __post_init__(self) -> None:
        if self.intent not in INTENTS:
            raise InputError(f"Query.intent must be one of {INTENTS}, got {self.intent!r}")
        if self.direction not in (None, "in", "out"):
            raise InputError(f"Query.direction must be 'in', 'out' or None, got {self.direction!r}")
        if self.lang not in ("en", "zh"):
            raise InputError(f"Query.lang must be 'en' or 'zh', got {self.lang!r}")

    def validate(self, catalog: Catalog) -> None:
        """Raise InputError if the query names a place or class the catalogue lacks."""
        bad = [p for p in self.places if p not in catalog.places]
        if bad:
            raise InputError(f"unknown line or zone {bad}; known: {sorted(catalog.places)}")
        if self.class_ids is not None:
            bad_c = [c for c in self.class_ids if c not in catalog.classes]
            if bad_c:
                raise InputError(f"unknown class ids {bad_c}; known: {dict(catalog.classes)}")

    def as_dict(self) -> Dict[str, object]:
        return {"intent": self.intent, "places": list(self.places),
                "class_ids": None if self.class_ids is None else list(self.class_ids),
                "direction": self.direction,
                "window": {"kind": self.window.kind, "seconds": self.window.seconds, "clock": self.window.clock,
                           "day_offset": self.window.day_offset},
                "interval_s": self.interval_s, "lang": self.lang, "unknown": list(self.unknown),
                "yes_no": self.yes_no}
