"""The runtime's own OpenAI tools: count query, occupancy, last/first event, interval series.

:func:`tool_definitions` lists them in the OpenAI ``tools`` format, their enums filled with the
configured names and classes, so a bigger model behind the same API (or a client's own agent) can call
them; :func:`run_tool` executes one call against a data view and returns the facts as JSON (with the
template ``answer`` sentence and its caveat, e.g. an outage of the camera in the window);
:func:`arguments_for` fills a tool's arguments from a question read by the rules, which is how this
server answers ``tool_choice`` for its own tools without guessing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, List, Mapping, Optional

from ..errors import InputError
from .data import DataView
from .facts import compute_facts
from .query import Catalog, Query, WindowSpec

__all__ = ["TOOL_NAMES", "tool_definitions", "run_tool", "arguments_for", "tool_for_intent"]

TOOL_NAMES = ("count_events", "zone_occupancy", "last_event", "interval_series")
_INTENT_TOOL = {"count": "count_events", "exists": "count_events", "net": "count_events",
                "compare": "count_events", "occupancy": "zone_occupancy", "last": "last_event", "first": "last_event",
                "busiest": "interval_series", "series": "interval_series"}


def tool_for_intent(intent: str) -> Optional[str]:
    return _INTENT_TOOL.get(intent)


def tool_definitions(catalog: Catalog) -> List[Dict[str, Any]]:
    """The tools in the OpenAI ``tools`` format."""
    places = sorted(catalog.places)
    classes = list(catalog.classes.values())
    window = {"type": "integer", "minimum": 0, "maximum": 527040,
              "description": "only events in the last N minutes before the latest frame; 0 = since counting began"}

    def fn(name: str, description: str, props: Dict[str, Any], required: List[str]) -> Dict[str, Any]:
        return {"type": "function", "function": {"name": name, "description": description, "parameters": {
            "type": "object", "properties": props, "required": required, "additionalProperties": False}}}

    place = {"type": "string", "enum": places, "description": "a line or zone name"}
    cls = {"type": "string", "enum": classes, "description": "an object class (omit for all)"}
    return [
        fn("count_events", "Exact number of crossings (lines) or entries/exits (zones) from the results database.",
           {"place": place, "class": cls, "direction": {"type": "string", "enum": ["in", "out"],
                                                        "description": "lines: in/out; zones: in = entered, "
                                                                       "out = left; omit for both"},
            "window_minutes": window}, []),
        fn("zone_occupancy", "How many objects are inside a zone at the latest frame.",
           {"zone": {"type": "string", "enum": list(catalog.zones) or [""], "description": "a zone name"},
            "class": cls}, ["zone"]),
        fn("last_event", "When the last (or first) crossing / entry / exit happened.",
           {"place": place, "class": cls, "direction": {"type": "string", "enum": ["in", "out"]},
            "first": {"type": "boolean", "description": "the first event instead of the last"},
            "window_minutes": window}, []),
        fn("interval_series", "Events per interval over a window, and the busiest interval.",
           {"place": place, "class": cls, "interval_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
            "window_minutes": window}, ["interval_minutes"]),
    ]


def _query_from_args(name: str, args: Mapping[str, Any], catalog: Catalog) -> Query:
    if name not in TOOL_NAMES:
        raise InputError(f"unknown tool {name!r}; this runtime offers {list(TOOL_NAMES)}")
    if not isinstance(args, Mapping):
        raise InputError(f"{name}: arguments must be a JSON object, got {type(args).__name__}")
    allowed = {"count_events": {"place", "class", "direction", "window_minutes"},
               "zone_occupancy": {"zone", "class"},
               "last_event": {"place", "class", "direction", "first", "window_minutes"},
               "interval_series": {"place", "class", "interval_minutes", "window_minutes"}}[name]
    extra = sorted(set(args) - allowed)
    if extra:
        raise InputError(f"{name}: unknown arguments {extra}; expected {sorted(allowed)}")
    place = args.get("zone" if name == "zone_occupancy" else "place")
    if place is not None and place not in catalog.places:
        raise InputError(f"{name}: no line or zone {place!r}; known: {sorted(catalog.places)}")
    label = args.get("class")
    by_label = {v: k for k, v in catalog.classes.items()}
    if label is not None and label not in by_label:
        raise InputError(f"{name}: no class {label!r}; known: {list(by_label)}")
    direction = args.get("direction")
    if direction not in (None, "in", "out"):
        raise InputError(f"{name}: direction must be 'in' or 'out', got {direction!r}")
    minutes = args.get("window_minutes", 0) or 0
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 <= minutes <= 527040:
        raise InputError(f"{name}: window_minutes must be a number in [0, 527040], got {minutes!r}")
    window = WindowSpec("last", seconds=float(minutes) * 60) if minutes else WindowSpec("all")
    interval = None
    if name == "interval_series":
        iv = args.get("interval_minutes")
        if isinstance(iv, bool) or not isinstance(iv, (int, float)) or not 1 <= iv <= 1440:
            raise InputError(f"interval_series: interval_minutes must be in [1, 1440], got {iv!r}")
        interval = float(iv) * 60
    intent = {"count_events": "count", "zone_occupancy": "occupancy", "interval_series": "series",
              "last_event": "first" if args.get("first") else "last"}[name]
    return Query(intent, () if place is None else (place,), None if label is None else (by_label[label],),
                 direction, window, interval)


def run_tool(name: str, arguments: Any, view: DataView, catalog: Catalog, *,
             tz: Optional[dt.tzinfo] = None) -> Dict[str, Any]:
    """Execute a tool call; ``arguments`` is the JSON string (or object) the model produced.

    Raises:
        InputError: unknown tool, arguments that are not JSON or do not fit the tool's schema.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}: arguments are not JSON: {exc}") from None
    query = _query_from_args(name, arguments, catalog)
    facts = compute_facts(query, view, catalog, tz=tz)
    return {"tool": name, "arguments": arguments, "answer": facts.text("en"), "value": facts.value,
            "data": facts.data}


def arguments_for(tool: str, query: Query, catalog: Catalog) -> Dict[str, Any]:
    """A tool's arguments for a question the rules read (only what the question states)."""
    args: Dict[str, Any] = {}
    place = query.places[0] if query.places else None
    if tool == "zone_occupancy":
        zone = place if place in catalog.zones else (catalog.zones[0] if len(catalog.zones) == 1 else None)
        if zone is None:
            raise InputError("zone_occupancy needs a zone and the question names none")
        args["zone"] = zone
    elif place is not None:
        args["place"] = place
    if query.class_ids is not None and len(query.class_ids) == 1:
        args["class"] = catalog.classes[query.class_ids[0]]
    if query.direction is not None and tool in ("count_events", "last_event"):
        args["direction"] = query.direction
    if query.window.kind == "last" and tool != "zone_occupancy":
        args["window_minutes"] = max(1, int(round(query.window.seconds / 60)))
    if tool == "last_event" and query.intent == "first":
        args["first"] = True
    if tool == "interval_series":
        args["interval_minutes"] = max(1, int(round((query.interval_s or 60) / 60)))
    return args
