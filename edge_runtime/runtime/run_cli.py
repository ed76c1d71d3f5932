"""``edge-runtime run [CONFIG]``: watch a source, detect, track, count, record; print live counts and a summary.

With no CONFIG it runs the built-in default: the real person detector on the real pedestrian video with a
line across the walkway (see :func:`~edge_runtime.runtime.config.default_config`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from typing import Any, Optional

from ..errors import BackendUnavailableError

from .config import Config, default_config, load_config

log = logging.getLogger(__name__)

__all__ = ["configure_parser", "run_command"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="TOML or YAML config file (default: the built-in demo job)")
    parser.add_argument("--db", help="results database (overrides output.db; '' disables it)")
    parser.add_argument("--video", help="write an annotated video here (overrides output.video)")
    parser.add_argument("--jsonl", action="store_true", help="print counting events as JSON lines on stdout")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--restart-source", action="store_true",
                        help="read a file source from its start even if the database has a checkpoint")
    parser.add_argument("--summary-json", help="also write the final totals to this JSON file")
    parser.add_argument("--ask", metavar="QUESTION",
                        help="after the run, answer this question from the counts with the local LLM")


def _with_overrides(config: Config, args: argparse.Namespace) -> Config:
    output = config.output
    if args.db is not None:
        output = dataclasses.replace(output, db=args.db)
    if args.video is not None:
        output = dataclasses.replace(output, video=args.video)
    if args.jsonl:
        output = dataclasses.replace(output, jsonl=True)
    if args.max_frames is not None:
        output = dataclasses.replace(output, max_frames=max(0, args.max_frames))
    return dataclasses.replace(config, output=output)


def run_command(args: argparse.Namespace) -> int:
    from .build import build_pipeline

    config = _with_overrides(load_config(args.config) if args.config else default_config(), args)
    if config.chat.enabled:  # pipeline + chat server in one process, on one CPU budget
        return _run_supervised(config, args)
    pipeline = build_pipeline(config, restart_source=args.restart_source, quiet=bool(getattr(args, "quiet", False)))
    from ..gateway.attach import start_mqtt

    mqtt = start_mqtt(config, pipeline)
    links = []
    if config.links:
        from ..ask.answer import asker_for_pipeline
        from ..link.attach import start_links

        links = start_links(config, pipeline, asker_for_pipeline(pipeline))
    # SIGTERM (systemd stop) ends the run cleanly: the frame in flight finishes, sinks flush, the run is
    # closed in the database, what MQTT still has to send is sent, and the exit status is 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: pipeline.stop())
    try:
        summary = pipeline.run(max_frames=config.output.max_frames)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for link in links:
            link.close()
        if mqtt is not None:
            mqtt.stop()
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(summary), f, indent=2)
    if args.ask:
        from ..ask.answer import asker_for_pipeline
        from ..ask.cli import timezone

        print(f"\nQ: {args.ask}", file=sys.stderr)
        chat = _load_chat(config)
        try:
            result = asker_for_pipeline(pipeline, chat=chat, tz=timezone(config.chat.timezone),
                                        phrase=chat is not None and config.chat.phrase).ask(args.ask)
        finally:
            if chat is not None:
                chat.close()
        print(result.text or "That is not a question about the counts; ask it with `edge-runtime chat`.",
              flush=True)
    store = getattr(pipeline, "store", None)
    if store is not None:
        store.close()
    return 0


def _load_chat(config: Config) -> Any:
    """The configured chat model for wording an answer, or None when llama-cpp-python is not installed
    (the answer is then the exact template sentence)."""
    try:
        from ..assets import resolve
        from ..llm.chat import Chat

        return Chat(resolve(config.chat.model), n_ctx=1024, n_threads=1)
    except BackendUnavailableError as exc:
        log.info("answering without the chat model: %s", exc)
        return None


def _run_supervised(config: Config, args: argparse.Namespace) -> int:
    from .supervisor import Supervisor

    supervisor = Supervisor(config, restart_source=args.restart_source, quiet=bool(getattr(args, "quiet", False)),
                            config_path=args.config)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: supervisor.stop())
    try:
        supervisor.start(max_frames=config.output.max_frames)
        if supervisor.address is not None:
            host, port = supervisor.address
            print(f"serving chat on http://{host}:{port}/v1 (metrics at http://{host}:{port}/metrics)",
                  file=sys.stderr, flush=True)
            if supervisor.dashboard is not None:
                print(f"dashboard at http://{host}:{port}/dashboard", file=sys.stderr, flush=True)
        while not supervisor.wait(0.2):
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        summary = supervisor.shutdown()
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(summary), f, indent=2)
    return 0
