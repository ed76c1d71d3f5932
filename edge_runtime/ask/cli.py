"""``edge-runtime ask``: answer a question from a results database, without running the pipeline.

For scripts, cron jobs and the MCU link::

    edge-runtime ask "how many people crossed the walkway line in the last hour?" site.toml
    edge-runtime ask "过去五分钟有多少人经过walkway线？" --db edge-runtime.db --json

With a config, its lines, zones, labels and database are used; with only ``--db``, the names the
database knows. ``--json`` prints the reading (intent and slots), the facts and the answer. ``--llm``
loads the config's chat model to read questions the rules are unsure of and to word the answer
(numbers checked).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, StoreError

__all__ = ["configure_parser", "run_command", "timezone"]


def timezone(name: Optional[str]) -> Optional[dt.tzinfo]:
    """A time zone by IANA name ("Europe/Berlin", "UTC"); None = the machine's local zone.

    Raises:
        ConfigError: an unknown zone.
    """
    if not name:
        return None
    if name.upper() == "UTC":
        return dt.timezone.utc
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError for malformed keys
        raise ConfigError(f"unknown time zone {name!r} (expected an IANA name such as 'Europe/Berlin')") from exc


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edge-runtime ask``."""
    parser.add_argument("question", help="the question, in English or Chinese")
    parser.add_argument("config", nargs="?", help="the job's config file (its lines, zones, labels and database)")
    parser.add_argument("--db", help="results database (default: the config's output.db)")
    parser.add_argument("--json", action="store_true", help="print the reading, the facts and the answer as JSON")
    parser.add_argument("--llm", action="store_true",
                        help="use the chat model for unclear questions and the wording (numbers checked)")
    parser.add_argument("--tz", help="time zone for clock times such as 'since 8 am' (default: this machine's)")


def _load(args: argparse.Namespace) -> Any:
    from ..runtime.store import Store
    from .data import StoreView, catalog_from_store
    from .query import Catalog

    config = None
    if args.config:
        from ..runtime.config import load_config

        config = load_config(args.config)
    db = args.db or (config.output.db if config is not None else "")
    if not db:
        raise ConfigError("ask: no results database: pass --db FILE, or a config whose output.db is set")
    if not Path(db).is_file():
        raise StoreError(f"{db}: no such results database (run the job first, or pass --db)")
    store = Store.open(db, readonly=True)
    labels = config.model.labels if config is not None else None
    catalog = catalog_from_store(store, labels=labels)
    if config is not None:
        places = {**catalog.places, **{ln.name: "line" for ln in config.lines},
                  **{z.name: "zone" for z in config.zones}}
        catalog = Catalog(places, catalog.classes)
    chat = None
    if args.llm:
        from ..assets import resolve
        from ..llm.chat import Chat

        model = config.chat.model if config is not None else "builtin:smollm2-135m"
        chat = Chat(resolve(model), n_ctx=1024, n_threads=1)
    return store, StoreView(store), catalog, chat


def run_command(args: argparse.Namespace) -> int:
    from .answer import Asker

    store, view, catalog, chat = _load(args)
    try:
        asker = Asker(view, catalog, chat=chat, tz=timezone(args.tz), phrase=chat is not None)
        result = asker.ask(args.question)
        if result.via == "chat":
            if chat is None:
                result.text = ("That is not a question about the counts. " + asker.help_text(result.query.lang)
                               if result.query else asker.help_text())
            else:
                reply = chat.ask(args.question, temperature=0.0, repeat_penalty=1.0, max_tokens=200)
                result.text, why = asker.guard_chat_reply(reply, result.query.lang if result.query else "en")
                if why:
                    result.notes.append(why)
        if args.json:
            print(json.dumps(result.as_dict(), ensure_ascii=False, indent=1))
        else:
            print(result.text)
        sys.stdout.flush()
    finally:
        store.close()
        if chat is not None:
            chat.close()
    return 0
