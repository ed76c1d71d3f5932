"""``edge-runtime chat``: talk to the local model in the terminal, or ask one question and exit.

Interactive mode streams each answer as it is generated and keeps the conversation (trimmed to the
context window by :class:`~edge_runtime.llm.chat.Chat`). Commands: ``/reset`` forgets the conversation,
``/stats`` shows the last answer's numbers, ``/help``; Ctrl-C stops the current answer, Ctrl-D exits.

One-shot mode (``--prompt "..."``, or ``--prompt -`` to read standard input) prints the answer and
exits 0, for scripts and the README demo::

    edge-runtime chat --prompt "What is the capital of France?"
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional, TextIO

from ..errors import InputError
from .chat import Chat, GenerationStats

__all__ = ["configure_parser", "resolve_model", "run_command", "chat_loop"]

DEFAULT_ASSET = "smollm2-135m"
HELP = "/reset  forget the conversation\n/stats  numbers of the last answer\n/help   this text\nCtrl-C stops an answer, Ctrl-D exits"


def resolve_model(path: Optional[str]) -> Path:
    """The model file: ``path`` if given, else the built-in SmolLM2-135M-Instruct asset (fetched and
    verified on first use).

    Raises:
        AssetError: the built-in model cannot be fetched.
    """
    if path:
        return Path(path)
    from ..assets import ensure

    return ensure(DEFAULT_ASSET)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edge-runtime chat``."""
    parser.add_argument("--model", help="GGUF chat model (default: the built-in SmolLM2-135M-Instruct asset)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: half the CPUs)")
    parser.add_argument("--ctx", type=int, default=2048, help="context window in tokens (default 2048)")
    parser.add_argument("--prompt", help="ask this once, print the answer and exit ('-' reads stdin)")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest answer in tokens (default 256)")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 = deterministic (default 0.7)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    parser.add_argument("--stats", action="store_true", help="print token counts and speed after each answer")


def format_stats(stats: Optional[GenerationStats]) -> str:
    """One line: prompt/answer tokens, time to first token, decode speed, why it ended."""
    if stats is None:
        return "no answer yet"
    ttft = "-" if stats.ttft_s is None else f"{stats.ttft_s:.2f} s"
    reason = stats.finish_reason.value if stats.finish_reason else "running"
    dropped = f", {stats.dropped_messages} old messages dropped" if stats.dropped_messages else ""
    return (f"{stats.prompt_tokens} prompt + {stats.completion_tokens} answer tokens, first token {ttft}, "
            f"{stats.tokens_per_s:.1f} tok/s, {reason}{dropped}")


def _answer(chat: Chat, messages: List[Dict[str, str]], out: TextIO) -> Optional[str]:
    """Stream one answer to ``out``; None if interrupted with Ctrl-C."""
    cancel = threading.Event()
    pieces: List[str] = []
    with chat.stream(messages, cancel=cancel) as stream:
        try:
            for piece in stream:
                pieces.append(piece)
                out.write(piece)
                out.flush()
        except KeyboardInterrupt:
            cancel.set()
            out.write(" [stopped]\n")
            return None
    out.write("\n")
    return "".join(pieces)


def chat_loop(chat: Chat, *, system: Optional[str] = None, stats: bool = False,
              stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """The interactive loop; returns the exit status (0 on Ctrl-D / end of input)."""
    start: List[Dict[str, str]] = [{"role": "system", "content": system}] if system else []
    history = list(start)
    interactive = stdin.isatty()
    if interactive:
        err.write(f"{chat.model_name} (n_ctx={chat.n_ctx}, {chat.n_threads} threads). /help for commands, Ctrl-D to exit.\n")
    while True:
        if interactive:
            out.write("> ")
            out.flush()
        line = stdin.readline()
        if not line:  # Ctrl-D / end of input
            if interactive:
                out.write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            history = list(start)
            err.write("conversation cleared\n")
            continue
        if text == "/stats":
            err.write(format_stats(chat.last_stats) + "\n")
            continue
        if text in ("/help", "/?"):
            err.write(HELP + "\n")
            continue
        messages = history + [{"role": "user", "content": text}]
        try:
            kept = chat.fit(messages)[0]
        except InputError as exc:
            err.write(f"error: {exc}\n")
            continue
        reply = _answer(chat, kept, out)
        if reply is not None:
            history = kept + [{"role": "assistant", "content": reply}]
        if stats:
            err.write(f"[{format_stats(chat.last_stats)}]\n")


def run_command(args: argparse.Namespace) -> int:
    """``edge-runtime chat``: one-shot with ``--prompt``, else the interactive loop."""
    prompt = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read()
    if prompt is not None and not prompt.strip():
        raise InputError("chat --prompt: the prompt is empty")
    chat = Chat(resolve_model(args.model), n_threads=args.threads, n_ctx=args.ctx, seed=args.seed,
                temperature=args.temperature, max_tokens=args.max_tokens)
    try:
        if prompt is None:
            return chat_loop(chat, system=args.system, stats=args.stats)
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
            [{"role": "user", "content": prompt}]
        if _answer(chat, messages, sys.stdout) is None:
            return 130
        if args.stats:
            sys.stderr.write(f"[{format_stats(chat.last_stats)}]\n")
        return 0
    finally:
        chat.close()
