"""The deterministic question reader: English and Chinese, typos forgiven, every slot explained.

:func:`parse` maps a question to a :class:`~edge_runtime.ask.query.Query` and says how sure it is:

- ``confident``: the intent and every slot were read from words the rules know; the query is used as is.
- not confident: the question is about the counts (it names a place, a class, a crossing verb, a
  direction or a window) but the rules could not tell what it asks; the constrained LLM parser is
  tried next (:mod:`.parse_llm`).
- intent ``other``: nothing in it is about the counts; the chat model answers it as a conversation.

Names the question uses that the catalogue lacks ("the gate line", "cars") are kept in
``Query.unknown`` so the answer can say which ones exist.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .numbers import parse_number_word
from .query import Catalog, Query, WindowSpec

__all__ = ["ParseResult", "parse", "is_chinese"]

_CJK = re.compile(r"[\u4e00-\u9fff]")

_EN_NUM = (r"(?:\d+(?:\.\d+)?|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|"
           r"twenty|thirty|forty|forty-five|fifty|sixty|ninety|a couple of|couple of|few|a few|several)")
_EN_UNIT = r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)"
_UNIT_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600,
           "d": 86400, "day": 86400}
_ZH_NUM = r"(\d+|[零一二两三四五六七八九十百]+|半)?"
_ZH_UNIT = r"(秒钟?|分钟|分|小时|个小时|钟头|天)"
_ZH_UNIT_S = {"秒": 1, "秒钟": 1, "分钟": 60, "分": 60, "小时": 3600, "个小时": 3600, "钟头": 3600, "天": 86400}

#: Words for every person-like label, and the extra words of particular labels (matched longest first).
_PERSON_EN = ("people", "persons", "person", "pedestrians", "pedestrian", "walkers", "walker", "humans", "human",
              "passersby", "passers-by", "visitors", "visitor", "someone", "anyone", "somebody", "anybody",
              "everyone", "individuals")
_FALLEN_EN = ("fallen people", "fallen persons", "fallen person", "fallen", "people lying", "person lying",
              "lying people", "lying down", "falls", "fall", "fell", "fallen down", "collapsed")
_PERSON_ZH = ("行人", "路人", "人员", "人")
_FALLEN_ZH = ("摔倒", "跌倒", "倒地", "躺", "摔")
#: Object words that are classes of other models: asked about, they name an unknown class.
_OTHER_CLASSES_EN = ("cars", "car", "trucks", "truck", "buses", "bus", "bikes", "bike", "bicycles", "bicycle",
                     "cyclists", "cyclist", "motorbikes", "motorcycles", "dogs", "dog", "cats", "cat", "ducks",
                     "duck", "chickens", "birds", "bird", "horses", "cows", "sheep", "vehicles", "vehicle")
_OTHER_CLASSES_ZH = ("汽车", "车辆", "自行车", "车", "狗", "猫", "鸭子", "鸭", "鸟")
_ALL_CLASSES = ("objects", "things", "anything", "everything", "detections", "tracks")

_VERBS = ("cross", "crossed", "crosses", "crossing", "crossings", "pass", "passed", "passes", "passing", "walk",
          "walked", "walking", "went", "go", "gone", "came", "come", "coming", "enter", "entered", "enters",
          "entering", "entry", "entries", "exit", "exited", "exits", "exiting", "leave", "left", "leaving",
          "arrive", "arrived", "arrivals", "seen", "saw", "spotted", "detected", "counted", "traffic", "moved")
_CONTEXT = ("line", "lines", "zone", "zones", "area", "occupancy", "inside", "camera", "view", "screen",
            "frame", "busiest", "peak", "crossings", "tally")
_ZH_CONTEXT = ("经过", "通过", "穿过", "越过", "进入", "进来", "进", "离开", "出去", "出", "线", "区", "画面",
               "看到", "计数", "多少", "几个", "几人")

_VOCAB = sorted(set(_VERBS + _CONTEXT + _PERSON_EN + ("how", "many", "much", "minutes", "minute", "hours", "hour",
                                                   "seconds", "yesterday", "today", "since", "people", "busiest",
                                                   "number", "total", "currently", "right", "now", "last",
                                                   "first", "when", "which", "direction", "between", "compare", "count",
                                                   "fallen", "occupancy", "inside", "walkway", "average")))

_IN_EN = re.compile(r"\b(into|inwards?|inbound|enter(?:ed|s|ing)?|entr(?:y|ies)|arriv(?:e|ed|als?|ing)|"
                    r"(?:came|come|coming|went|go|going|walked|walk|crossed|cross|crossing|moved|move|headed|"
                    r"heading|passed)\s+in|in\s*(?:direction|bound|wards?)|direction\s+in|the\s+in\s+direction|"
                    r"in\b(?=\s*(?:\?|$|,|\.|and\b|or\b|on\b|at\b|through\b|across\b|via\b|today|yesterday|since|during|"
                    r"over|in\s+the\s+last)))")
_OUT_EN = re.compile(r"\b(outwards?|outbound|exit(?:ed|s|ing)?|leav(?:e|es|ing)|left(?!\s+(?:side|path|edge|"
                     r"half|lane|of|door))|depart(?:ed|ures?|ing)?|out(?!\s+of\s+(?:curiosity))\b)")


@dataclass
class ParseResult:
    """A parsed question: the query, whether the rules are sure of it, and what they read (for ``--json``)."""

    query: Query
    confident: bool
    about_counts: bool
    notes: List[str] = field(default_factory=list)


def is_chinese(text: str) -> bool:
    return _CJK.search(text) is not None


def _fix_typos(text: str, extra: Sequence[str]) -> Tuple[str, List[str]]:
    """Replace words close to a known word ("peple" -> "people"); returns the text and the fixes."""
    vocab = sorted(set(_VOCAB) | {e.lower() for e in extra})
    fixes: List[str] = []

    def fix(m: "re.Match[str]") -> str:
        w = m.group(0)
        if len(w) < 5 or w in vocab or w.isdigit():
            return w
        close = difflib.get_close_matches(w, vocab, n=1, cutoff=0.84)
        if close and close[0] != w:
            fixes.append(f"{w}->{close[0]}")
            return close[0]
        return w

    return re.sub(r"[a-z][a-z_\-]*", fix, text), fixes


def _place_forms(name: str) -> List[str]:
    low = name.lower()
    return sorted({low, low.replace("_", " "), low.replace("-", " "), low.replace("_", "-"), low.replace("_", "")},
                  key=len, reverse=True)


def _find_places(text: str, catalog: Catalog) -> Tuple[List[str], str]:
    """Places named in ``text`` (in order of mention) and the text with them blanked out."""
    hits: List[Tuple[int, str]] = []
    for name in catalog.places:
        for form in _place_forms(name):
            for m in re.finditer(r"(?<![a-z0-9])" + re.escape(form) + r"(?![a-z0-9])", text):
                hits.append((m.start(), name))
                text = text[:m.start()] + " " * len(m.group(0)) + text[m.end():]
    hits.sort()
    seen: List[str] = []
    for _, name in hits:
        if name not in seen:
            seen.append(name)
    return seen, text


def _find_classes(text: str, catalog: Catalog, zh: bool) -> Tuple[Optional[Tuple[int, ...]], List[str], str]:
    """Class ids the question names (None: all), unknown class words, and the text with them blanked."""
    labels = {cid: lab.lower() for cid, lab in catalog.classes.items()}
    fallen = [cid for cid, lab in labels.items() if any(w in lab for w in ("fall", "lying", "down"))]
    person = [cid for cid, lab in labels.items() if lab in ("person", "people", "pedestrian", "human")]
    found: List[int] = []
    unknown: List[str] = []
    # Exact labels first (longest first), then the synonym tables.
    table: List[Tuple[str, Optional[int]]] = [(lab, cid) for cid, lab in labels.items()]
    table += [(lab + "s", cid) for cid, lab in labels.items() if not lab.endswith("s")]
    table += [(lab.replace("person", "people"), cid) for cid, lab in labels.items() if "person" in lab]
    if zh:
        table += [(w, c) for w in _FALLEN_ZH for c in fallen] + [(w, c) for w in _PERSON_ZH for c in person]
        table += [(w, None) for w in _OTHER_CLASSES_ZH]
    else:
        table += [(w, c) for w in _FALLEN_EN for c in fallen] + [(w, c) for w in _PERSON_EN for c in person]
        table += [(w, None) for w in _OTHER_CLASSES_EN]
    table.sort(key=lambda p: len(p[0]), reverse=True)
    fallen_words = _FALLEN_ZH if zh else ()
    original = text
    for word, cid in table:
        if zh and cid in person and cid not in fallen and word in _PERSON_ZH and any(
                found_c in fallen for found_c in found) and any(w in original for w in fallen_words):
            continue  # "摔倒的人": the fallen person, not also every person
        pattern = re.escape(word) if zh else r"(?<![a-z])" + re.escape(word) + r"(?![a-z])"
        m = re.search(pattern, text)
        if m is None:
            continue
        if cid is None:
            if not any(word.rstrip("s") == lab.rstrip("s") for lab in labels.values()):
                unknown.append(word)
        elif cid not in found:
            found.append(cid)
        text = text[:m.start()] + " " * len(m.group(0)) + text[m.end():]
    if any(re.search(r"\b" + w + r"\b", text) for w in _ALL_CLASSES) and not found:
        return None, unknown, text
    return (tuple(sorted(found)) if found else None), unknown, text


def _unknown_places(text: str, zh: bool) -> List[str]:
    if zh:
        return [m.group(1) for m in re.finditer(r"([A-Za-z][A-Za-z0-9_\-]*)\s*(?:线|区域|区|门)", text)]
    stop = {"the", "that", "this", "a", "an", "which", "each", "every", "any", "one", "other", "what", "per",
            "same", "both", "two", "all", "finish", "start", "in", "of", "on", "by", "each", "another", "my",
            "your", "our", "first", "last", "busiest", "counting", "no", "whole", "to", "and", "or", "from",
            "across", "over", "crossed", "cross", "through", "into", "entered", "enter", "left", "exited"}
    out = []
    for m in re.finditer(r"\b([a-z][a-z0-9_\-]*)\s+(?=(line|zone|area|gate|door|entrance)\b)", text):
        word = m.group(1)
        if word not in stop and not word.isdigit():
            out.append(f"{word} {m.group(2)}")
    return out


def _window_en(text: str) -> Tuple[WindowSpec, str, bool]:
    """The window a question states, the text without it, and whether one was stated."""
    def clock(h: str, m: Optional[str], ampm: Optional[str]) -> str:
        hh, mm = int(h), int(m or 0)
        if ampm and ampm.startswith("p") and hh < 12:
            hh += 12
        if ampm and ampm.startswith("a") and hh == 12:
            hh = 0
        return f"{hh:02d}:{mm:02d}"

    t = text
    day = -1 if re.search(r"\byesterday\b", t) else 0
    clock_re = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.|o'?clock)?"
    m = re.search(r"\b(?:between|from)\s+" + clock_re + r"\s+(?:and|to|until|till|-)\s+" + clock_re, t)
    if m and (m.group(3) or m.group(6) or m.group(2) or m.group(5)):
        ampm2 = m.group(6)
        a = clock(m.group(1), m.group(2), m.group(3) or ampm2)
        b = clock(m.group(4), m.group(5), ampm2)
        return WindowSpec("between_clock", clock=f"{a}-{b}", day_offset=day), t[:m.start()] + t[m.end():], True
    m = re.search(r"\b(?:since|after|from)\s+(noon|midnight|" + clock_re + r")", t)
    if m and (m.group(1) in ("noon", "midnight") or m.group(3) or m.group(4)):
        c = "12:00" if m.group(1) == "noon" else "00:00" if m.group(1) == "midnight" else clock(
            m.group(2), m.group(3), m.group(4))
        return WindowSpec("since_clock", clock=c, day_offset=day), t[:m.start()] + t[m.end():], True
    for word, span in (("morning", "06:00-12:00"), ("afternoon", "12:00-18:00"), ("evening", "18:00-24:00")):
        m = re.search(r"\b(?:this|yesterday|in the)\s+" + word + r"\b", t)
        if m:
            return WindowSpec("between_clock", clock=span, day_offset=day), t[:m.start()] + t[m.end():], True
    m = re.search(r"\b(?:in|during|over|for|within)?\s*(?:the\s+)?(?:last|past|previous|recent)\s+(" + _EN_NUM +
                  r"\s+)?(half\s+(?:an?\s+)?)?" + _EN_UNIT + r"\b", t)
    if m is None:
        m2 = re.search(r"\bhalf\s+an?\s+hour\b", t)
        if m2:
            return WindowSpec("last", seconds=1800), t[:m2.start()] + t[m2.end():], True
    if m:
        amount_text = (m.group(1) or "").strip()
        amount_text = {"a couple of": "2", "couple of": "2", "few": "3", "a few": "3", "several": "3"}.get(
            amount_text, amount_text)
        amount = 1.0 if not amount_text else parse_number_word(amount_text) or 1.0
        if m.group(2):
            amount *= 0.5
        unit = m.group(3).rstrip("s") or "s"
        seconds = amount * _UNIT_S.get(unit, _UNIT_S.get(unit[:3], 60))
        return WindowSpec("last", seconds=seconds), t[:m.start()] + " " + t[m.end():], True
    m = re.search(r"\b(today|so far today|this day|yesterday)\b", t)
    if m:
        kind = "yesterday" if m.group(1) == "yesterday" else "today"
        return WindowSpec(kind), t[:m.start()] + t[m.end():], True
    m = re.search(r"\b(so far|in total|all time|ever|overall|altogether|since (?:counting |the )?(?:start|began|"
                  r"beginning)(?:ed)?|since counting began)\b", t)
    if m:
        return WindowSpec("all"), t[:m.start()] + t[m.end():], True
    return WindowSpec("all"), t, False


def _zh_amount(text: Optional[str]) -> float:
    if not text:
        return 1.0
    if text == "半":
        return 0.5
    return parse_number_word(text) or 1.0


def _window_zh(text: str) -> Tuple[WindowSpec, str, bool]:
    t = text
    day = -1 if "昨天" in t or "昨日" in t else 0

    def clock(h: str, m: Optional[str], part: Optional[str]) -> str:
        hh = int(parse_number_word(h) or 0)
        mm = 30 if m == "半" else int(parse_number_word(m) or 0) if m else 0
        if part in ("下午", "晚上", "傍晚") and hh < 12:
            hh += 12
        return f"{hh:02d}:{mm:02d}"

    num = r"(\d{1,2}|[零一二两三四五六七八九十]+)"
    clock_re = r"(早上|上午|中午|下午|晚上|傍晚)?" + num + r"[点:：]" + r"(\d{1,2}|[零一二三四五六七八九十]+|半)?分?"
    m = re.search(r"(?:从)?" + clock_re + r"(?:到|至|-)" + clock_re, t)
    if m:
        a = clock(m.group(2), m.group(3), m.group(1))
        b = clock(m.group(5), m.group(6), m.group(4) or m.group(1))
        return WindowSpec("between_clock", clock=f"{a}-{b}", day_offset=day), t[:m.start()] + t[m.end():], True
    m = re.search(r"(?:从|自)?" + clock_re + r"(?:以来|以后|之后|后|起|开始)", t)
    if m:
        return (WindowSpec("since_clock", clock=clock(m.group(2), m.group(3), m.group(1)), day_offset=day),
                t[:m.start()] + t[m.end():], True)
    m = re.search(r"(?:过去|最近|近|前)?的?" + _ZH_NUM + r"(个)?" + _ZH_UNIT + r"(?:内|里|之内|以内)?", t)
    if m and (m.group(1) or re.search(r"(过去|最近|近|内|里)", m.group(0))):
        amount = _zh_amount(m.group(1))
        unit = m.group(3)
        seconds = amount * _ZH_UNIT_S.get(unit, 60)
        if seconds > 0:
            return WindowSpec("last", seconds=seconds), t[:m.start()] + t[m.end():], True
    for word, span in (("上午", "06:00-12:00"), ("早上", "06:00-12:00"), ("下午", "12:00-18:00"),
                       ("晚上", "18:00-24:00")):
        if word in t:
            return WindowSpec("between_clock", clock=span, day_offset=day), t.replace(word, " "), True
    if "今天" in t or "今日" in t:
        return WindowSpec("today"), t.replace("今天", " ").replace("今日", " "), True
    if "昨天" in t or "昨日" in t:
        return WindowSpec("yesterday"), t.replace("昨天", " ").replace("昨日", " "), True
    m = re.search(r"(到目前为止|目前为止|迄今|总共|一共|累计|总计|至今)", t)
    if m:
        return WindowSpec("all"), t[:m.start()] + t[m.end():], True
    return WindowSpec("all"), t, False


def _interval(text: str, zh: bool) -> Optional[float]:
    if zh:
        m = re.search(r"每" + _ZH_NUM + r"(个)?" + _ZH_UNIT, text)
        if m:
            return _zh_amount(m.group(1)) * _ZH_UNIT_S.get(m.group(3), 60)
        m = re.search(r"哪(?:一)?(?:个)?(分钟|小时|天)", text)
        return None if m is None else _ZH_UNIT_S.get(m.group(1))
    m = re.search(r"\b(?:per|each|every|by|a|in)\s+(" + _EN_NUM + r"\s+)?" + _EN_UNIT + r"\b", text)
    if m:
        amount = parse_number_word(m.group(1).strip()) if m.group(1) else 1.0
        unit = m.group(2).rstrip("s") or "s"
        return (amount or 1.0) * _UNIT_S.get(unit, _UNIT_S.get(unit[:3], 60))
    m = re.search(r"\b(hourly|minute[- ]by[- ]minute|(?:which|what|busiest|peak)\s+(?:(\d+)[- ])?(minute|hour|"
                  r"second|day)s?)\b", text)
    if m:
        if m.group(1) == "hourly":
            return 3600.0
        if m.group(3) is None:
            return 60.0
        return float(m.group(2) or 1) * _UNIT_S[m.group(3)]
    return None


def _direction_en(text: str) -> Optional[str]:
    t = re.sub(r"\bin\s+minus\s+out\b|\bins?\s+and\s+outs?\b|\bin\s+or\s+out\b|\bin\s*/\s*out\b", " ", text)
    has_in = _IN_EN.search(t) is not None
    has_out = _OUT_EN.search(t) is not None
    if has_in and not has_out:
        return "in"
    if has_out and not has_in:
        return "out"
    return None


def _direction_zh(text: str) -> Optional[str]:
    if re.search(r"进出|出入", text):
        return None
    has_in = re.search(r"进入|进来|进去|走进|进|入", text) is not None
    has_out = re.search(r"离开|出去|出来|走出|出", text) is not None
    if has_in and not has_out:
        return "in"
    if has_out and not has_in:
        return "out"
    return None


def _intent_en(t: str, full: str, places: List[str]) -> Tuple[Optional[str], bool]:
    """(intent or None, yes/no form); ``t`` is the text without names and window, ``full`` all of it."""
    yes_no = re.match(r"^\s*(did|has|have|was|were|is|are|does|do|had|any)\b", full) is not None
    if re.search(r"\b(which|what)\s+(lines?|zones?|places|areas|classes|objects|things)\s+(are|do|does|can|exist|"
                 r"is|have you|you)\b|\blist\s+(the\s+|all\s+)?(lines|zones|classes)\b|\bwhat\s+can\s+you\s+"
                 r"(answer|tell|count)|\bwhat\s+do\s+you\s+count\b|\bwhat\s+(lines|zones)\b", t):
        return "places", False
    if re.search(r"\b(busiest|peak|rush|most\s+(?:traffic|activity|crossings|events|people|busy)|highest|"
                 r"most\s+(?:crowded|active))\b", t) and re.search(r"\b(when|which|what|busiest|peak|rush)\b", t) \
            and not re.search(r"\bwhich\s+(line|zone)s?\b", t):
        return "busiest", False
    if re.search(r"\b(net|minus|balance|in\s+minus\s+out|ins?\s+(?:and|vs\.?|versus)\s+outs?|more\s+(?:in|out|"
                 r"entries|exits)\s+than|difference\s+between\s+(?:in|entries))\b", t):
        return "net", False
    if len(places) >= 2 and re.search(r"\b(more|fewer|less|compare|compared|vs\.?|versus|than|busier|both|"
                                      r"each|which)\b", t):
        return "compare", False
    if re.search(r"\bwhich\s+(line|zone|place)s?\s+(had|has|saw|got|was|is|did)?\s*(the\s+)?(most|more|busiest|"
                 r"fewest|least)\b|\b(line|zone)\s+with\s+the\s+most\b", t):
        return "compare", False
    if re.search(r"\b(per|each|every)\s+(\d+\s+)?(minute|hour|second|min)s?\b|\btrend|\brate\b|\bover\s+time\b|"
                 r"\bminute[- ]by[- ]minute\b|\bhourly\b|\bbreakdown\b|\bbroken\s+down\b|\bon\s+average\b|"
                 r"\bhistogram\b|\btime\s+series\b|\bincreasing|\bdecreasing\b", t):
        return "series", False
    if re.search(r"\b(first|earliest)\b", t) and re.search(r"\b(when|what\s+time|time|first|earliest)\b", t):
        return "first", False
    if re.search(r"\b(when|what\s+time|how\s+long\s+ago|last\s+time|most\s+recent(?:ly)?|latest|last\s+"
                 r"(?:crossing|entry|exit|event|one|person|seen|cross|crossed|entered|left))\b", t) or \
            re.search(r"\blast\b\s*\?*\s*$", t) or re.search(r"\b(did|was|were)\b.*\blast\b", t):
        return "last", False
    occupancy = re.search(r"\b(right\s+now|now|currently|at\s+the\s+moment|at\s+present|presently|still|"
                          r"occupancy|occupied|in\s+view|on\s+screen|in\s+the\s+(?:picture|frame|image)|visible|"
                          r"inside|how\s+full|crowded)\b", t)
    crossing = re.search(r"\b(cross|crossed|crossing|crossings|passed|pass|entered|enter|entries|entry|exited|"
                         r"exits|left|leave|went|came|walked)\b", t)
    if (occupancy or re.match(r"^\s*(is|are)\s+(there|any|anyone|anybody|someone|somebody|people|a|the)\b", full)) \
            and not crossing:
        return "occupancy", yes_no
    if yes_no and re.search(r"\b(any|anyone|anybody|someone|somebody|people|person|a\s+\w+|crossings?|"
                            r"entries|exits)\b", full):
        return "exists", True
    if re.search(r"\b(how\s+many|how\s+much|number\s+of|count\s+of|counts?|counted|total|totals|tally|"
                 r"crossings|entries|exits|visitors)\b", t):
        return "count", False
    return None, yes_no


def _intent_zh(t: str, full: str, places: List[str]) -> Tuple[Optional[str], bool]:
    yes_no = re.search(r"有没有|是否|吗|么", full) is not None
    if re.search(r"哪些(线|区域|区|类别|类)|有什么(线|区域|区)|能回答什么|可以问什么", t):
        return "places", False
    if re.search(r"最忙|高峰|最多的(时段|分钟|小时|时候)|哪个时段|什么时候最多|哪(一)?(个)?(分钟|小时|时段).{0,4}最(多|忙)", t):
        return "busiest", False
    if re.search(r"净|进减出|减去|进出差|差值", t):
        return "net", False
    if len(places) >= 2 and re.search(r"比|对比|哪个|哪条|更多|较多|分别", t):
        return "compare", False
    if re.search(r"哪(条|个)(线|区域|区)(最多|更多|最忙)", t):
        return "compare", False
    if re.search(r"每(\d+|[一二两三四五六七八九十]+)?(个)?(分钟|小时|秒)|趋势|速率|平均|变化", t):
        return "series", False
    if re.search(r"第一(次|个)|最早|首次", t):
        return "first", False
    if re.search(r"最后一(次|个)|最近一(次|个)|上一次|什么时候|何时|几点", t):
        return "last", False
    occupancy = re.search(r"现在|目前|当前|此刻|此时|还有|画面(里|中)|在场|里面有", t)
    crossing = re.search(r"经过|通过|穿过|越过|进入|进来|离开|出去|走过", t)
    if occupancy and not crossing:
        return "occupancy", yes_no
    if yes_no and re.search(r"有人|有没有|是否有", full):
        return "exists", True
    if re.search(r"多少|几个|几人|几位|几次|总数|数量|人数|次数|计数", t):
        return "count", False
    return None, yes_no


def _sensor_query(text: str, catalog: Catalog, zh: bool) -> Optional[Query]:
    """A question naming a sensor a node reports ("was the pen door open at 6 pm?"), or None."""
    name = next((n for n in catalog.sensors for form in _place_forms(n)
                 if re.search(r"(?<![a-z0-9])" + re.escape(form) + r"(?![a-z0-9])", text)), None)
    if name is None:
        return None
    day = -1 if re.search(r"\byesterday\b|昨天", text) else 0
    window = WindowSpec()
    m = re.search(r"\bat\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", text)
    if m:
        hh, mm = int(m.group(1)), int(m.group(2) or 0)
        if m.group(3) and m.group(3).startswith("p") and hh < 12:
            hh += 12
        if m.group(3) and m.group(3).startswith("a") and hh == 12:
            hh = 0
        window = WindowSpec("at_clock", clock=f"{hh:02d}:{mm:02d}", day_offset=day)
    else:
        m = re.search(r"(下午|晚上)?(\d{1,2}|[一二两三四五六七八九十]+)点", text)
        if m:
            hh = int(parse_number_word(m.group(2)) or 0) + (12 if m.group(1) and int(parse_number_word(m.group(2)) or 0) < 12 else 0)
            window = WindowSpec("at_clock", clock=f"{hh:02d}:00", day_offset=day)
    yes_no = re.match(r"^\s*(was|is|were|are|did|does|do|has)\b", text) is not None or (zh and re.search(r"吗|是否", text))
    return Query("sensor", (name,), None, None, window, None, "zh" if zh else "en", (), bool(yes_no))


def parse(question: str, catalog: Catalog) -> ParseResult:
    """Read a question with the rules (see the module docs)."""
    zh = is_chinese(question)
    notes: List[str] = []
    text = question.lower().strip()
    if not zh:
        text, fixes = _fix_typos(text, [f for n in catalog.places for f in _place_forms(n) if " " not in f
                                        and ("_" in f or "-" in f or f == n.lower())]
                                 + [lab.lower() for lab in catalog.classes.values()])
        if fixes:
            notes.append("read " + ", ".join(fixes))
    sensor = _sensor_query(text, catalog, zh)
    if sensor is not None:
        return ParseResult(sensor, True, True, notes)
    places, rest = _find_places(text, catalog)
    class_ids, unknown_classes, rest = _find_classes(rest, catalog, zh)
    window, rest, has_window = (_window_zh if zh else _window_en)(rest)
    interval = _interval(rest, zh)
    unknown_places = _unknown_places(rest, zh)
    if not places and not unknown_places:
        if re.search(r"\bthe\s+line\b", rest) or (zh and "线" in rest):
            places = list(catalog.lines) if len(catalog.lines) == 1 else []
        if re.search(r"\bthe\s+zone\b|\bthe\s+area\b", rest) or (zh and re.search(r"区域|区", rest)):
            places = list(catalog.zones) if len(catalog.zones) == 1 else places
    direction = (_direction_zh if zh else _direction_en)(rest)
    intent, yes_no = (_intent_zh(rest, text, places) if zh else _intent_en(rest, text, places))
    if zh:
        context = bool(places or unknown_places or class_ids or unknown_classes or has_window
                       or any(w in rest for w in _ZH_CONTEXT))
    else:
        words = set(re.findall(r"[a-z]+", rest))
        context = bool(places or unknown_places or class_ids is not None or unknown_classes or has_window
                       or words & set(_VERBS) or words & set(_CONTEXT) or direction is not None)
    if intent == "places":
        context = True
    if intent in ("count", "exists") and not context:
        intent = None  # "count from one to five", "how many legs does a spider have?"
    if not context:
        return ParseResult(Query("other", lang="zh" if zh else "en"), True, False, notes)
    if intent == "occupancy" and not places:
        places = list(catalog.zones) if re.search(r"\b(zones?|areas?)\b", rest) or (zh and "区" in rest) else []
    query = Query(intent or "count", tuple(places), class_ids, direction, window, interval, "zh" if zh else "en",
                  tuple(unknown_places + unknown_classes), yes_no)
    if intent is None:
        notes.append("about the counts, but the rules could not tell what it asks")
    return ParseResult(query, intent is not None, True, notes)
