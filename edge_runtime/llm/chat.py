"""Local chat with a small GGUF model: one API for the terminal, the HTTP server and grounding.

The backend is llama-cpp-python (the ``llm`` extra), imported when the first :class:`Chat` is made, so
importing this module costs nothing on a board that only runs the camera pipeline.

What this layer adds over calling ``Llama.create_chat_completion`` directly:

- the model file goes through the hardened GGUF validator before llama.cpp parses it;
- the prompt is rendered with the model's own chat template (``tokenizer.chat_template`` in the GGUF
  metadata), the same way llama-cpp-python renders it, and tokenized once, so the prompt-token count
  is exact; a conversation that would not fit the context window with room for ``max_tokens`` loses
  its oldest turns (system prompts and the last message are kept);
- generation is one token at a time under our control: cancellation (an :class:`threading.Event` or a
  callable) and an optional ``between_tokens`` hook are checked after every token, so an HTTP
  disconnect or the frame scheduler stops or pauses generation within one token (prompt evaluation
  itself runs inside llama.cpp and is not interrupted);
- per-request statistics: prompt and completion tokens, time to first token, decode tokens/s.

Thread safety: one :class:`Chat` owns one llama.cpp context, which can run one generation at a time.
A lock serialises generations: a second caller blocks until the first finishes (a cancelled waiter
gives up). Token counting and prompt rendering do not take the lock.

Legend: a *message* is ``{"role": "system" | "user" | "assistant", "content": str}``; all token counts
are in the model's own tokenizer; times are seconds (``_s``) from :func:`time.perf_counter`.

Example:
    >>> from edge_runtime.assets import ensure
    >>> from edge_runtime.llm.chat import Chat
    >>> chat = Chat(ensure("smollm2-135m"), n_threads=2, temperature=0.0)
    >>> chat.ask("What is the capital of France?")        # doctest: +SKIP
    'The capital of France is Paris.'
    >>> for piece in chat.stream([{"role": "user", "content": "Say hi."}]):
    ...     print(piece, end="", flush=True)              # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import enum
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import BackendUnavailableError, ConfigError, InputError, ModelFormatError
from . import token_loop
from .ggml_build import build_advice

log = logging.getLogger(__name__)

__all__ = [
    "Cancel",
    "Chat",
    "FinishReason",
    "GenerationStats",
    "Message",
    "ROLES",
    "SamplingParams",
    "TokenStream",
]

Message = Mapping[str, str]
#: Something that says "stop": an Event that gets set, or a callable that returns True.
Cancel = Union[threading.Event, Callable[[], bool]]
ROLES = ("system", "user", "assistant")

_TEMPLATE_KEY = "tokenizer.chat_template"
# Metadata keys of end-of-generation tokens besides EOS (llama.cpp's llama-vocab.cpp reads the same).
_EXTRA_STOP_KEYS = ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")
_LOCK_POLL_S = 0.05
_MAX_STOP_STRINGS = 8


class FinishReason(str, enum.Enum):
    """Why a generation ended (the values are OpenAI's ``finish_reason`` strings where they exist)."""

    STOP = "stop"  # end-of-generation token or a stop string
    LENGTH = "length"  # max_tokens reached
    CANCELLED = "cancelled"  # the cancel event/callable fired (client gone, scheduler said stop)
    TOOL_CALLS = "tool_calls"  # the answer is a tool call (chat server)


@dataclass
class GenerationStats:
    """Counters for one generation; filled in while it runs, final once the stream is exhausted.

    Attributes:
        prompt_tokens: tokens in the rendered prompt after trimming.
        completion_tokens: tokens generated (the end-of-generation token is not counted).
        dropped_messages: oldest messages removed so the prompt fits the context window.
        ttft_s: seconds from the start of generation (lock held) to the first generated token,
            i.e. prompt evaluation plus one decode; ``None`` until a token arrives.
        elapsed_s: seconds from the start of generation to its end (or until now while running).
        wait_s: seconds spent waiting for the model lock before generation started.
        finish_reason: set when generation ends.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    dropped_messages: int = 0
    ttft_s: Optional[float] = None
    elapsed_s: float = 0.0
    wait_s: float = 0.0
    finish_reason: Optional[FinishReason] = None

    @property
    def tokens_per_s(self) -> float:
        """Decode rate: tokens after the first divided by the time after the first (0 if < 2 tokens)."""
        if self.ttft_s is None or self.completion_tokens < 2 or self.elapsed_s <= self.ttft_s:
            return 0.0
        return (self.completion_tokens - 1) / (self.elapsed_s - self.ttft_s)

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready copy (finish_reason as its string value, tokens_per_s included)."""
        out = dataclasses.asdict(self)
        out["finish_reason"] = self.finish_reason.value if self.finish_reason else None
        out["tokens_per_s"] = round(self.tokens_per_s, 3)
        return out


def _check_number(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InputError(f"sampling: {name} must be a number, got {value!r}")
    if value > hi or value < lo or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise InputError(f"sampling: {name} must be in {bracket}{lo}, {hi}], got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"sampling: {name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"sampling: {name} must be in [{lo}, {hi}], got {value}")
    return value


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are picked; validated on construction (:class:`InputError` names the field).

    Args:
        temperature: 0 picks the most likely token (deterministic); up to 2.
        top_p: nucleus mass in (0, 1].
        top_k: keep the k most likely tokens; 0 keeps all.
        min_p: drop tokens below ``min_p`` x the top probability, in [0, 1].
        repeat_penalty: > 0; 1 disables it.
        max_tokens: most tokens to generate, >= 1.
        stop: strings that end generation (not included in the output); at most 8, none empty.
        seed: sampler seed, 0 .. 2**32 - 1; with temperature > 0 the same seed gives the same text.
    """

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 256
    stop: Tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        _check_number("temperature", self.temperature, 0.0, 2.0)
        _check_number("top_p", self.top_p, 0.0, 1.0, lo_open=True)
        _check_int("top_k", self.top_k, 0, 1 << 20)
        _check_number("min_p", self.min_p, 0.0, 1.0)
        _check_number("repeat_penalty", self.repeat_penalty, 0.0, 10.0, lo_open=True)
        _check_int("max_tokens", self.max_tokens, 1, 1 << 20)
        _check_int("seed", self.seed, 0, (1 << 32) - 1)
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        if not isinstance(stop, (tuple, list)) or not all(isinstance(s, str) and s for s in stop):
            raise InputError(f"sampling: stop must be non-empty strings, got {self.stop!r}")
        if len(stop) > _MAX_STOP_STRINGS:
            raise InputError(f"sampling: stop holds at most {_MAX_STOP_STRINGS} strings, got {len(stop)}")
        object.__setattr__(self, "stop", tuple(stop))

    def replace(self, **changes: Any) -> "SamplingParams":
        """A copy with some fields changed (``None`` values are ignored), validated again."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InputError(f"sampling: unknown parameter(s) {unknown}; expected some of {sorted(names)}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _is_cancelled(cancel: Optional[Cancel]) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class _StopMatcher:
    """Holds back text that could be the start of a stop string, so a stop string split across
    tokens is never emitted; returns (text safe to emit, whether a stop string was hit)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._pending = ""

    def feed(self, text: str) -> Tuple[str, bool]:
        if not self._stops:
            return text, False
        buf = self._pending + text
        hits = [i for i in (buf.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._pending = ""
            return buf[: min(hits)], True
        keep = 0  # longest suffix of buf that is a proper prefix of some stop string
        for s in self._stops:
            for n in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:n]):
                    keep = n
                    break
        self._pending = buf[len(buf) - keep:]
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


def _free_sampler(llm: Any) -> None:
    """Free the sampler chain ``Llama.generate`` made for the generation that just ended.

    llama-cpp-python keeps it in ``Llama._sampler`` until the next ``generate`` replaces it, and its
    ``LlamaSampler`` frees the native chain only from ``__del__``, on a reference cycle (its exit stack's
    callback holds the object): the chains of past generations, with their grammar state, then wait in
    native memory for a full cyclic garbage collection (a vocabulary-sized candidate array each: the soak,
    ``benchmarks/bench_soak.py``, saw the process grow with every chat request). Freed here, they do not pile up.
    """
    sampler = getattr(llm, "_sampler", None)
    if sampler is not None:
        llm._sampler = None
        sampler.close()


#: Prompt tokens evaluated per llama.cpp call when a ``between_tokens`` hook is set, so a long prompt
#: (a grounded question carries its facts) gives way to a due camera frame every few milliseconds
#: instead of holding the CPUs for the whole prompt.
PREFILL_CHUNK = 16


def _prefill_yielding(llm: Any, tokens: Sequence[int], between: Callable[[], None],
                      cancel: Optional[Cancel]) -> bool:
    """Evaluate all prompt tokens but the last in chunks of :data:`PREFILL_CHUNK`, calling ``between``
    after each chunk; False when ``cancel`` fired. The prefix the context already holds is kept, and
    ``input_ids`` / ``n_tokens`` are left as ``Llama.eval`` leaves them, so the generator that follows
    finds the prompt evaluated and computes only its last token."""
    held = llm.input_ids[: llm.n_tokens]
    keep = 0
    for a, b in zip(held, tokens[:-1]):
        if a != b:
            break
        keep += 1
    llm.n_tokens = keep
    end = len(tokens) - 1
    for start in range(keep, end, PREFILL_CHUNK):
        llm.eval(tokens[start:min(start + PREFILL_CHUNK, end)])
        if _is_cancelled(cancel):
            return False
        between()
    return True


@functools.lru_cache(maxsize=1)
def _warn_if_not_native() -> None:
    """Log once per process when the installed llama.cpp leaves CPU features unused (see ggml_build)."""
    try:
        advice = build_advice()
    except Exception as exc:  # an unexpected system-info format must not stop a chat from loading
        log.debug("could not compare llama.cpp's build with this CPU: %s", exc)
        return
    if advice:
        log.warning("%s", advice)


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
        from llama_cpp import llama_chat_format
    except ImportError as exc:
        raise BackendUnavailableError(
            "chat needs llama-cpp-python: pip install 'edge-runtime[llm]' "
            f"(import failed: {exc})"
        ) from exc
    return llama_cpp, llama_chat_format


def _read_metadata(path: Path) -> Dict[str, Any]:
    """Validate the file with the hardened GGUF reader, then return its metadata (raises
    ModelFormatError), so nothing malformed reaches llama.cpp and a model that cannot chat is refused
    before its weights are loaded."""
    from .gguf_file import GGUFFile, validate

    validate(path)
    with GGUFFile.open(path) as f:
        return dict(f.metadata)


def _token_text(meta: Mapping[str, Any], key: str) -> Tuple[int, str]:
    """(id, text) of a special token named in the metadata; (-1, "") when absent or out of range."""
    tokens, tid = meta.get("tokenizer.ggml.tokens"), meta.get(key)
    if isinstance(tid, bool) or not isinstance(tid, int) or not isinstance(tokens, (list, tuple)):
        return -1, ""
    return (tid, str(tokens[tid])) if 0 <= tid < len(tokens) else (-1, "")


def normalize_messages(messages: Union[str, Sequence[Message]], system_prompt: Optional[str] = None) -> List[Dict[str, str]]:
    """Check a conversation and return it as a list of plain ``{"role", "content"}`` dicts.

    Args:
        messages: a user prompt (str) or a non-empty sequence of messages; the last must be from the user.
        system_prompt: prepended as a system message when ``messages`` is a str.

    Raises:
        InputError: not a str or list of messages, unknown role, non-str content, empty list, or
            the last message not from the user.
    """
    if isinstance(messages, str):
        out = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return out + [{"role": "user", "content": messages}]
    if isinstance(messages, (bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InputError(f"messages: expected a str or a list of {{role, content}} dicts, got {type(messages).__name__}")
    if not messages:
        raise InputError("messages: expected at least one message, got an empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise InputError(f"messages[{i}]: expected a dict with role and content, got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise InputError(f"messages[{i}].role: expected one of {list(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise InputError(f"messages[{i}].content: expected a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise InputError(f"messages[{len(out) - 1}].role: the last message must be from the user, got {out[-1]['role']!r}")
    return out


class TokenStream(Iterator[str]):
    """Text pieces of one generation, as they are produced; :attr:`stats` fills in as it runs.

    Iterate it to the end, or call :meth:`close` (or use it as a context manager) to stop early: the
    model lock is held from the first ``next()`` until the stream ends or is closed.
    """

    def __init__(self, gen: Iterator[str], stats: GenerationStats, messages: List[Dict[str, str]]) -> None:
        self._gen = gen
        self.stats = stats
        #: The messages actually sent to the model (after trimming).
        self.messages = messages

    def __iter__(self) -> "TokenStream":
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        """Stop generation (if running) and release the model."""
        self._gen.close()  # type: ignore[attr-defined]

    def __enter__(self) -> "TokenStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Chat:
    """A chat model loaded from a GGUF file; stateless between calls (pass the whole conversation).

    Args:
        model_path: a GGUF file with a chat template in its metadata (e.g. ``ensure("smollm2-135m")``).
        n_threads: CPU threads for decoding and prompt evaluation; default: half the logical CPUs.
            On a board that also runs the camera, leave a core free.
        n_ctx: context window in tokens (prompt + answer), 64 .. the model's trained context.
        n_batch: prompt tokens evaluated per llama.cpp call.
        flash_attn: llama.cpp's fused attention (on by default, as llama.cpp's own tools choose on a CPU;
            llama-cpp-python leaves it off, which cost 10-30 % of decode speed on SmolLM2-135M here).
        seed: default sampler seed (see :class:`SamplingParams`).
        system_prompt: system message used when :meth:`ask`/:meth:`stream` are given a plain string.
        chat_template: a Jinja chat template to use instead of the model's own.
        temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, stop: default
            :class:`SamplingParams`; each call may override them.

    Raises:
        BackendUnavailableError: llama-cpp-python is not installed.
        ModelFormatError: the file is missing, not a valid GGUF, not loadable by llama.cpp, or has no
            chat template (and none was given).
        ConfigError: n_threads, n_ctx or n_batch out of range.
        InputError: a sampling default out of range.
    """

    def __init__(
        self,
        model_path: Union[str, os.PathLike],
        *,
        n_threads: Optional[int] = None,
        n_ctx: int = 2048,
        n_batch: int = 256,
        flash_attn: bool = True,
        seed: int = 0,
        system_prompt: Optional[str] = None,
        chat_template: Optional[str] = None,
        temperature: float = 0.7,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.1,
        max_tokens: int = 256,
        stop: Sequence[str] = (),
    ) -> None:
        self._llm: Any = None  # set last, so __del__/close are safe after a failed __init__
        self.sampling = SamplingParams(
            temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
            repeat_penalty=repeat_penalty, max_tokens=max_tokens, stop=tuple(stop), seed=seed)
        cpus = os.cpu_count() or 1
        if n_threads is None:
            n_threads = max(1, cpus // 2)
        for name, value, lo, hi in (("n_threads", n_threads, 1, 1024), ("n_ctx", n_ctx, 64, 1 << 20),
                                    ("n_batch", n_batch, 1, 1 << 16)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"Chat: {name} must be an integer in [{lo}, {hi}], got {value!r}")
        self.system_prompt = system_prompt
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelFormatError(f"{self.model_path}: no such model file (expected a .gguf file)")
        llama_cpp, chat_format = _import_llama_cpp()
        meta = _read_metadata(self.model_path)
        n_ctx_train = meta.get(f"{meta.get('general.architecture')}.context_length")
        if isinstance(n_ctx_train, int) and n_ctx > n_ctx_train:
            raise ConfigError(f"Chat: n_ctx={n_ctx} exceeds the context {self.model_path.name} was trained on ({n_ctx_train})")
        template = chat_template or meta.get(_TEMPLATE_KEY)
        if not isinstance(template, str) or not template:
            raise ModelFormatError(
                f"{self.model_path}: no chat template ({_TEMPLATE_KEY!r} missing from the GGUF metadata); "
                "it is probably a base model - use it for completion, or pass chat_template=")
        eos, self._eos_text = _token_text(meta, "tokenizer.ggml.eos_token_id")
        _, bos_text = _token_text(meta, "tokenizer.ggml.bos_token_id")
        stop_ids = [eos] + [_token_text(meta, k)[0] for k in _EXTRA_STOP_KEYS]
        self._stop_ids = frozenset(t for t in stop_ids if t >= 0)
        try:  # as llama-cpp-python builds its handler from the GGUF template (llama.py, Llama.__init__)
            self._formatter = chat_format.Jinja2ChatFormatter(
                template=template, eos_token=self._eos_text, bos_token=bos_text,
                add_generation_prompt=True, stop_token_ids=sorted(self._stop_ids))
        except Exception as exc:  # jinja2.TemplateSyntaxError and friends
            raise ModelFormatError(f"{self.model_path}: chat template does not parse: {exc}") from exc
        try:
            llm = llama_cpp.Llama(
                model_path=str(self.model_path), n_ctx=n_ctx, n_batch=min(n_batch, n_ctx),
                n_threads=n_threads, n_threads_batch=n_threads, flash_attn=bool(flash_attn), seed=seed,
                verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"{self.model_path}: llama.cpp could not load it: {exc}") from exc
        _warn_if_not_native()
        if not self._stop_ids:
            self._stop_ids = frozenset([llm.token_eos()])
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        #: ``general.name`` from the GGUF metadata, else the file stem.
        self.model_name = str(meta.get("general.name") or self.model_path.stem)
        self._lock = threading.Lock()
        self._last_stats: Optional[GenerationStats] = None
        self._pieces: Dict[int, bytes] = {}  # token id -> its bytes, filled as tokens are generated
        self._grammars: Dict[str, Any] = {}  # GBNF text -> compiled grammar
        self._yield_to = threading.local()  # see yielding()
        self._llm = llm

    def set_threads(self, n_threads: int) -> None:
        """Change the threads llama.cpp uses for the next decode (``llama_set_n_threads``; no reload).

        The co-scheduler calls this at the start of a generation, so one loaded model serves every
        thread budget.

        Raises:
            ConfigError: n_threads not an integer in [1, 1024].
        """
        if isinstance(n_threads, bool) or not isinstance(n_threads, int) or not 1 <= n_threads <= 1024:
            raise ConfigError(f"Chat.set_threads: n_threads must be an integer in [1, 1024], got {n_threads!r}")
        if n_threads == self.n_threads:
            return
        llama_cpp, _ = _import_llama_cpp()
        llama_cpp.llama_set_n_threads(self._require_llm()._ctx.ctx, n_threads, n_threads)
        self.n_threads = n_threads

    # ---------------------------------------------------------------------------------------- tokens

    def _tokens(self, messages: List[Dict[str, str]]) -> List[int]:
        prompt = self._formatter(messages=messages).prompt
        # As llama-cpp-python's chat handler does: special tokens parsed, BOS only if the template has it.
        return self._require_llm().tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, messages: Union[str, Sequence[Message]]) -> int:
        """Tokens the rendered prompt takes (chat template and generation prompt included).

        Raises:
            InputError: malformed messages.
        """
        return len(self._tokens(normalize_messages(messages, self.system_prompt)))

    def count_text_tokens(self, text: str) -> int:
        """Tokens a piece of answer text takes (no template, no special tokens)."""
        return len(self._require_llm().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def fit(self, messages: Union[str, Sequence[Message]], max_tokens: Optional[int] = None
            ) -> Tuple[List[Dict[str, str]], List[int], int]:
        """Trim a conversation to fit the context window with room for ``max_tokens``.

        Drops the oldest non-system messages (then any leading assistant turns, so the kept history
        starts with a user turn); system messages and the last message are always kept.

        Args:
            messages: the conversation (see :func:`normalize_messages`).
            max_tokens: room to leave for the answer; default the chat's ``max_tokens``.

        Returns:
            (kept messages, their prompt tokens, number of messages dropped).

        Raises:
            InputError: malformed messages, or the system prompt plus the last message alone do not fit.
        """
        msgs = normalize_messages(messages, self.system_prompt)
        room = self.sampling.max_tokens if max_tokens is None else max_tokens
        budget = self.n_ctx - room
        if budget < 1:
            raise InputError(f"max_tokens={room} leaves no room for the prompt in n_ctx={self.n_ctx}")
        system = [m for m in msgs[:-1] if m["role"] == "system"]
        history = [m for m in msgs[:-1] if m["role"] != "system"]
        last = msgs[-1]

        def attempt(k: int) -> Tuple[List[Dict[str, str]], List[int]]:
            kept = history[k:]
            while kept and kept[0]["role"] != "user":
                kept = kept[1:]
            # Keep the original order of system messages relative to each other, all first.
            conv = system + kept + [last]
            return conv, self._tokens(conv)

        conv, tokens = attempt(0)
        if len(tokens) <= budget:
            return conv, tokens, len(msgs) - len(conv)
        # Fewer history messages never means more tokens: binary-search the fewest to drop.
        lo, hi = 1, len(history)
        best = attempt(hi)
        if len(best[1]) > budget:
            raise InputError(
                f"messages: the system prompt and last message take {len(best[1])} tokens; with "
                f"max_tokens={room} the context window n_ctx={self.n_ctx} allows {budget}")
        while lo < hi:
            mid = (lo + hi) // 2
            cand = attempt(mid)
            if len(cand[1]) <= budget:
                hi, best = mid, cand
            else:
                lo = mid + 1
        conv, tokens = best
        return conv, tokens, len(msgs) - len(conv)

    # ------------------------------------------------------------------------------------ generation

    def stream(
        self,
        messages: Union[str, Sequence[Message]],
        *,
        cancel: Optional[Cancel] = None,
        between_tokens: Optional[Callable[[], None]] = None,
        grammar: Optional[str] = None,
        **sampling: Any,
    ) -> TokenStream:
        """Generate an answer piece by piece.

        The conversation is checked and trimmed now (errors raise here); generation starts at the
        first ``next()``, after taking the model lock.

        Args:
            messages: a user prompt (str) or the whole conversation, last message from the user.
            cancel: checked while waiting for the lock and after every token; when it fires the stream
                ends with ``finish_reason = "cancelled"``.
            between_tokens: called after each token is handed out and before the next is computed
                (e.g. to let a due camera frame run), and after each :data:`PREFILL_CHUNK` prompt tokens;
                runs with the model lock held.
            grammar: a GBNF grammar (llama.cpp's format) the answer must follow; tokens it does not
                allow are never sampled.
            **sampling: per-call overrides of :class:`SamplingParams` fields.

        Returns:
            a :class:`TokenStream` of text pieces (a piece can hold less or more than one token when
            a UTF-8 character or a possible stop string spans tokens); its ``stats`` fill in as it runs.

        Raises:
            InputError: malformed messages, bad sampling values, a prompt that cannot fit, or the chat
                was closed.
        """
        params = self.sampling.replace(**sampling)
        self._require_llm()
        if between_tokens is None:
            between_tokens = getattr(self._yield_to, "fn", None)
        compiled = self._grammar(grammar) if grammar is not None else None
        kept, tokens, dropped = self.fit(messages, params.max_tokens)
        stats = GenerationStats(prompt_tokens=len(tokens), dropped_messages=dropped)
        return TokenStream(self._generate(tokens, params, stats, cancel, between_tokens, compiled), stats, kept)

    @contextlib.contextmanager
    def yielding(self, between_tokens: Optional[Callable[[], None]]) -> Iterator[None]:
        """Within the block, generations started on this thread without their own ``between_tokens`` use
        this one (the chat server's worker wraps answers it builds from several model calls)."""
        before = getattr(self._yield_to, "fn", None)
        self._yield_to.fn = between_tokens
        try:
            yield
        finally:
            self._yield_to.fn = before

    def _grammar(self, text: str) -> Any:
        cached = self._grammars.get(text)
        if cached is None:
            llama_cpp, _ = _import_llama_cpp()
            try:
                cached = llama_cpp.LlamaGrammar.from_string(text, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise InputError(f"Chat: the grammar does not parse: {exc}") from exc
            if len(self._grammars) > 32:
                self._grammars.clear()
            self._grammars[text] = cached
        return cached

    def ask(
        self,
        messages: Union[str, Sequence[Message]],
        *,
        cancel: Optional[Cancel] = None,
        between_tokens: Optional[Callable[[], None]] = None,
        grammar: Optional[str] = None,
        **sampling: Any,
    ) -> str:
        """Generate a whole answer; same arguments and errors as :meth:`stream`.

        Returns:
            the answer text (its statistics are in :attr:`last_stats`).
        """
        with self.stream(messages, cancel=cancel, between_tokens=between_tokens, grammar=grammar,
                         **sampling) as pieces:
            return "".join(pieces)

    @property
    def last_stats(self) -> Optional[GenerationStats]:
        """Statistics of the most recent finished generation (``None`` before the first)."""
        return self._last_stats

    def _acquire(self, cancel: Optional[Cancel]) -> bool:
        while not self._lock.acquire(timeout=_LOCK_POLL_S):
            if _is_cancelled(cancel):
                return False
        return True

    def _generate(self, tokens: List[int], params: SamplingParams, stats: GenerationStats,
                  cancel: Optional[Cancel], between_tokens: Optional[Callable[[], None]],
                  grammar: Any = None) -> Iterator[str]:
        t_wait = time.perf_counter()
        if not self._acquire(cancel):
            stats.wait_s = time.perf_counter() - t_wait
            stats.finish_reason = FinishReason.CANCELLED
            return
        t0 = time.perf_counter()
        stats.wait_s = t0 - t_wait
        try:
            llm = self._require_llm()
            llama_cpp, _ = _import_llama_cpp()
            if _is_cancelled(cancel):
                stats.finish_reason = FinishReason.CANCELLED
                return
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            # The EOS text as a stop string too, as llama-cpp-python's chat handler does.
            matcher = _StopMatcher(params.stop + ((self._eos_text,) if self._eos_text else ()))
            llm.set_seed(params.seed)
            if between_tokens is not None and not _prefill_yielding(llm, tokens, between_tokens, cancel):
                stats.finish_reason = FinishReason.CANCELLED
                return
            if grammar is not None:
                gen = llm.generate(tokens, top_k=1 if params.temperature == 0.0 else params.top_k,
                                   top_p=params.top_p, min_p=params.min_p, temp=params.temperature,
                                   repeat_penalty=params.repeat_penalty, reset=True, grammar=grammar)
            elif params.temperature == 0.0 and params.repeat_penalty == 1.0:
                gen = token_loop.greedy_tokens(llama_cpp, llm, tokens)
            elif token_loop.CandidateSampler.supports(top_k=params.top_k, temperature=params.temperature,
                                                      repeat_penalty=params.repeat_penalty,
                                                      penalty_last_n=llm.last_n_tokens_size):
                from .. import _native

                gen = token_loop.sampled_tokens(llama_cpp, llm, tokens, token_loop.CandidateSampler(
                    llama_cpp, _native, llm.n_vocab(), top_k=params.top_k, top_p=params.top_p, min_p=params.min_p,
                    temperature=params.temperature, repeat_penalty=params.repeat_penalty,
                    penalty_last_n=llm.last_n_tokens_size, seed=params.seed))
            else:
                gen = llm.generate(tokens, top_k=params.top_k, top_p=params.top_p, min_p=params.min_p,
                                   temp=params.temperature, repeat_penalty=params.repeat_penalty, reset=True)
            finish = FinishReason.STOP  # also when llama.cpp's generator ends by itself
            hit = False
            try:
                for token in gen:
                    if token in self._stop_ids:
                        break
                    stats.completion_tokens += 1
                    now = time.perf_counter()
                    if stats.ttft_s is None:
                        stats.ttft_s = now - t0
                    stats.elapsed_s = now - t0
                    piece = self._pieces.get(token)
                    if piece is None:  # a token's bytes do not depend on its neighbours
                        piece = self._pieces[token] = llm.detokenize([token])
                    text, hit = matcher.feed(decoder.decode(piece))
                    if text:
                        yield text
                    if hit:
                        break
                    if stats.completion_tokens >= params.max_tokens:
                        finish = FinishReason.LENGTH
                        break
                    if between_tokens is not None:
                        between_tokens()
                    if _is_cancelled(cancel):
                        finish = FinishReason.CANCELLED
                        break
            finally:
                gen.close()
                _free_sampler(llm)
            # Text held back as a possible stop-string prefix is real text unless a stop string hit
            # (then it was already cut). An incomplete UTF-8 tail is dropped, not shown as U+FFFD.
            tail = "" if hit or finish is FinishReason.CANCELLED else matcher.flush()
            stats.finish_reason = finish
            if tail:
                yield tail
        finally:
            if stats.finish_reason is None:  # closed by the consumer, or an error
                stats.finish_reason = FinishReason.CANCELLED
            stats.elapsed_s = time.perf_counter() - t0
            self._last_stats = stats
            self._lock.release()

    # ------------------------------------------------------------------------------------- lifecycle

    def _require_llm(self) -> Any:
        if self._llm is None:
            raise InputError(f"Chat({self.model_path.name}): the model was closed")
        return self._llm

    def close(self) -> None:
        """Free the model and its context (waits for a running generation to finish)."""
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        with self._lock:
            self._llm = None
            llm.close()

    def __enter__(self) -> "Chat":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._llm is None else f"n_ctx={self.n_ctx}, n_threads={self.n_threads}"
        return f"Chat({self.model_path.name!r}, {state})"
