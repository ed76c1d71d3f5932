"""The ``edge-runtime`` command line.

Each sub-command lives in its own module, imported only when that sub-command runs, so
``edge-runtime --help`` and ``edge-runtime assets list`` stay fast on a small board. A command module
provides two functions::

    def configure_parser(parser: argparse.ArgumentParser) -> None: ...   # add its arguments
    def run_command(args: argparse.Namespace) -> int: ...                # do it; return exit status

and is registered with one line in :data:`COMMANDS`.

Exit status: 0 success; 2 usage error or any :class:`~edge_runtime.errors.EdgeRuntimeError` (one line
on stderr, no traceback unless ``--debug``); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from importlib import import_module
from typing import List, Optional, Sequence

from . import __version__
from .errors import EdgeRuntimeError

__all__ = ["Command", "COMMANDS", "main"]

PROG = "edge-runtime"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    """One sub-command: its name, the module implementing it, and its one-line help."""

    name: str
    module: str
    help: str


#: The sub-commands, in the order ``--help`` lists them. Add one line per command.
COMMANDS = (
    Command("run", "edge_runtime.runtime.run_cli", "detect, track and count on a camera or video; record the results"),
    Command("assets", "edge_runtime.assets", "fetch, verify and list the real models and media"),
    Command("ask", "edge_runtime.ask.cli", "answer a question about the counts from a results database"),
    Command("chat", "edge_runtime.llm.chat_cli", "chat with the local LLM in the terminal, or ask once"),
    Command("serve", "edge_runtime.llm.server", "serve the local LLM over an OpenAI-compatible HTTP API"),
    Command("link", "edge_runtime.link.cli", "serve RT-Thread nodes on a serial port and show the frames"),
    Command("service", "edge_runtime.runtime.service_cli", "install or remove a systemd service that runs a job"),
    Command("inspect", "edge_runtime.llm.inspect", "describe a GGUF model: quantization, size, RAM for a context"),
    Command("convert", "edge_runtime.converters.cli",
            "convert PyTorch / Hugging Face models to verified ONNX fp32, int8 and 4-bit, with a report"),
)


#: Commands that run for days with several allocating threads (see :mod:`edge_runtime.runtime.malloc`).
_LONG_RUNNING = ("run", "serve", "link")


def _chosen(argv: Sequence[str]) -> Optional[Command]:
    """The command named on the command line (the first non-option word), if it is a known one."""
    for word in argv:
        if word == "--":
            break
        if not word.startswith("-"):
            return next((c for c in COMMANDS if c.name == word), None)
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; only the command named in ``argv`` has its module imported and its
    arguments added (the others appear in ``--help`` with their one-line help)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Edge inference runtime: camera detection, tracking, counting and local chat.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd is chosen:
            import_module(cmd.module).configure_parser(p)
    return parser


def _setup_logging(debug: bool, quiet: bool) -> None:
    # Only our own logger, and only when run as a program: importing the library never touches logging.
    logger = logging.getLogger("edge_runtime")
    for old in [h for h in logger.handlers if getattr(h, "_edge_cli", False)]:
        logger.removeHandler(old)  # main() called again in one process (tests, embedding): no duplicates
    handler = logging.StreamHandler(sys.stderr)
    handler._edge_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit status (the console script exits with it).

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser(argv).parse_args(argv)
        _setup_logging(args.debug, args.quiet)
        cmd = next(c for c in COMMANDS if c.name == args.command)
        if cmd.name in _LONG_RUNNING:
            from .runtime.malloc import limit_malloc_arenas

            limit_malloc_arenas()  # before the command starts its threads
        return int(import_module(cmd.module).run_command(args) or 0)
    except EdgeRuntimeError as exc:
        if debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `edge-runtime assets list | head`: the reader left; exit quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
