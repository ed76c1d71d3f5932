"""Answers about what the camera counted, with exact numbers even from a 135M-parameter model.

A small model can phrase a sentence but cannot be trusted with arithmetic or recall, so the numbers never
come from it:

1. :func:`parse_question` reads the question deterministically: time window ("last 5 minutes", "so
   far"), line or zone (by configured name), class ("people", a label), direction (in / out / entered /
   left / crossed).
2. :func:`gather_facts` counts the matching events exactly, from the results database or the running
   pipeline's recent events, and writes a one-sentence answer from a template.
3. :func:`answer` optionally lets the LLM rephrase that sentence, then checks the reply: every number in
   it must be one of the facts' numbers and the headline number must be there. Otherwise the template
   sentence is returned. Either way the :class:`Answer` carries the facts it rests on.

Times are in the source clock (seconds into a video file, Unix time for a live camera): "the last 5
minutes" means the 5 minutes before the latest processed frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

__all__ = ["Query", "Facts", "Answer", "parse_question", "gather_facts", "answer", "answer_from_pipeline",
           "EventView", "StoreEvents", "MemoryEvents"]

_UNITS_S = {"second": 1, "sec": 1, "s": 1, "minute": 60, "min": 60, "hour": 3600, "hr": 3600, "h": 3600,
            "day": 86400}
_WORD_NUMBERS = {"one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10,
                 "fifteen": 15, "twenty": 20, "thirty": 30, "few": 3}
_PERSON_WORDS = ("people", "person", "persons", "pedestrians", "pedestrian", "walkers", "humans", "someone")


@dataclass(frozen=True)
class Query:
    """What a question asks for; None fields mean 'all'."""

    window_s: Optional[float] = None  # None = since counting began
    name: Optional[str] = None  # line or zone
    class_ids: Optional[Tuple[int, ...]] = None
    direction: Optional[str] = None  # "in" | "out" (zones: "enter" | "exit"); None = both


class EventView(Protocol):
    """Where events are read from (the results database or the running pipeline)."""

    def now_s(self) -> Optional[float]: ...

    def event_rows(self, since_s: Optional[float], until_s: Optional[float]) -> List[Tuple[float, str, int, str]]:
        """(timestamp_s, line/zone name, class_id, direction) of events in (since_s, until_s]."""
        ...


class StoreEvents:
    """Events from a :class:`~edge_runtime.runtime.store.Store` (all runs, source clock)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def now_s(self) -> Optional[float]:
        return self.store.now_s()

    def event_rows(self, since_s, until_s):
        return [(e.timestamp_s, e.name, e.class_id, e.direction)
                for e in self.store.events(since_s=since_s, until_s=until_s, limit=10_000_000)]


