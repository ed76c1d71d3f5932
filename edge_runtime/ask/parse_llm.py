"""The LLM as a constrained question reader, for what the rules cannot settle.

The model fills one JSON object whose every value is drawn from a closed list — the intents, the
configured line/zone names, the class labels, the directions, a window in minutes — by a llama.cpp
grammar built from the catalogue, so even a 135M-parameter model cannot name a line that does not exist
or produce malformed output. Its reading is then checked against the question
(:func:`check_reading`): a place must be named in the question (or be the only one), a class must be
mentioned, a window must be stated. A reading that fails the check is not used.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Optional, Tuple

from ..errors import InputError
from .parse_rules import ParseResult
from .query import INTENTS, Catalog, Query, WindowSpec

__all__ = ["grammar_for", "llm_parse", "check_reading"]

_LLM_INTENTS = tuple(i for i in INTENTS if i != "places")


def _alt(values: List[str]) -> str:
    return " | ".join(json.dumps(json.dumps(v)) for v in values)


def grammar_for(catalog: Catalog) -> str:
    """A GBNF grammar admitting exactly the readings this catalogue allows."""
    places = list(catalog.places) + ["all"]
    classes = list(catalog.classes.values()) + ["any"]
    return "\n".join([
        'root ::= "{\\"intent\\": " intent ", \\"place\\": " place ", \\"class\\": " cls '
        '", \\"direction\\": " dir ", \\"minutes\\": " minutes "}"',
        f"intent ::= {_alt(list(_LLM_INTENTS))}",
        f"place ::= {_alt(places)}",
        f"cls ::= {_alt(classes)}",
        f"dir ::= {_alt(['in', 'out', 'both'])}",
        'minutes ::= "0" | [1-9] | [1-9] [0-9] | [1-9] [0-9] [0-9] | [1-9] [0-9] [0-9] [0-9]',
    ])


def _prompt(question: str, catalog: Catalog) -> List[dict]:
    example_place = next(iter(catalog.places), "all")
    system = (
        "Read a question about a camera's people counts and fill in the JSON fields. "
        f"Places: {', '.join(catalog.places) or 'none'}. Classes: {', '.join(catalog.classes.values())}. "
        "intent: count (how many crossed), exists (did anyone), occupancy (how many are inside now), "
        "last / first (when), busiest (which interval had most), series (per minute), net (in minus out), "
        "compare (which place had more), other (not about the counts). minutes: the time window, 0 = all time.")
    shot_q = f"how many people went in at {example_place} in the last 10 minutes"
    shot_a = json.dumps({"intent": "count", "place": example_place, "class": next(iter(catalog.classes.values()), "any"),
                         "direction": "in", "minutes": 10})
    return [{"role": "system", "content": system}, {"role": "user", "content": shot_q},
            {"role": "assistant", "content": shot_a}, {"role": "user", "content": question}]


def llm_parse(question: str, catalog: Catalog, chat: Any, *, lang: str = "en") -> Tuple[Optional[Query], str]:
    """Ask ``chat`` to read ``question`` under the catalogue's grammar.

    Returns:
        (query, raw JSON) — query None if the output could not be read (it always can under the
        grammar, unless generation was cut short).
    """
    raw = chat.ask(_prompt(question, catalog), grammar=grammar_for(catalog), temperature=0.0, max_tokens=64)
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError:
        return None, raw
    by_label = {v: k for k, v in catalog.classes.items()}
    place = obj.get("place")
    cls = obj.get("class")
    minutes = int(obj.get("minutes") or 0)
    try:
        query = Query(
            obj.get("intent", "other"),
            () if place in (None, "all") else (place,),
            None if cls in (None, "any") else (by_label[cls],),
            None if obj.get("direction") in (None, "both") else obj["direction"],
            WindowSpec("last", seconds=minutes * 60.0) if minutes > 0 else WindowSpec("all"),
            lang=lang)
    except (InputError, KeyError):
        return None, raw
    return query, raw


def check_reading(query: Query, rules: ParseResult, question: str, catalog: Catalog) -> List[str]:
    """Why an LLM reading cannot be trusted (empty: it can): every slot it fills must be supported by
    the words of the question, as the rules read them."""
    problems = []
    text = question.lower()
    if query.intent == "other":
        problems.append("the LLM read it as not about the counts")
    for p in query.places:
        forms = {p.lower(), p.lower().replace("_", " "), p.lower().replace("_", "")}
        if p not in rules.query.places and not any(f in text for f in forms) and len(catalog.places) > 1:
            problems.append(f"place {p!r} is not named in the question")
    if query.class_ids is not None and rules.query.class_ids is None:
        problems.append("the question names no class")
    if query.window.kind != rules.query.window.kind or (
            query.window.kind == "last" and abs(query.window.seconds - rules.query.window.seconds) > 1e-6):
        if rules.query.window.kind != "all" or query.window.kind != "all":
            problems.append("the window does not match the question's wording")
    if query.direction is not None and rules.query.direction is not None and query.direction != rules.query.direction:
        problems.append("the direction contradicts the question")
    if query.direction is not None and rules.query.direction is None and not re.search(
            r"\b(in|out|enter|exit|left|into)\b|进|出", text):
        problems.append("the question states no direction")
    return problems
