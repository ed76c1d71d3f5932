"""Execute a :class:`~edge_runtime.ask.query.Query` against a data view: exact numbers and the sentence
that states them, in English or Chinese.

Conventions (also what ``benchmarks/bench_grounding.py`` computes its expected answers with):

- No place named: a count is over every **line** (crossings), or every zone when the question speaks of
  entering / leaving a zone; occupancy is over every zone, or what is in view for "in view" / "now".
- Directions: lines "in" / "out"; zones "enter" / "exit" (a question's "in" / "out" maps to them).
- Windows end at the latest processed frame ("now" of the data).
- ``busiest`` / ``series`` bucket events by ``interval_s`` aligned to multiples of it on the source clock;
  without one, 1 minute for windows up to an hour, 15 minutes up to 12 hours, 1 hour beyond.
- Outages: when the window of an answer about events overlaps a stretch in which the source delivered
  no video (stored by the job, see :meth:`~edge_runtime.runtime.store.Store.outages`), the answer says
  for how long and why, as a caveat sentence made here (never by the model): "the camera was without
  video for 12 min of that window (stream lost), so the counts may be low".
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..runtime.store_schema import clipped_seconds
from .data import DataView, EventFilter
from .numbers import numbers_in
from .query import WALL_CLOCK_MIN_S, Catalog, Query, ResolvedWindow

__all__ = ["Facts", "compute_facts", "describe_catalog"]

_MAX_BUCKETS = 48
#: Intents whose answer counts or looks for events in a window (an outage in it is worth a caveat).
_WINDOWED = ("count", "exists", "last", "first", "busiest", "series", "net", "compare")
_MIN_OUTAGE_S = 1.0  # shorter outages in a window are not mentioned (nothing could have been missed)


@dataclass
class Facts:
    """The answer's numbers and its sentences.

    Attributes:
        query: what was asked.
        value: the headline result (a count, a yes/no, a time, a place name, a list of counts).
        numbers: every number a phrasing of this answer may contain.
        headline: the numbers a phrasing must contain (at least one of them).
        text_en, text_zh: the answer, stated by template (without the caveat).
        data: the raw figures (for ``--json`` and tool calls).
        answerable: False when the answer explains what can be asked instead.
        caveat_en, caveat_zh: a sentence that qualifies the answer ("the camera was without video for
            12 min of that window ..."), "" when there is none; part of :meth:`text`, its numbers in
            ``numbers``.
    """

    query: Query
    value: Any
    numbers: List[float]
    headline: List[float]
    text_en: str
    text_zh: str
    data: Dict[str, Any] = field(default_factory=dict)
    answerable: bool = True
    caveat_en: str = ""
    caveat_zh: str = ""

    def _zh(self, lang: Optional[str]) -> bool:
        return (lang or self.query.lang) == "zh"

    def sentence(self, lang: Optional[str] = None) -> str:
        """The answer without its caveat (what a model may reword)."""
        return self.text_zh if self._zh(lang) else self.text_en

    def with_caveat(self, sentence: str, lang: Optional[str] = None) -> str:
        """``sentence`` followed by the caveat, if there is one."""
        caveat = self.caveat_zh if self._zh(lang) else self.caveat_en
        if not caveat:
            return sentence
        return sentence + caveat if self._zh(lang) else f"{sentence} {caveat}"

    def text(self, lang: Optional[str] = None) -> str:
        """The whole answer: the sentence and its caveat."""
        return self.with_caveat(self.sentence(lang), lang)


def _nums(*values: Any) -> List[float]:
    out: List[float] = []
    for v in values:
        if isinstance(v, (list, tuple, set)):
            out.extend(_nums(*v))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
    return out


def describe_catalog(catalog: Catalog) -> Tuple[str, str]:
    """Which lines, zones and classes exist, in English and Chinese."""
    lines = ", ".join(catalog.lines) or "none"
    zones = ", ".join(catalog.zones) or "none"
    classes = ", ".join(catalog.classes.values()) or "none"
    en = f"Lines: {lines}. Zones: {zones}. Classes: {classes}."
    zh = f"线：{lines}。区域：{zones}。类别：{classes}。"
    return en, zh


def _say_time(t: float, now: Optional[float], tz: Optional[dt.tzinfo]) -> Tuple[str, str, List[float]]:
    if t < WALL_CLOCK_MIN_S:
        s = f"{t:.1f}"
        return f"{s} s into the video", f"视频第{s}秒", [round(t, 1)]
    when = dt.datetime.fromtimestamp(t, tz)
    today = dt.datetime.fromtimestamp(now if now is not None else t, tz).date()
    hms = when.strftime("%H:%M:%S")
    nums = [when.hour, when.minute, when.second]
    if when.date() == today:
        return f"at {hms} today", f"今天{hms}", nums
    if when.date() == today - dt.timedelta(days=1):
        return f"at {hms} yesterday", f"昨天{hms}", nums
    day = when.strftime("%Y-%m-%d")
    return f"at {hms} on {day}", f"{day} {hms}", nums + [when.year, when.month, when.day]


def _say_span(start: float, interval_s: float, now: Optional[float], tz: Optional[dt.tzinfo]
              ) -> Tuple[str, str, List[float]]:
    end = start + interval_s
    if start < WALL_CLOCK_MIN_S:
        return (f"{start:g}–{end:g} s into the video", f"视频第{start:g}到{end:g}秒", [start, end])
    a, b = dt.datetime.fromtimestamp(start, tz), dt.datetime.fromtimestamp(end, tz)
    fmt = "%H:%M" if interval_s >= 60 and start % 60 == 0 else "%H:%M:%S"
    day_en, day_zh, day_nums = _say_time(start, now, tz)
    day_en = day_en.split(" ", 2)[2] if day_en.startswith("at ") else ""
    day_zh = day_zh[:-len(a.strftime("%H:%M:%S"))]
    nums = [a.hour, a.minute, b.hour, b.minute] + ([a.second, b.second] if fmt.endswith("%S") else [])
    nums += day_nums[3:]
    return (f"{a.strftime(fmt)}–{b.strftime(fmt)} {day_en}".strip(), f"{day_zh}{a.strftime(fmt)}到{b.strftime(fmt)}",
            nums)


def _interval_text(interval_s: float) -> Tuple[str, str, List[float]]:
    for unit, en, zh in ((3600, "hour", "小时"), (60, "minute", "分钟"), (1, "second", "秒")):
        if interval_s >= unit and interval_s % unit == 0:
            n = int(interval_s // unit)
            return (en if n == 1 else f"{n} {en}s"), (f"{zh}" if n == 1 else f"{n}{zh}"), ([] if n == 1 else [n])
    return f"{interval_s:g} seconds", f"{interval_s:g}秒", [interval_s]


class _Ctx:
    def __init__(self, query: Query, view: DataView, catalog: Catalog, tz: Optional[dt.tzinfo]) -> None:
        self.q, self.view, self.catalog, self.tz = query, view, catalog, tz
        self.now = view.now_s()
        self.window: ResolvedWindow = query.window.resolve(self.now, tz)
        c = query.class_ids
        people = all("person" in lab or "people" in lab for lab in catalog.classes.values())
        self.noun_en, self.noun1_en, self.noun_zh = ("people", "person", "人") if people else (
            "objects", "object", "个目标")
        labels = [catalog.classes.get(i, str(i)) for i in (c or ())]
        if c is not None and len(labels) == 1:
            lab = labels[0]
            self.noun1_en = lab
            self.noun_en = lab.replace("person", "people") if "person" in lab else lab + "s"
            self.noun_zh = "人" if lab == "person" else f"个{lab}"
        elif c is not None and not people:
            self.noun_en = " or ".join(labels) + " objects"
            self.noun1_en = " or ".join(labels) + " object"

    def noun(self, n: int) -> str:
        return self.noun1_en if n == 1 else self.noun_en

    def places(self, *, zones: Optional[bool] = None) -> Tuple[str, ...]:
        if self.q.places:
            return self.q.places
        if zones is None:
            zones = not self.catalog.lines
        return self.catalog.zones if zones else self.catalog.lines

    def dirs(self, places: Sequence[str]) -> Tuple[str, ...]:
        d = self.q.direction
        if d is None:
            return ()
        kinds = {self.catalog.kind(p) for p in places}
        out = []
        if "line" in kinds:
            out.append(d)
        if "zone" in kinds:
            out.append({"in": "enter", "out": "exit"}[d])
        return tuple(out)

    def flt(self, places: Sequence[str]) -> EventFilter:
        return tuple(places), self.q.class_ids, self.dirs(places)

    def place_text(self, places: Sequence[str]) -> Tuple[str, str]:
        if not places:
            return "any line", "任何线"
        kinds = {self.catalog.kind(p) for p in places}
        if len(places) == 1:
            k = self.catalog.kind(places[0])
            return f"the {places[0]} {k}", f"{places[0]}{'区域' if k == 'zone' else '线'}"
        joined = ", ".join(places[:-1]) + " and " + places[-1]
        noun = "lines" if kinds == {"line"} else "zones" if kinds == {"zone"} else "lines and zones"
        return f"the {joined} {noun}", "、".join(places)

    def verb(self, places: Sequence[str]) -> Tuple[str, str]:
        zone = all(self.catalog.kind(p) == "zone" for p in places) and places
        d = self.q.direction
        if zone:
            return {"in": ("entered", "进入"), "out": ("left", "离开")}.get(d or "", ("entered or left", "进出"))
        return {"in": ("crossed in", "向内经过"), "out": ("crossed out", "向外经过")}.get(d or "", ("crossed", "经过"))


def compute_facts(query: Query, view: DataView, catalog: Catalog, *, tz: Optional[dt.tzinfo] = None) -> Facts:
    """The exact answer to ``query`` from ``view`` (see the module docs for the conventions).

    Raises:
        InputError: a clock-time window on data timed in video seconds (the message says what to ask).
    """
    if query.unknown:
        return _unknown(query, catalog)
    if query.intent == "places":
        en, zh = describe_catalog(catalog)
        return Facts(query, sorted(catalog.places), [], [], en, zh, {"places": dict(catalog.places),
                                                                    "classes": dict(catalog.classes)})
    if query.intent == "sensor":
        return _sensor(query, view, tz)
    ctx = _Ctx(query, view, catalog, tz)
    facts = {"count": _count, "exists": _count, "occupancy": _occupancy, "last": _extreme, "first": _extreme,
             "busiest": _busiest, "series": _series, "net": _net, "compare": _compare}[query.intent](ctx)
    if query.intent in _WINDOWED and facts.answerable:
        _note_outages(facts, ctx)
    return facts


def _say_duration(seconds: float) -> Tuple[str, str]:
    """A length of time, rounded as a person would say it: "40 s", "12 min", "2.5 h"."""
    if seconds < 90:
        n = max(1, round(seconds))
        return f"{n} s", f"{n}秒"
    if seconds < 2 * 3600:
        n = round(seconds / 60)
        return f"{n} min", f"{n}分钟"
    h = f"{seconds / 3600:.1f}".removesuffix(".0")
    return f"{h} h", f"{h}小时"


def _note_outages(facts: Facts, ctx: _Ctx) -> None:
    """Add the caveat (and ``data["outages"]``) when the window overlaps an outage of the source.

    The window is the one the answer counted over: ``(since_s, until_s]``, ending at the latest frame
    when it is open-ended.
    """
    w = ctx.window
    until = w.until_s if w.until_s is not None else ctx.now
    outages = list(getattr(ctx.view, "outages", lambda *_: [])(w.since_s, until)) if until is not None else []
    seconds = clipped_seconds(outages, w.since_s, until)
    if seconds < _MIN_OUTAGE_S:
        return
    reasons = list(dict.fromkeys(o.reason for o in outages))
    why = "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
    if len(outages) > 1:
        why = f"{len(outages)} outages: {why}"
    dur_en, dur_zh = _say_duration(seconds)
    events = ctx.q.intent in ("last", "first")
    facts.caveat_en = (f"Note: the camera was without video for {dur_en} of that window ({why}), so "
                       + ("an event in that time would not be known." if events else "the counts may be low."))
    facts.caveat_zh = (f"注意：该时段内摄像头有{dur_zh}无画面（{why}），"
                       + ("期间的事件无法得知。" if events else "计数可能偏低。"))
    facts.numbers = facts.numbers + numbers_in(facts.caveat_en) + numbers_in(facts.caveat_zh)
    facts.data["outages"] = {"seconds": round(seconds, 1), "list": [
        {"start_s": o.start_s, "end_s": o.end_s, "reason": o.reason, "attempts": o.attempts} for o in outages]}


def _sensor(query: Query, view: DataView, tz: Optional[dt.tzinfo]) -> Facts:
    """A node's reading (wall clock): the last one at or before the asked time, or the latest."""
    import time as _time

    name = query.places[0]
    now = _time.time()
    w = query.window.resolve(now, tz)
    reading = getattr(view, "reading_at", lambda *_: None)(name, w.until_s)
    when_en = "" if query.window.kind == "all" else f" {w.text_en}"
    if reading is None:
        en = f"There is no reading of {name}{' before' + when_en if when_en else ''}."
        return Facts(query, None, [], [], en, f"没有{name}的读数。", {"reading": None})
    node, value, ts = reading
    t_en, t_zh, t_nums = _say_time(ts, now, tz)
    shown = int(value) if float(value).is_integer() else round(value, 3)
    prefix_en = prefix_zh = ""
    if query.yes_no and value in (0.0, 1.0):
        prefix_en, prefix_zh = ("Yes: ", "是：") if value == 1.0 else ("No: ", "否：")
    en = f"{prefix_en}{name} read {shown} {t_en} (node {node}{', the last reading' + when_en if when_en else ''})."
    zh = f"{prefix_zh}{name}在{t_zh}的读数是{shown}（节点{node}）。"
    value_out: Any = (value == 1.0) if prefix_en else value
    return Facts(query, value_out, _nums(shown, t_nums, w.numbers), [float(shown)], en, zh,
                 {"reading": {"node": node, "value": value, "timestamp_s": ts}})


def _unknown(query: Query, catalog: Catalog) -> Facts:
    en, zh = describe_catalog(catalog)
    names = ", ".join(repr(u) for u in query.unknown)
    return Facts(query, None, [], [], f"I can't answer about {names}: this camera does not count it. {en}",
                 f"无法回答关于{names}的问题：这台摄像头不统计它。{zh}", {"unknown": list(query.unknown)},
                 answerable=False)


def _count(ctx: _Ctx) -> Facts:
    q = ctx.q
    zone_words = q.direction is not None and not q.places and not ctx.catalog.lines
    places = ctx.places(zones=zone_words or None)
    counts = ctx.view.event_counts(ctx.window.since_s, ctx.window.until_s, ctx.flt(places))
    total = sum(counts.values())
    by_dir: Dict[str, int] = {}
    by_place: Dict[str, int] = {}
    for (name, _, d), n in counts.items():
        by_dir[d] = by_dir.get(d, 0) + n
        by_place[name] = by_place.get(name, 0) + n
    place_en, place_zh = ctx.place_text(places if q.places else ())
    if not q.places:
        place_en = "the lines" if not zone_words else "the zones"
        place_zh = "各条线" if not zone_words else "各区域"
    verb_en, verb_zh = ctx.verb(places)
    w = ctx.window
    detail_en = detail_zh = ""
    if q.direction is None and by_dir:
        detail_en = " (" + ", ".join(f"{n} {d}" for d, n in sorted(by_dir.items())) + ")"
        zh_dir = {"in": "进", "out": "出", "enter": "进入", "exit": "离开"}
        detail_zh = "（" + "，".join(f"{zh_dir[d]}{n}" for d, n in sorted(by_dir.items())) + "）"
    if not q.places and len(by_place) > 1:
        detail_en += ": " + ", ".join(f"{p} {n}" for p, n in sorted(by_place.items()))
        detail_zh += "：" + "，".join(f"{p} {n}" for p, n in sorted(by_place.items()))
    if q.intent == "exists" or q.yes_no:
        last = ctx.view.extreme_event(w.since_s, w.until_s, ctx.flt(places), first=False) if total else None
        if total:
            t_en, t_zh, t_nums = _say_time(last[0], ctx.now, ctx.tz)  # type: ignore[index]
            en = f"Yes: {total} {ctx.noun(total)} {verb_en} {place_en} {w.text_en}{detail_en}; the last {t_en}."
            zh = f"有：{w.text_zh}共{total}{ctx.noun_zh}{verb_zh}{place_zh}{detail_zh}，最后一次在{t_zh}。"
        else:
            t_nums = []
            en = f"No: no {ctx.noun_en} {verb_en} {place_en} {w.text_en}."
            zh = f"没有：{w.text_zh}没有{ctx.noun_zh.lstrip('个')}{verb_zh}{place_zh}。"
        return Facts(ctx.q, total > 0, _nums(total, list(by_dir.values()), list(by_place.values()), w.numbers,
                                             t_nums), [float(total)] if total else [], en, zh,
                     {"total": total, "by_direction": by_dir, "by_place": by_place, "window": _wdict(w)})
    en = f"{total} {ctx.noun(total)} {verb_en} {place_en} {w.text_en}{detail_en}."
    zh = f"{w.text_zh}共有{total}{ctx.noun_zh}{verb_zh}{place_zh}{detail_zh}。"
    return Facts(ctx.q, total, _nums(total, list(by_dir.values()), list(by_place.values()), w.numbers),
                 [float(total)], en, zh, {"total": total, "by_direction": by_dir, "by_place": by_place,
                                          "window": _wdict(w)})


def _wdict(w: ResolvedWindow) -> Dict[str, Any]:
    return {"since_s": w.since_s, "until_s": w.until_s, "text": w.text_en}


def _occupancy(ctx: _Ctx) -> Facts:
    q = ctx.q
    zones = tuple(p for p in q.places if ctx.catalog.kind(p) == "zone")
    lines = tuple(p for p in q.places if ctx.catalog.kind(p) == "line")
    if lines and not zones:
        en = (f"{lines[0]} is a line: it counts crossings, not who is on it. Ask how many crossed it, or ask about "
              f"a zone ({', '.join(ctx.catalog.zones) or 'none configured'}).")
        zh = f"{lines[0]}是一条线，只统计经过的数量，不统计停留人数。"
        return Facts(q, None, [], [], en, zh, {}, answerable=False)
    when_en = "now"
    if ctx.now is not None:
        when_en = f"at the latest frame ({_say_time(ctx.now, ctx.now, ctx.tz)[0].removeprefix('at ')})"
    if not zones:
        seen = ctx.view.in_view()
        if seen is not None:
            n = sum(v for c, v in seen.items() if q.class_ids is None or c in q.class_ids)
            en = f"{n} {ctx.noun(n)} {'is' if n == 1 else 'are'} in view now."
            zh = f"画面中现在有{n}{ctx.noun_zh}。"
            if q.yes_no:
                en = ("Yes: " if n else "No: ") + en
                zh = ("有：" if n else "没有：") + zh
            return Facts(q, n, _nums(n), [float(n)], en, zh, {"in_view": seen})
        zones = ctx.catalog.zones
        if not zones:
            en = "The database does not record how many are in view, and no zones are configured."
            return Facts(q, None, [], [], en, "数据库没有记录画面中的人数，也没有配置区域。", {}, answerable=False)
        seen_note = True
    else:
        seen_note = False
    occ = ctx.view.occupancy(zones)
    per_zone = {z: sum(v for c, v in occ.get(z, {}).items() if q.class_ids is None or c in q.class_ids)
                for z in zones}
    total = sum(per_zone.values())
    if len(zones) == 1:
        z = zones[0]
        n = per_zone[z]
        en = f"{n} {ctx.noun(n)} {'is' if n == 1 else 'are'} in the {z} zone {when_en}."
        zh = f"{z}区域现在有{n}{ctx.noun_zh}。"
    else:
        en = (f"{total} {ctx.noun(total)} {'is' if total == 1 else 'are'} in the zones {when_en}: "
              + ", ".join(f"{z} {n}" for z, n in per_zone.items()) + ".")
        zh = f"各区域现在共有{total}{ctx.noun_zh}：" + "，".join(f"{z} {n}" for z, n in per_zone.items()) + "。"
    if seen_note:  # asked what is in view; the records only know the zones
        return Facts(q, None, _nums(total, list(per_zone.values()), _say_time(ctx.now or 0, ctx.now, ctx.tz)[2]),
                     [], "The records do not say how many are in view (only a running job knows); " + en[0].lower()
                     + en[1:], "记录中没有画面内的人数（只有运行中的任务知道）；" + zh,
                     {"occupancy": per_zone, "as_of_s": ctx.now}, answerable=False)
    if q.yes_no:
        en = ("Yes: " if total else "No: ") + en
        zh = ("有：" if total else "没有：") + zh
    return Facts(q, total, _nums(total, list(per_zone.values()), _say_time(ctx.now or 0, ctx.now, ctx.tz)[2]),
                 [float(total)], en, zh, {"occupancy": per_zone, "as_of_s": ctx.now})


def _extreme(ctx: _Ctx) -> Facts:
    q = ctx.q
    first = q.intent == "first"
    places = ctx.places(zones=None) if not q.places else q.places
    w = ctx.window
    hit = ctx.view.extreme_event(w.since_s, w.until_s, ctx.flt(places), first=first)
    word_en, word_zh = ("first", "第一次") if first else ("last", "最后一次")
    place_en, place_zh = ctx.place_text(places if q.places else ())
    verb_en, verb_zh = ctx.verb(places)
    if hit is None:
        en = f"No {ctx.noun_en} {verb_en} {place_en} {w.text_en}."
        zh = f"{w.text_zh}没有{ctx.noun_zh.lstrip('个')}{verb_zh}{place_zh}。"
        return Facts(q, None, _nums(w.numbers), [], en, zh, {"event": None})
    t, name, cid, d = hit
    t_en, t_zh, t_nums = _say_time(t, ctx.now, ctx.tz)
    label = ctx.catalog.classes.get(cid, str(cid))
    kind = ctx.catalog.kind(name)
    how_en = {"in": "crossed in", "out": "crossed out", "enter": "entered", "exit": "left"}[d]
    how_zh = {"in": "向内经过", "out": "向外经过", "enter": "进入", "exit": "离开"}[d]
    en = f"The {word_en} {label} {how_en} the {name} {kind} {t_en}."
    zh = f"{word_zh}是{t_zh}，一个{label}{how_zh}{name}{'区域' if kind == 'zone' else '线'}。"
    return Facts(q, t, _nums(t_nums, w.numbers), t_nums[:2], en, zh,
                 {"event": {"timestamp_s": t, "name": name, "class_id": cid, "direction": d}})


def _default_interval(span_s: float) -> float:
    return 60.0 if span_s <= 3600 else 900.0 if span_s <= 12 * 3600 else 3600.0


def _span(ctx: _Ctx, places: Sequence[str]) -> Tuple[float, float]:
    w = ctx.window
    until = w.until_s if w.until_s is not None else (ctx.now or 0.0)
    since = w.since_s
    if since is None:
        first = ctx.view.extreme_event(None, w.until_s, ctx.flt(places), first=True)
        since = first[0] if first else until
    return since, until


def _busiest(ctx: _Ctx) -> Facts:
    q = ctx.q
    places = q.places or ctx.places(zones=None)
    since, until = _span(ctx, places)
    interval = q.interval_s or _default_interval(until - since)
    buckets = ctx.view.bucket_counts(interval, ctx.window.since_s, ctx.window.until_s, ctx.flt(places))
    it_en, it_zh, it_nums = _interval_text(interval)
    place_en, place_zh = ctx.place_text(places if q.places else ())
    if not q.places:
        place_en, place_zh = "all lines" if not ctx.catalog.lines or places == ctx.catalog.lines else "all zones", "所有线"
    if not buckets:
        en = f"Nothing was counted on {place_en} {ctx.window.text_en}, so no {it_en} was busiest."
        zh = f"{ctx.window.text_zh}{place_zh}没有计数。"
        return Facts(q, None, _nums(ctx.window.numbers, it_nums), [], en, zh, {"buckets": {}})
    start, n = max(sorted(buckets.items()), key=lambda kv: kv[1])
    s_en, s_zh, s_nums = _say_span(start, interval, ctx.now, ctx.tz)
    en = (f"The busiest {it_en} on {place_en} {ctx.window.text_en} was {s_en}, with {n} "
          f"{'event' if n == 1 else 'events'}.")
    zh = f"{ctx.window.text_zh}{place_zh}最忙的{it_zh}是{s_zh}，共{n}次。"
    return Facts(q, {"start_s": start, "count": n}, _nums(n, s_nums, it_nums, ctx.window.numbers), [float(n)],
                 en, zh, {"interval_s": interval, "start_s": start, "count": n})


def _series(ctx: _Ctx) -> Facts:
    q = ctx.q
    places = q.places or ctx.places(zones=None)
    since, until = _span(ctx, places)
    interval = q.interval_s or _default_interval(until - since)
    if (until - since) / interval > _MAX_BUCKETS:
        interval = _default_interval(until - since)
        while (until - since) / interval > _MAX_BUCKETS:
            interval *= 2
    buckets = ctx.view.bucket_counts(interval, ctx.window.since_s, ctx.window.until_s, ctx.flt(places))
    first_b = math.floor(since / interval) * interval
    starts = [first_b + i * interval for i in range(int(math.floor((until - first_b) / interval)) + 1)]
    values = [buckets.get(s, 0) for s in starts]
    total = sum(values)
    avg = round(total / len(values), 1) if values else 0.0
    half = len(values) // 2
    a, b = sum(values[:half]), sum(values[half:])
    trend_en, trend_zh = (("rising", "上升") if b > a * 1.25 and b - a >= 2 else
                          ("falling", "下降") if a > b * 1.25 and a - b >= 2 else ("steady", "平稳"))
    it_en, it_zh, it_nums = _interval_text(interval)
    place_en, place_zh = ctx.place_text(places if q.places else ())
    if not q.places:
        place_en, place_zh = "all lines", "所有线"
    en = (f"Per {it_en} on {place_en} {ctx.window.text_en}: {', '.join(map(str, values))} "
          f"(total {total}, average {avg:g} per {it_en}, {trend_en}).")
    zh = (f"{ctx.window.text_zh}{place_zh}每{it_zh}：{'、'.join(map(str, values))}（共{total}，平均每{it_zh}"
          f"{avg:g}，趋势{trend_zh}）。")
    return Facts(q, values, _nums(values, total, avg, it_nums, ctx.window.numbers), [float(total)], en, zh,
                 {"interval_s": interval, "starts_s": starts, "counts": values, "total": total, "average": avg,
                  "trend": trend_en})


def _net(ctx: _Ctx) -> Facts:
    q = ctx.q
    places = q.places or ctx.places(zones=None)
    plain = Query(q.intent, q.places, q.class_ids, None, q.window, q.interval_s, q.lang)
    c2 = _Ctx(plain, ctx.view, ctx.catalog, ctx.tz)
    counts = ctx.view.event_counts(ctx.window.since_s, ctx.window.until_s, c2.flt(places))
    ins = sum(n for (_, _, d), n in counts.items() if d in ("in", "enter"))
    outs = sum(n for (_, _, d), n in counts.items() if d in ("out", "exit"))
    net = ins - outs
    place_en, place_zh = ctx.place_text(places if q.places else ())
    if not q.places:
        place_en, place_zh = "all lines", "所有线"
    zone = all(ctx.catalog.kind(p) == "zone" for p in places)
    a, b = ("entries", "exits") if zone else ("in", "out")
    en = f"Net on {place_en} {ctx.window.text_en}: {net:+d} {ctx.noun(abs(net))} ({ins} {a}, {outs} {b})."
    zh = f"{ctx.window.text_zh}{place_zh}净{'流入' if net >= 0 else '流出'}{abs(net)}（进{ins}，出{outs}）。"
    return Facts(q, net, _nums(net, abs(net), ins, outs, ctx.window.numbers), [float(abs(net))], en, zh,
                 {"net": net, "in": ins, "out": outs})


def _compare(ctx: _Ctx) -> Facts:
    q = ctx.q
    places = q.places if len(q.places) >= 2 else (q.places or ctx.catalog.lines)
    if len(places) < 2 and not q.places:
        places = tuple(ctx.catalog.places)
    counts = ctx.view.event_counts(ctx.window.since_s, ctx.window.until_s, ctx.flt(places))
    per = {p: 0 for p in places}
    for (name, _, _), n in counts.items():
        per[name] = per.get(name, 0) + n
    ranked = sorted(per.items(), key=lambda kv: (-kv[1], list(places).index(kv[0])))
    top, top_n = ranked[0]
    verb_en, verb_zh = ctx.verb(places)
    listing = ", ".join(f"{p} {n}" for p, n in per.items())
    tie = len(ranked) > 1 and ranked[1][1] == top_n
    if tie:
        en = f"{ctx.noun_en.capitalize()} that {verb_en} {ctx.window.text_en}: {listing}; {ranked[0][0]} and {ranked[1][0]} are level."
        zh = f"{ctx.window.text_zh}{verb_zh}数量：{'，'.join(f'{p} {n}' for p, n in per.items())}；{ranked[0][0]}与{ranked[1][0]}持平。"
        value: Any = None
    else:
        diff = top_n - ranked[1][1]
        en = (f"{ctx.noun_en.capitalize()} that {verb_en} {ctx.window.text_en}: {listing}. {top} had the most, "
              f"{diff} more than {ranked[1][0]}.")
        zh = (f"{ctx.window.text_zh}{verb_zh}数量：{'，'.join(f'{p} {n}' for p, n in per.items())}。{top}最多，"
              f"比{ranked[1][0]}多{diff}。")
        value = top
    diffs = [abs(a - b) for a in per.values() for b in per.values()]
    return Facts(q, value, _nums(list(per.values()), diffs, ctx.window.numbers), [float(top_n)], en, zh,
                 {"per_place": per, "most": value})
