"""The line and zone editor's back end: validate an edit like the config file, save it, apply it live.

An edit is the complete new list of lines and zones (``{"lines": [...], "zones": [...]}``, each entry
the keys of a ``[[lines]]`` / ``[[zones]]`` table). It is checked by the config loader itself, on the
config file's other sections unchanged, so the errors are the config file's (``config key
'lines[1].end': expected a pair of numbers, got ...``). Then, in this order:

1. the new counters are made (a line whose name was stored as a zone is refused here, before saving);
2. the file is written atomically. TOML: the ``[[lines]]`` and ``[[zones]]`` tables (comments inside
   them included) are replaced, in the place of the first of them, and every other line of the file is
   kept as it was; the result is parsed back and must equal the intended config, or nothing is written. YAML: the document is dumped again (its comments are lost);
3. the pipeline's counter list is swapped in one assignment between two frames. A line or zone whose
   settings did not change keeps its counter object (its totals and the state of the tracks it is
   following); one whose geometry or options changed gets a new counter that starts from the old totals;
   a new one starts from the totals the database holds under its name (0 for a new name).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..runtime.build import make_counter, seed_totals
from ..runtime.config import Config, LineConfig, ZoneConfig, config_from_dict, read_config_file

__all__ = ["EditResult", "apply_places", "parse_edit", "place_tables", "save_places"]

_PLACES = ("lines", "zones")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]\s]+)\s*\]\]?\s*(#.*)?$")
_MAX_PLACES = 64


@dataclasses.dataclass
class EditResult:
    """What an applied edit did, by name."""

    kept: List[str]
    changed: List[str]
    added: List[str]
    removed: List[str]

    def as_dict(self) -> Dict[str, List[str]]:
        return dataclasses.asdict(self)


def place_tables(config: Config) -> Dict[str, List[Dict[str, Any]]]:
    """The config's lines and zones as tables holding only the keys that differ from the defaults."""
    def table(item: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(item):
            value = getattr(item, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                if isinstance(value, tuple):
                    value = list(value)
                elif isinstance(value, list):
                    value = [list(v) if isinstance(v, tuple) else v for v in value]
                out[f.name] = value
        return out
    return {"lines": [table(x) for x in config.lines], "zones": [table(x) for x in config.zones]}


def parse_edit(raw: Dict[str, Any], edit: Any) -> Tuple[Dict[str, Any], Config]:
    """The file's mapping with its lines and zones replaced by ``edit``, and its validated config.

    Raises:
        ConfigError: naming the key, the expected value and what was found.
    """
    if not isinstance(edit, dict) or not set(edit) <= set(_PLACES):
        got = sorted(edit) if isinstance(edit, dict) else type(edit).__name__
        raise ConfigError(f"editor: expected {{\"lines\": [...], \"zones\": [...]}}, got {got}")
    new_raw = dict(raw)
    for key in _PLACES:
        items = edit.get(key, [])
        if not isinstance(items, list) or len(items) > _MAX_PLACES:
            raise ConfigError(f"config key '{key}': expected a list of at most {_MAX_PLACES} tables, "
                              f"got {type(items).__name__}{'' if not isinstance(items, list) else f' of {len(items)}'}")
        tables = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ConfigError(f"config key '{key}[{i}]': expected a table, got {type(item).__name__}")
            name = item.get("name")
            if isinstance(name, str) and (len(name) > 64 or any(not c.isprintable() for c in name)):
                raise ConfigError(f"config key '{key}[{i}].name': expected at most 64 printable characters, "
                                  f"got {name!r}")
            tables.append({k: v for k, v in item.items() if v is not None})  # None = the default (no TOML null)
        if tables:
            new_raw[key] = tables
        else:  # no tables = no key (TOML has no empty array of tables)
            new_raw.pop(key, None)
    return new_raw, config_from_dict(new_raw)


# ------------------------------------------------------------------------------------------ saving

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"editor: cannot write {value!r} ({type(value).__name__}) to TOML")


def _toml_places(raw: Dict[str, Any]) -> str:
    out = []
    for key in _PLACES:
        for table in raw.get(key, []):
            out.append(f"\n[[{key}]]\n")
            out.extend(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
    return "".join(out)


def _replace_toml(text: str, raw: Dict[str, Any]) -> str:
    """``text`` without its [[lines]] / [[zones]] tables, the new ones where the first of them was (at the
    end if there was none)."""
    kept, skipping, at = [], False, None
    for line in text.splitlines(keepends=True):
        m = _HEADER.match(line)
        if m:
            section = m.group(1).strip('"')
            skipping = section in _PLACES or section.split(".")[0] in _PLACES
            if skipping and at is None:
                at = len(kept)
        if not skipping:
            kept.append(line)
    at = len(kept) if at is None else at
    head = "".join(kept[:at]).rstrip("\n")
    tail = "".join(kept[at:]).lstrip("\n")
    places = _toml_places(raw)
    out = (head + "\n" if head else "") + (places.lstrip("\n") if not head else places)
    return out + ("\n" + tail if tail else "")


def _normal(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=list)


def save_places(path: Path, raw: Dict[str, Any]) -> None:
    """Write ``raw`` (the file's mapping with edited lines and zones) back to the config file at ``path``.

    Raises:
        ConfigError: the file cannot be read, written, or edited without changing something else.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    else:
        try:
            original = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from exc
        text = _replace_toml(original, raw)
    tmp = path.with_name(f".{path.stem}.edit-{os.getpid()}{path.suffix}")  # same suffix: same parser
    try:
        tmp.write_text(text, encoding="utf-8")
        try:
            written = _normal(read_config_file(tmp))
        except ConfigError:
            written = None  # the surgery broke the file: refused below, the original is untouched
        if written != _normal(raw):
            raise ConfigError(f"{path}: the lines and zones cannot be replaced without changing other settings "
                              f"(are they written inline, 'lines = [...]'?); write them as [[lines]] / [[zones]] "
                              f"tables to edit them from the dashboard")
        try:
            os.chmod(tmp, path.stat().st_mode & 0o777)
        except OSError:
            pass
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write config: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------------------- applying

def _totals_of(counter: Any) -> Tuple[Dict[int, int], Dict[int, int]]:
    if hasattr(counter, "polygon"):
        return counter.entries, counter.exits
    return counter.in_counts, counter.out_counts


def build_counters(pipeline: Any, old: Config, new: Config, fps: float, store: Any = None
                   ) -> Tuple[List[Any], EditResult]:
    """The counter list ``new`` describes, reusing ``pipeline``'s counters of unchanged entries.

    Raises:
        ConfigError: as the counters' own checks, or a name stored as the other kind in ``store``.
    """
    previous: Dict[str, Any] = {x.name: x for x in (*old.lines, *old.zones)}
    current = {c.name: c for c in pipeline.counters}
    counters, result = [], EditResult([], [], [], [])
    for item in (*new.lines, *new.zones):
        counter = current.get(item.name)
        if counter is not None and previous.get(item.name) == item:
            counters.append(counter)
            result.kept.append(item.name)
            continue
        fresh = make_counter(item, fps, new.tracker.high_score)
        same_kind = counter is not None and hasattr(counter, "polygon") == isinstance(item, ZoneConfig)
        if same_kind:
            for source, target in zip(_totals_of(counter), _totals_of(fresh)):
                target.update(source)
            result.changed.append(item.name)
        else:
            if store is not None:
                seed_totals(store, [fresh])
            result.added.append(item.name)
        counters.append(fresh)
    names = {x.name for x in (*new.lines, *new.zones)}
    result.removed = [c.name for c in pipeline.counters if c.name not in names]
    return counters, result


def apply_places(pipeline: Any, old: Config, new: Config, *, fps: float, config_path: Optional[Path],
                 raw: Optional[Dict[str, Any]], store: Any = None) -> EditResult:
    """Make the counters, save the file (when ``config_path``), then swap the pipeline's counters.

    Raises:
        ConfigError: the edit cannot be applied; nothing was saved or changed.
    """
    counters, result = build_counters(pipeline, old, new, fps, store)
    if config_path is not None and raw is not None:
        save_places(config_path, raw)
    if store is not None:
        places = json.loads(store.meta("places") or "{}")
        places.update({c.name: ("zone" if hasattr(c, "polygon") else "line") for c in counters})
        store.set_meta("places", json.dumps(places, sort_keys=True))
    pipeline.counters = counters  # one assignment: the frame loop sees the old list or the new one
    return result


def kinds_of(counters: Sequence[Any]) -> Dict[str, str]:
    """{name: "line" | "zone"} of a counter list."""
    return {c.name: ("zone" if hasattr(c, "polygon") else "line") for c in counters}
