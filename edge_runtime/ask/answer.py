"""Answer a question about the counts: read it, compute the facts, phrase them, check every number.

:class:`Asker` is what the CLI (``edge-runtime ask``), the chat server and the tools use:

1. the rules read the question (:mod:`.parse_rules`); when they are not sure and a chat model is loaded,
   the model reads it under a grammar (:mod:`.parse_llm`) and its reading is checked against the words;
2. the facts are computed from the database or the running job (:mod:`.facts`) — the only source of
   numbers;
3. the template sentence is the answer; with ``phrase=True`` the model may reword it, and the reword is
   kept only if every number in it (digits, English or Chinese number words, decimals, clock times) is
   one of the facts' numbers, the headline number is there, and a yes/no answer keeps its yes or no;
4. a caveat the facts carry (the camera was without video for part of the window) follows the answer
   as the template states it, reworded or not: the model never sees it, so it cannot drop it.

A question that is not about the counts gets ``via="chat"`` and no text: the caller lets the model
answer it as a conversation, then passes the reply through :meth:`Asker.guard_chat_reply`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InputError
from .data import DataView
from .facts import Facts, compute_facts, describe_catalog
from .numbers import numbers_in
from .parse_llm import check_reading, llm_parse
from .parse_rules import ParseResult, parse
from .query import Catalog, Query

__all__ = ["Answer", "Asker", "check_numbers", "asker_for_pipeline"]


@dataclass
class Answer:
    """A reply and everything it rests on.

    Attributes:
        text: the reply ("" when ``via == "chat"``: the caller generates it).
        via: "template" | "llm" (checked rewording) | "help" (what can be asked) | "chat" (not about counts).
        query: the reading used (None for help without one).
        parsed_by: "rules" | "llm".
        facts: the computed facts (None for help/chat).
        notes: what happened on the way (typos read, an LLM reading rejected and why, ...).
        llm_tokens: (prompt, completion) tokens the model spent on this answer.
        elapsed_s: wall time of :meth:`Asker.ask`.
    """

    text: str
    via: str
    query: Optional[Query] = None
    parsed_by: str = "rules"
    facts: Optional[Facts] = None
    notes: List[str] = field(default_factory=list)
    llm_tokens: Tuple[int, int] = (0, 0)
    elapsed_s: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        return {"answer": self.text, "via": self.via, "parsed_by": self.parsed_by,
                "query": None if self.query is None else self.query.as_dict(),
                "facts": None if self.facts is None else {"value": _jsonable(self.facts.value),
                                                          "data": _jsonable(self.facts.data),
                                                          "numbers": self.facts.numbers,
                                                          "answerable": self.facts.answerable},
                "notes": self.notes, "llm_tokens": list(self.llm_tokens), "elapsed_s": round(self.elapsed_s, 4)}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 or (abs(b) >= 1 and abs(round(a, 1) - round(b, 1)) < 1e-6)


def check_numbers(reply: str, facts: Facts) -> Optional[str]:
    """Why ``reply`` may not stand for ``facts`` (None: it may)."""
    missing = [p for p in facts.query.places if p.lower() not in reply.lower()]
    if missing:
        return f"the reply does not name {missing}"
    found = numbers_in(reply)
    allowed = facts.numbers + facts.headline
    stray = [n for n in found if not any(_close(n, a) for a in allowed)]
    if stray:
        return f"numbers not in the facts: {sorted(set(stray))}"
    if facts.headline and not any(_close(n, h) for n in found for h in facts.headline):
        return f"the count {facts.headline[0]:g} is missing"
    if isinstance(facts.value, bool):
        says_yes = re.search(r"\byes\b|有(?!没有)", reply.lower()) is not None
        says_no = re.search(r"\bno\b|\bnobody\b|\bnone\b|没有", reply.lower()) is not None
        if (facts.value and (says_no or not says_yes)) or (not facts.value and (says_yes or not says_no)):
            return "the yes/no does not match the facts"
    return None


_COUNTY = re.compile(r"\b(cross(?:ed|ing|ings)?|people|persons?|entered|exited|counted|visitors|occupancy|"
                     r"walkers?)\b|经过|人数|进入|离开", re.IGNORECASE)


class Asker:
    """Answers questions from one data view.

    Args:
        view: the results database (:class:`~edge_runtime.ask.data.StoreView`) or a running job
            (:class:`~edge_runtime.ask.data.PipelineView`).
        catalog: the line/zone names and class labels questions may use.
        chat: a :class:`~edge_runtime.llm.chat.Chat` for the constrained reading and the rewording
            (None: rules and templates only).
        tz: time zone for clock times ("since 8 am", "today"); None = the machine's.
        phrase: let the model reword the template answer (checked; the template is the fallback).
        llm_parse: let the model read questions the rules are unsure of.
    """

    def __init__(self, view: DataView, catalog: Catalog, *, chat: Any = None, tz: Optional[dt.tzinfo] = None,
                 phrase: bool = False, llm_parse: bool = True) -> None:
        self.view, self.catalog, self.chat, self.tz = view, catalog, chat, tz
        self.phrase = phrase
        self.use_llm_parse = llm_parse

    def help_text(self, lang: str = "en") -> str:
        en, zh = describe_catalog(self.catalog)
        if lang == "zh":
            return ("我不确定您问的是什么。我可以回答：经过某条线的人数（可按方向、类别、时间段），区域内现在的人数，"
                    "最后/第一次发生的时间，最忙的时段，每分钟的变化，进出差值，线与线的比较。" + zh)
        return ("I'm not sure what you're asking. I can answer: how many crossed a line or entered/left a zone "
                "(by direction, class and time window), how many are in a zone now, when something last or "
                "first happened, the busiest interval, counts per minute, in minus out, and comparisons "
                "between lines. " + en)

    def ask(self, question: str) -> Answer:
        """Answer one question (see the module docs)."""
        t0 = time.perf_counter()
        if not isinstance(question, str) or not question.strip():
            raise InputError("ask: the question is empty")
        result = self._ask(question.strip()[:2000])
        result.elapsed_s = time.perf_counter() - t0
        return result

    def _ask(self, question: str) -> Answer:
        rules: ParseResult = parse(question, self.catalog)
        notes = list(rules.notes)
        query, parsed_by = rules.query, "rules"
        tokens = [0, 0]
        if query.intent == "other":
            return Answer("", "chat", query, notes=notes)
        if not rules.confident:
            if self.chat is None or not self.use_llm_parse:
                return Answer(self.help_text(query.lang), "help", query, notes=notes)
            reading, raw = llm_parse(question, self.catalog, self.chat, lang=query.lang)
            self._spent(tokens)
            if reading is not None and reading.intent == "other":  # the model says: not about the counts
                notes.append(f"read by the LLM as not about the counts: {raw}")
                return Answer("", "chat", reading, "llm", notes=notes, llm_tokens=tuple(tokens))
            problems = ["the LLM gave no reading"] if reading is None else check_reading(
                reading, rules, question, self.catalog)
            if problems:
                notes.append(f"LLM reading {raw} not used: " + "; ".join(problems))
                return Answer(self.help_text(query.lang), "help", query, notes=notes, llm_tokens=tuple(tokens))
            notes.append(f"read by the LLM: {raw}")
            query, parsed_by = reading, "llm"  # type: ignore[assignment]
        try:
            facts = compute_facts(query, self.view, self.catalog, tz=self.tz)
        except InputError as exc:
            text = f"I can't answer that: {exc}." if query.lang == "en" else f"无法回答：{exc}。"
            return Answer(text, "help", query, parsed_by, notes=notes, llm_tokens=tuple(tokens))
        text, via = facts.text(), "template"
        if self.phrase and self.chat is not None and facts.answerable and query.intent != "places":
            reply = self._reword(question, facts)
            self._spent(tokens)
            why = check_numbers(reply, facts)
            if why is None and reply.strip():
                text, via = facts.with_caveat(reply.strip()), "llm"
            else:
                notes.append(f"LLM wording rejected ({why or 'empty'}): {reply!r}")
        return Answer(text, via, query, parsed_by, facts, notes, tuple(tokens))  # type: ignore[arg-type]

    def _spent(self, tokens: List[int]) -> None:
        stats = getattr(self.chat, "last_stats", None)
        if stats is not None:
            tokens[0] += stats.prompt_tokens
            tokens[1] += stats.completion_tokens

    def _reword(self, question: str, facts: Facts) -> str:
        lang = "Chinese" if facts.query.lang == "zh" else "English"
        messages = [
            {"role": "system", "content": f"You answer questions about a camera's counts in {lang}. Restate the "
                                          "fact as a short, friendly answer to the question. Keep every number "
                                          "exactly as written. Add nothing else."},
            {"role": "user", "content": f"Fact: {facts.sentence()}\nQuestion: {question}"},
        ]
        return self.chat.ask(messages, temperature=0.0, repeat_penalty=1.0, max_tokens=64)

    def guard_chat_reply(self, reply: str, lang: str = "en") -> Tuple[str, Optional[str]]:
        """A free chat reply that states counts must state true ones: if it talks about crossings or
        people and has a number no total supports, it is replaced. Returns (reply, why replaced)."""
        if not _COUNTY.search(reply):
            return reply, None
        allowed = set()
        for (name, cid, d), n in self.view.event_counts(None, None, ((), None, ())).items():
            allowed.add(float(n))
        stray = [n for n in numbers_in(reply) if n not in allowed]
        if not stray:
            return reply, None
        en, zh = describe_catalog(self.catalog)
        text = (f"I can only give counts from the camera's records; ask me, for example, how many people "
                f"crossed a line. {en}") if lang == "en" else f"我只能根据摄像头的记录回答计数问题。{zh}"
        return text, f"reply mentioned counts not in the records: {sorted(set(stray))}"


def asker_for_pipeline(pipeline: Any, *, chat: Any = None, tz: Optional[dt.tzinfo] = None, phrase: bool = False,
                       class_names: Optional[Dict[int, str]] = None) -> Asker:
    """An :class:`Asker` over a pipeline's database, or over its memory when it has none."""
    from .data import PipelineView, StoreView

    store = getattr(pipeline, "store", None)
    view: DataView = StoreView(store) if store is not None else PipelineView(pipeline)
    kinds = {c.name: ("zone" if hasattr(c, "polygon") else "line") for c in pipeline.counters}
    names = dict(class_names if class_names is not None else pipeline.detector.class_names)
    return Asker(view, Catalog(kinds, names), chat=chat, tz=tz, phrase=phrase)