class MemoryEvents:
    """Events kept by a running :class:`~edge_runtime.runtime.pipeline.Pipeline` (``recent_events``)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def now_s(self) -> Optional[float]:
        return self.pipeline.now_s

    def event_rows(self, since_s, until_s):
        rows = []
        for e in list(self.pipeline.recent_events):
            t = e.timestamp_s if e.timestamp_s is not None else 0.0
            if (since_s is None or t > since_s) and (until_s is None or t <= until_s):
                rows.append((t, e.name, e.class_id, e.direction.value))
        return rows


@dataclass(frozen=True)
class Facts:
    """Exact counts answering a :class:`Query`, and the sentence that states them."""

    query: Query
    total: int
    by_direction: Dict[str, int]
    by_class: Dict[str, int]
    window_text: str
    subject: str
    place: str
    sentence: str
    last_event_s: Optional[float] = None

    @property
    def numbers(self) -> List[int]:
        """Every number an answer may mention."""
        values = {self.total, *self.by_direction.values(), *self.by_class.values()}
        if self.query.window_s is not None:
            values |= _window_numbers(self.query.window_s)
        return sorted(values)


@dataclass(frozen=True)
class Answer:
    """The reply, how it was made ("llm" checked, or "template"), and the facts it rests on."""

    text: str
    facts: Facts
    via: str
    llm_reply: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def _window_numbers(window_s: float) -> set:
    values = {int(window_s)}
    for unit in (60, 3600, 86400):
        if window_s % unit == 0:
            values.add(int(window_s // unit))
    return values


def _words(text: str) -> List[str]:
    return re.findall(r"[a-z0-9_]+(?:[-'][a-z0-9_]+)*", text.lower())


def parse_question(question: str, *, names: Union[Sequence[str], Mapping[str, str]], class_names: Mapping[int, str],
                   person_class_ids: Sequence[int] = (0,)) -> Query:
    """Read the window, line/zone, class and direction a question asks about (see module docs).

    Args:
        names: the line/zone names, or a mapping name -> "line" | "zone" (then "the line" picks the only
            line and "the zone" the only zone).
    """
    kinds = dict(names) if isinstance(names, Mapping) else {n: "" for n in names}
    names = list(kinds)
    text = question.lower()
    words = _words(text)
    window = None
    m = re.search(r"(?:last|past|previous)\s+(\d+(?:\.\d+)?|[a-z]+)?\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|s|h)\b", text)
    if m:
        amount_text, unit = m.group(1), m.group(2).rstrip("s") or "s"
        amount = 1.0 if amount_text is None else (
            float(amount_text) if amount_text[0].isdigit() else float(_WORD_NUMBERS.get(amount_text, 1)))
        window = amount * _UNITS_S.get(unit, _UNITS_S.get(unit + "s", 1))
    name = next((n for n in names if n.lower() in text), None)
    if name is None:
        for word, kind in (("line", "line"), ("zone", "zone")):
            of_kind = [n for n, k in kinds.items() if k == kind]
            if word in words and len(of_kind) == 1:
                name = of_kind[0]
        if name is None and len(names) == 1 and any(w in words for w in ("line", "zone", "crossed", "cross")):
            name = names[0]
    class_ids: Optional[Tuple[int, ...]] = None
    hits = {cid: label.lower() for cid, label in class_names.items() if label and label.lower() in text}
    # "fallen person" names one class, not also "person": drop labels inside a longer matching one.
    label_hits = tuple(c for c, lab in hits.items() if not any(lab != other and lab in other for other in hits.values()))
    if label_hits:
        class_ids = label_hits
    elif any(w in words for w in _PERSON_WORDS):
        class_ids = tuple(person_class_ids)
    # "in the last 5 minutes", "in total", "in the walkway zone" say nothing about direction.
    stripped = re.sub(r"\bin\s+(the|total|all|a|an|this|that)\b", " ", text)
    has_in = re.search(r"\b(in|into|enter|entered|entering|entries|inbound|arrived)\b", stripped) is not None
    has_out = re.search(r"\b(out|exit|exited|exiting|exits|left|leave|leaving|outbound)\b", stripped) is not None
    direction = "in" if has_in and not has_out else "out" if has_out and not has_in else None
    return Query(window_s=window, name=name, class_ids=class_ids, direction=direction)


def _fmt_window(window_s: Optional[float]) -> str:
    if window_s is None:
        return "since counting began"
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if window_s >= seconds and window_s % seconds == 0:
            n = int(window_s // seconds)
            return f"in the last {n} {unit}{'s' if n != 1 else ''}"
    n = int(window_s) if float(window_s).is_integer() else window_s
    return f"in the last {n} second{'s' if n != 1 else ''}"


def gather_facts(query: Query, events: EventView, *, class_names: Mapping[int, str],
                 kinds: Mapping[str, str]) -> Facts:
    """Count the events a query selects, exactly.

    Args:
        query: from :func:`parse_question`.
        events: the event view (database or pipeline).
        class_names: class id -> display label.
        kinds: line/zone name -> "line" | "zone" (decides the direction words).
    """
    now = events.now_s()
    since = None if query.window_s is None or now is None else now - query.window_s
    rows = events.event_rows(since, now)
    zone = query.name is not None and kinds.get(query.name) == "zone"
    want_dir = query.direction
    if zone and want_dir is not None:
        want_dir = {"in": "enter", "out": "exit"}[want_dir]
    selected = [r for r in rows
                if (query.name is None or r[1] == query.name)
                and (query.class_ids is None or r[2] in query.class_ids)
                and (want_dir is None or r[3] == want_dir)]
    by_dir: Dict[str, int] = {}
    by_class: Dict[str, int] = {}
    for _, _, cid, direction in selected:
        by_dir[direction] = by_dir.get(direction, 0) + 1
        label = class_names.get(cid, f"class {cid}")
        by_class[label] = by_class.get(label, 0) + 1
    total = len(selected)
    if query.class_ids is None:
        subject = "objects"
    elif len(query.class_ids) == 1:
        label = class_names.get(query.class_ids[0], f"class {query.class_ids[0]}")
        subject = "people" if label in ("person", "people") else f"{label}s"
    else:
        subject = " or ".join(class_names.get(c, str(c)) for c in query.class_ids)
    place = f"the {query.name} {'zone' if zone else 'line'}" if query.name else "all lines and zones"
    verb = {"in": "crossed in", "out": "crossed out", "enter": "entered", "exit": "left"}.get(
        want_dir or "", "entered or left" if zone else "crossed")
    window_text = _fmt_window(query.window_s)
    noun = subject if total != 1 else ("person" if subject == "people" else subject.rstrip("s"))
    sentence = f"{total} {noun} {verb} {place} {window_text}"
    if want_dir is None and by_dir:
        sentence += " (" + ", ".join(f"{n} {d}" for d, n in sorted(by_dir.items())) + ")"
    sentence += "."
    last = max((r[0] for r in selected), default=None)
    return Facts(query, total, by_dir, by_class, window_text, subject, place, sentence, last)


def _check_reply(reply: str, facts: Facts) -> Tuple[bool, str]:
    numbers = [int(float(n)) for n in re.findall(r"\b\d+(?:\.\d+)?\b", reply)]
    allowed = set(facts.numbers)
    if facts.total not in numbers:
        return False, f"reply lacks the count {facts.total}"
    stray = [n for n in numbers if n not in allowed]
    if stray:
        return False, f"reply mentions numbers not in the facts: {stray}"
    return True, "ok"


def answer(question: str, events: EventView, *, class_names: Mapping[int, str], kinds: Mapping[str, str],
           chat: Any = None, person_class_ids: Sequence[int] = (0,), max_tokens: int = 60) -> Answer:
    """Answer a counting question exactly; with ``chat`` the LLM phrases it, checked against the facts."""
    query = parse_question(question, names=kinds, class_names=class_names, person_class_ids=person_class_ids)
    facts = gather_facts(query, events, class_names=class_names, kinds=kinds)
    if chat is None:
        return Answer(facts.sentence, facts, "template")
    messages = [
        {"role": "system", "content": "You answer questions about a camera's counts. Use only the given "
                                     "fact. Keep its numbers exactly. Reply with one short sentence."},
        {"role": "user", "content": f"Fact: {facts.sentence}\nQuestion: {question}"},
    ]
    reply = chat.ask(messages, temperature=0.0, max_tokens=max_tokens).strip()
    ok, why = _check_reply(reply, facts)
    if ok:
        return Answer(reply, facts, "llm", llm_reply=reply)
    return Answer(facts.sentence, facts, "template", llm_reply=reply, notes=[f"LLM reply rejected: {why}"])


def answer_from_pipeline(question: str, pipeline: Any, config: Any, *, chat: Any = None) -> str:
    """Answer after (or during) a run: from its database if it has one, else its recent events.

    Loads the configured chat model when ``chat`` is None and llama-cpp-python is installed; without it
    the exact template answer is returned.
    """
    store = getattr(pipeline, "store", None)
    view: EventView = StoreEvents(store) if store is not None else MemoryEvents(pipeline)
    kinds = {c.name: ("zone" if hasattr(c, "polygon") else "line") for c in pipeline.counters}
    if chat is None:
        try:
            from ..assets import resolve
            from .chat import Chat

            chat = Chat(resolve(config.chat.model), n_ctx=min(config.chat.ctx, 1024), n_threads=2)
        except ImportError:
            chat = None
    result = answer(question, view, class_names=pipeline.detector.class_names, kinds=kinds, chat=chat)
    return result.text
