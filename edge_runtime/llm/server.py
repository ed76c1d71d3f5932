"""OpenAI-compatible HTTP server for a local :class:`~edge_runtime.llm.chat.Chat`.

Routes: ``POST /v1/chat/completions`` (JSON or, with ``"stream": true``, server-sent events of
``data: {chunk}`` lines ending in ``data: [DONE]``), ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health`` (no auth; load only). It works unmodified with the official ``openai`` client. One
model is served: the request's ``model`` field is not checked; responses name the served model.

Behaviour a board needs:

- One generation at a time (one model, one context) on a dedicated worker thread; waiting requests sit
  in a bounded queue (``queue_depth``), and a request arriving when it is full gets ``429`` with an
  OpenAI-style error body and ``Retry-After``.
- A client that disconnects (streaming or not) cancels its generation within one token; a queued
  request whose client left is skipped.
- Binds to 127.0.0.1 by default and refuses a non-loopback host without a bearer token; with a token
  set, ``/v1/*`` answers ``401`` unless ``Authorization: Bearer <token>`` matches.
- Bodies over ``max_body_bytes`` get ``413``; malformed requests ``400`` naming the field;
  ``max_tokens`` is capped at ``max_tokens_cap``.

Why Starlette + uvicorn (the ``llm`` extra) rather than the standard library's ``http.server``: the
stdlib server's own documentation says it is not for production and does only basic security checks;
an HTTP/1.1 parser that is fuzzed and maintained (h11) and proper disconnect events are what make
cancellation and limits trustworthy. Both are pure Python (with h11, anyio, click), so they install on
armv7 without a compiler, unlike the FastAPI + pydantic (Rust core) stack llama-cpp-python's server uses.

Example:
    >>> from edge_runtime.llm.chat import Chat
    >>> from edge_runtime.llm.server import ChatServer, ServerConfig
    >>> server = ChatServer(Chat("model.gguf"), ServerConfig(port=0))   # doctest: +SKIP
    >>> host, port = server.start()                                      # doctest: +SKIP
    >>> # openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key="-")...
    >>> server.stop()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hmac
import ipaddress
import json
import logging
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Tuple

from ..errors import BackendUnavailableError, ConfigError, EdgeRuntimeError, InputError
from .chat import Chat, FinishReason, GenerationStats, SamplingParams
from .tool_calls import ToolCall, ToolRequestError, convert_tool_messages, parse_tools, schema_arguments, \
    schema_grammar, tool_result_answer

__all__ = ["ChatServer", "ServerConfig", "configure_parser", "is_loopback", "run_command"]

log = logging.getLogger(__name__)

_MAX_STOP = 4  # OpenAI's limit on "stop" strings
_ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def is_loopback(host: str) -> bool:
    """True when ``host`` is "localhost" or a loopback IP (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public interface


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens and what it accepts; checked on construction.

    Args:
        host: interface to bind; non-loopback hosts need ``token``.
        port: TCP port; 0 picks a free one (see :meth:`ChatServer.start`).
        token: bearer token required on ``/v1/*``; ``None`` = no auth (loopback only).
        queue_depth: requests allowed to wait behind the running one; more get 429.
        max_body_bytes: largest request body accepted (413 beyond).
        max_tokens_cap: ``max_tokens`` of a request is lowered to this.
        model_id: the name ``/v1/models`` reports; default the model file's stem.

    Raises:
        ConfigError: a value out of range, or a non-loopback host without a token.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: Optional[str] = None
    queue_depth: int = 4
    max_body_bytes: int = 256 * 1024
    max_tokens_cap: int = 512
    model_id: Optional[str] = None

    def __post_init__(self) -> None:
        for name, lo, hi in (("port", 0, 65535), ("queue_depth", 0, 4096),
                             ("max_body_bytes", 1024, 64 << 20), ("max_tokens_cap", 1, 1 << 20)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"serve: {name} must be an integer in [{lo}, {hi}], got {value!r}")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise ConfigError("serve: token must be a non-empty string without whitespace")
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"serve: refusing to listen on non-loopback host {self.host!r} without a bearer token; "
                "pass --token (or bind to 127.0.0.1)")


class _RequestError(Exception):
    """An error answered as an OpenAI-style JSON body."""

    def __init__(self, status: int, message: str, *, param: Optional[str] = None,
                 kind: str = "invalid_request_error", code: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code
        self.headers = headers or {}

    def body(self) -> Dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _bad(param: str, message: str) -> _RequestError:
    return _RequestError(400, f"{param}: {message}", param=param)


def _parse_messages(raw: Any) -> List[Dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else "nothing" if raw is None else type(raw).__name__
        raise _bad("messages", f"expected a non-empty array of messages, got {got}")
    raw = convert_tool_messages(raw)
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}]", f"expected an object, got {type(m).__name__}")
        role = _ROLE_ALIASES.get(m["role"]) if isinstance(m.get("role"), str) else None
        if role is None:
            raise _bad(f"messages[{i}].role", f"expected one of {sorted(_ROLE_ALIASES)}, got {m.get('role')!r}")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise _bad(f"messages[{i}].content", "only text parts ({\"type\": \"text\", \"text\": str}) are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _bad(f"messages[{i}].content", f"expected a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise _bad(f"messages[{len(out) - 1}].role", f"the last message must be from the user, got {out[-1]['role']!r}")
    return out


def _number(body: Dict[str, Any], name: str, lo: float, hi: float) -> Optional[float]:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise _bad(name, f"expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def parse_request(body: Any, defaults: SamplingParams, max_tokens_cap: int
                  ) -> Tuple[List[Dict[str, str]], Dict[str, Any], bool, bool]:
    """Check a ``/v1/chat/completions`` body.

    Returns:
        (messages, sampling overrides for :meth:`Chat.stream`, stream?, include usage chunk?).

    Raises:
        _RequestError: 400 naming the offending field.
    """
    if not isinstance(body, dict):
        raise _bad("body", f"expected a JSON object, got {type(body).__name__}")
    messages = _parse_messages(body.get("messages"))
    sampling: Dict[str, Any] = {}
    for name, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = _number(body, name, lo, hi)
        if value is not None:
            sampling[name] = value
    if sampling.get("top_p") == 0.0:
        raise _bad("top_p", "expected a number in (0, 1], got 0")
    max_tokens = defaults.max_tokens
    for name in ("max_completion_tokens", "max_tokens"):  # the newer name wins when both are given
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _bad(name, f"expected an integer >= 1, got {value!r}")
            max_tokens = value
            break
    sampling["max_tokens"] = min(max_tokens, max_tokens_cap)
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or len(stop) > _MAX_STOP or not all(isinstance(s, str) and s for s in stop):
            raise _bad("stop", f"expected a non-empty string or up to {_MAX_STOP} of them, got {body.get('stop')!r}")
        sampling["stop"] = tuple(stop)
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 32:
            raise _bad("seed", f"expected an integer in [0, 2**32), got {seed!r}")
        sampling["seed"] = seed
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n", f"only n=1 is supported, got {n!r}")
    for name in ("functions", "logprobs"):
        if body.get(name):
            raise _bad(name, "not supported by this server")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", f"expected true or false, got {stream!r}")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise _bad("stream_options", f"expected {{\"include_usage\": bool}}, got {body.get('stream_options')!r}")
    return messages, sampling, stream, bool(options.get("include_usage"))


def _pieces(text: str, size: int = 3) -> List[str]:
    """A known answer, streamed a few words at a time (joined, the pieces are exactly ``text``)."""
    words = text.split(" ")
    return [" ".join(words[i:i + size]) + (" " if i + size < len(words) else "") for i in range(0, len(words), size)]


class _Job:
    """One admitted request: what to generate, how to cancel it, where its pieces go (an asyncio
    queue on the server's loop, fed from the worker thread)."""

    def __init__(self, messages: List[Dict[str, str]], sampling: Dict[str, Any],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.messages, self.sampling, self.loop = messages, sampling, loop
        # An answer known without free generation (grounded counts): the text, or a function that makes
        # it on the worker (it may use the model: a constrained reading, a checked rewording).
        self.exact: Any = None
        self.tool: Any = None  # a ToolCall to return, or a function that makes one on the worker
        self.cancel = threading.Event()
        self.events: "asyncio.Queue[Tuple[str, Any]]" = asyncio.Queue()

    def emit(self, kind: str, value: Any = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


class ChatServer:
    """Serves one :class:`Chat` over HTTP; see the module docstring for the behaviour.

    Args:
        chat: the loaded model (shared: its own lock still serialises other users of it).
        config: listening and limits.
        hooks: optional co-scheduling hooks (duck-typed; each attribute optional), used by the runtime
            supervisor: ``prepare(messages) -> (messages, exact_answer | None)`` runs before admission
            (an exact answer is sent as the completion without generating); ``generation_started()``
            and ``generation_finished(stats, outcome)`` run on the worker thread around each
            generation; ``between_tokens()`` is passed to :meth:`Chat.stream`; ``metrics_text() -> str``
            adds ``GET /metrics`` (Prometheus text, no auth: it holds no conversation data).
        routes: more Starlette routes served by the same app (the dashboard's; they do their own auth).

    Raises:
        BackendUnavailableError: starlette/uvicorn are not installed (``pip install 'edge-runtime[llm]'``).
    """

    def __init__(self, chat: Chat, config: Optional[ServerConfig] = None, *, hooks: Any = None,
                 routes: Sequence[Any] = ()) -> None:
        self.chat = chat
        self.extra_routes = list(routes)
        self.hooks = hooks
        self.config = config or ServerConfig()
        self.model_id = self.config.model_id or chat.model_path.stem
        self._created = int(time.time())
        self._jobs: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self._admit_lock = threading.Lock()
        self._admitted = 0  # running + queued
        self._live: "set[_Job]" = set()  # the same jobs, so stop() can cancel them
        self._worker: Optional[threading.Thread] = None
        self._uvicorn: Any = None
        self._thread: Optional[threading.Thread] = None
        #: Totals since start: generations run to the end, cancelled (client left), failed, rejected (429).
        self.counters = {"completed": 0, "cancelled": 0, "failed": 0, "rejected": 0}
        #: Statistics of the most recent generation, and of the running one (live, or None).
        self.last_stats: Optional[GenerationStats] = None
        self.current_stats: Optional[GenerationStats] = None
        self.app = self._build_app()

    # ------------------------------------------------------------------------------------- worker

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            stats, outcome = None, "completed"
            started = getattr(self.hooks, "generation_started", None)
            finished = getattr(self.hooks, "generation_finished", None)
            try:
                made = job.tool if job.tool is not None else job.exact
                if callable(made) and not job.cancel.is_set():
                    # Made on this worker inside the scheduling hooks; the model calls it makes (a constrained
                    # reading, a checked rewording) park for frames like any generation. None: the question
                    # is not about the counts after all, so the model answers it freely below.
                    if started is not None:
                        started()
                    try:
                        with self.chat.yielding(getattr(self.hooks, "between_tokens", None)):
                            made = made()
                    finally:
                        if finished is not None:
                            finished(None, "completed")
                if made is not None:  # no free generation
                    stats = self._usage(job.messages, made)
                    if isinstance(made, ToolCall):
                        job.emit("tool_call", made)
                    else:
                        for piece in _pieces(str(made)):
                            job.emit("piece", piece)
                elif not job.cancel.is_set():
                    if started is not None:
                        started()
                    try:
                        with self.chat.stream(job.messages, cancel=job.cancel,
                                              between_tokens=getattr(self.hooks, "between_tokens", None),
                                              **job.sampling) as pieces:
                            stats = self.current_stats = pieces.stats
                            for piece in pieces:
                                job.emit("piece", piece)
                    finally:
                        if finished is not None:
                            finished(stats, "completed" if stats is not None else "cancelled")
                if stats is None or stats.finish_reason is FinishReason.CANCELLED:
                    outcome = "cancelled"
            except Exception as exc:  # reported to the client; the worker keeps serving
                log.exception("generation failed")
                outcome = "failed"
                job.emit("error", exc)
            # Book-keeping before the client hears "end", so what it sees next is already counted.
            self.current_stats = None
            if stats is not None:
                self.last_stats = stats
            with self._admit_lock:
                self._admitted -= 1
                self._live.discard(job)
                self.counters[outcome] += 1
            if outcome != "failed":
                job.emit("end", stats)
            if stats is not None:
                log.info("chat: %s", json.dumps(stats.as_dict()))

    def _usage(self, messages: List[Dict[str, str]], made: Any) -> GenerationStats:
        """Token usage of an answer made without free generation, counted with the model's tokenizer."""
        text = made.arguments if isinstance(made, ToolCall) else str(made)
        stats = GenerationStats(finish_reason=FinishReason.TOOL_CALLS if isinstance(made, ToolCall)
                                else FinishReason.STOP)
        try:
            stats.prompt_tokens = self.chat.count_tokens(messages)
            stats.completion_tokens = self.chat.count_text_tokens(text)
        except EdgeRuntimeError:  # the model was closed under us: usage stays 0
            pass
        return stats

    def _admit(self, job: _Job) -> None:
        with self._admit_lock:
            if self._admitted >= 1 + self.config.queue_depth:
                self.counters["rejected"] += 1
                raise _RequestError(
                    429, f"server busy: 1 generation running and {self._admitted - 1} queued "
                         f"(queue_depth={self.config.queue_depth}); retry later",
                    kind="rate_limit_error", code="queue_full", headers={"Retry-After": "1"})
            self._admitted += 1
            self._live.add(job)
        self._jobs.put(job)

    def _cancel_all(self) -> None:
        with self._admit_lock:
            for job in self._live:
                job.cancel.set()

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="edge-chat-worker", daemon=True)
            self._worker.start()

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join()
            self._worker = None

    # ---------------------------------------------------------------------------------------- HTTP

    def _build_app(self) -> Any:
        try:
            from starlette.applications import Starlette
            from starlette.requests import ClientDisconnect
            from starlette.responses import JSONResponse, PlainTextResponse
            from starlette.routing import Route
        except ImportError as exc:
            raise BackendUnavailableError(
                f"serve needs starlette and uvicorn: pip install 'edge-runtime[llm]' (import failed: {exc})") from exc
        server = self

        def error_response(err: _RequestError) -> Any:
            return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

        def check_auth(request: Any) -> None:
            token = server.config.token
            if token is None:
                return
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                raise _RequestError(401, "missing or wrong bearer token (Authorization: Bearer <token>)",
                                    code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

        async def read_json(request: Any) -> Any:
            limit = server.config.max_body_bytes
            declared = request.headers.get("content-length")
            too_big = _RequestError(413, f"request body larger than max_body_bytes={limit}", code="body_too_large")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise too_big
            chunks, size = [], 0
            try:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise too_big
                    chunks.append(chunk)
            except ClientDisconnect:
                raise _bad("body", "client disconnected while sending the body") from None
            try:
                return json.loads(b"".join(chunks))
            except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting depth
                raise _bad("body", f"not valid JSON: {str(exc)[:200]}") from None

        async def watch_disconnect(receive: Any, job: _Job) -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    job.cancel.set()
                    return

        def envelope(kind: str, rid: str) -> Dict[str, Any]:
            return {"id": rid, "object": kind, "created": int(time.time()), "model": server.model_id}

        def usage(stats: Optional[GenerationStats]) -> Dict[str, int]:
            p, c = (stats.prompt_tokens, stats.completion_tokens) if stats else (0, 0)
            return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

        async def completions(request: Any) -> Any:
            try:
                check_auth(request)
                body = await read_json(request)
                messages, sampling, stream, include_usage = parse_request(
                    body, server.chat.sampling, server.config.max_tokens_cap)
                try:
                    tool_req = parse_tools(body)
                except ToolRequestError as exc:
                    raise _bad(exc.param, str(exc)) from None
                exact: Any = None
                tool: Any = None
                answered = tool_result_answer(body.get("messages") or [])
                if answered is not None:  # the result of one of our tools: its sentence is the answer
                    exact = answered[1]
                prepare = getattr(server.hooks, "prepare", None)
                if prepare is not None and exact is None:  # before trimming, so added context counts
                    messages, exact = await asyncio.get_running_loop().run_in_executor(None, prepare, messages)
                if tool_req is not None and answered is None:
                    plan = getattr(server.hooks, "plan_tool_call", None)
                    if plan is not None:
                        tool = await asyncio.get_running_loop().run_in_executor(None, plan, messages, tool_req)
                    if tool is None and tool_req.choice != "auto":
                        name = tool_req.choice if tool_req.choice in tool_req.tools else next(iter(tool_req.tools))
                        spec, convo = tool_req.tools[name], list(messages)
                        try:  # made now, so a schema the converter cannot follow is a 400, not a failed job
                            grammar = schema_grammar(spec)
                        except ToolRequestError as exc:
                            raise _bad(exc.param, str(exc)) from None
                        tool = lambda: ToolCall(name, schema_arguments(server.chat, convo, spec, grammar))  # noqa: E731
                    if tool is not None:
                        exact = None
                try:  # trim to the context window now, so "too long" is a 400 and not a broken stream
                    # (in a thread: tokenizing a long conversation would stall every other client)
                    messages = (await asyncio.get_running_loop().run_in_executor(
                        None, server.chat.fit, messages, sampling["max_tokens"]))[0]
                except InputError as exc:
                    raise _bad("messages", str(exc)) from None
                job = _Job(messages, sampling, asyncio.get_running_loop())
                job.exact = exact
                job.tool = tool
                server._admit(job)
            except _RequestError as err:
                return error_response(err)
            rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            if stream:
                return _EventStream(server._sse(job, rid, include_usage, envelope, usage), job, watch_disconnect)
            watcher = asyncio.ensure_future(watch_disconnect(request.receive, job))
            try:
                text, stats, calls = [], None, []
                while True:
                    kind, value = await job.events.get()
                    if kind == "piece":
                        text.append(value)
                    elif kind == "tool_call":
                        calls.append(value)
                    elif kind == "error":
                        return error_response(_RequestError(500, f"generation failed: {value}", kind="server_error"))
                    else:
                        stats = value
                        break
            finally:
                job.cancel.set()  # no-op once finished; stops the worker if we were cancelled
                watcher.cancel()
            reason = stats.finish_reason.value if stats and stats.finish_reason else FinishReason.CANCELLED.value
            message: Dict[str, Any] = {"role": "assistant", "content": "".join(text)}
            if calls:
                message = {"role": "assistant", "content": None, "tool_calls": [c.as_openai() for c in calls]}
            return JSONResponse({
                **envelope("chat.completion", rid),
                "choices": [{"index": 0, "message": message, "finish_reason": reason}],
                "usage": usage(stats),
                "stats": stats.as_dict() if stats else None,
            })

        async def models(request: Any) -> Any:
            try:
                check_auth(request)
            except _RequestError as err:
                return error_response(err)
            card = {"id": server.model_id, "object": "model", "created": server._created, "owned_by": "edge-runtime"}
            model_id = request.path_params.get("model_id")
            if model_id is None:
                return JSONResponse({"object": "list", "data": [card]})
            if model_id != server.model_id:
                return error_response(_RequestError(404, f"model {model_id!r} not found; this server has "
                                                         f"{server.model_id!r}", param="model", code="model_not_found"))
            return JSONResponse(card)

        async def health(request: Any) -> Any:
            with server._admit_lock:
                admitted = server._admitted
            return JSONResponse({"status": "ok", "model": server.model_id, "running": min(admitted, 1),
                                 "queued": max(admitted - 1, 0), "queue_depth": server.config.queue_depth})

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            loop = asyncio.get_running_loop()
            offload = _fixed_pool(OFFLOAD_THREADS)
            loop.set_default_executor(offload)
            server._start_worker()
            try:
                yield
            finally:
                server._cancel_all()
                await loop.run_in_executor(None, server._stop_worker)
                offload.shutdown(wait=True)

        async def metrics(request: Any) -> Any:
            text = await asyncio.get_running_loop().run_in_executor(None, server.hooks.metrics_text)
            return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

        async def tools(request: Any) -> Any:
            try:
                check_auth(request)
                name = request.path_params.get("name")
                if name is None:
                    listing = await asyncio.get_running_loop().run_in_executor(None, server.hooks.tool_definitions)
                    return JSONResponse({"object": "list", "data": listing})
                args = await read_json(request)
                try:
                    result = await asyncio.get_running_loop().run_in_executor(None, server.hooks.run_tool, name, args)
                except InputError as exc:
                    raise _bad("arguments", str(exc)) from None
                return JSONResponse(result)
            except _RequestError as err:
                return error_response(err)

        routes = [
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
        if getattr(self.hooks, "metrics_text", None) is not None:
            routes.append(Route("/metrics", metrics, methods=["GET"]))
        if getattr(self.hooks, "run_tool", None) is not None:
            routes += [Route("/v1/tools", tools, methods=["GET"]), Route("/v1/tools/{name}", tools, methods=["POST"])]
        routes += self.extra_routes
        return Starlette(routes=routes, lifespan=lifespan)

    async def _sse(self, job: _Job, rid: str, include_usage: bool, envelope: Any, usage: Any) -> AsyncIterator[bytes]:
        def event(payload: Any) -> bytes:
            # Compact separators, as the non-streaming JSON: small clients (RT-Thread's llmchat) scan the
            # raw bytes for '"content":"'.
            return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

        def chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> bytes:
            return event({**envelope("chat.completion.chunk", rid),
                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind, value = await job.events.get()
            if kind == "piece":
                yield chunk({"content": value})
            elif kind == "tool_call":
                yield chunk({"tool_calls": [value.as_openai(index=0)]})
            elif kind == "error":
                yield event(_RequestError(500, f"generation failed: {value}", kind="server_error").body())
                return
            else:
                break
        stats: Optional[GenerationStats] = value
        if stats is None or stats.finish_reason is FinishReason.CANCELLED:
            return  # the client is gone
        yield chunk({}, stats.finish_reason.value)
        if include_usage:
            yield event({**envelope("chat.completion.chunk", rid), "choices": [], "usage": usage(stats)})
        yield b"data: [DONE]\n\n"

    # ----------------------------------------------------------------------------------- lifecycle

    def _uvicorn_server(self) -> Any:
        try:
            import uvicorn
        except ImportError as exc:
            raise BackendUnavailableError(
                f"serve needs uvicorn: pip install 'edge-runtime[llm]' (import failed: {exc})") from exc
        # h11: the pure-Python parser, the same on every board; no access log on the SD card.
        config = uvicorn.Config(self.app, host=self.config.host, port=self.config.port, http="h11",
                                lifespan="on", log_level="warning", access_log=False, timeout_keep_alive=5,
                                timeout_graceful_shutdown=5)
        return uvicorn.Server(config)

    def serve(self) -> None:
        """Run in the foreground until Ctrl-C / SIGTERM."""
        self._uvicorn_server().run()

    def start(self, timeout_s: float = 10.0) -> Tuple[str, int]:
        """Run in a background thread; returns (host, port) once it accepts connections.

        Raises:
            ConfigError: the port cannot be bound.
            EdgeRuntimeError: the server did not come up within ``timeout_s``.
        """
        if self._thread is not None:
            raise EdgeRuntimeError("ChatServer.start: already running")
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"serve: cannot bind {self.config.host}:{self.config.port}: {exc}") from exc
        self._uvicorn = self._uvicorn_server()
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]},
                                        name="edge-chat-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise EdgeRuntimeError(f"ChatServer.start: server did not start within {timeout_s} s")
            time.sleep(0.01)
        host, port = sock.getsockname()[:2]
        return host, port

    def stop(self) -> None:
        """Stop a server started with :meth:`start` (cancels running and queued generations)."""
        if self._thread is None:
            return
        self._cancel_all()
        self._uvicorn.should_exit = True
        self._thread.join()
        self._thread = None


#: Threads that run the blocking parts of requests (prompt preparation, tools, database reads, JPEG
#: encoding) off the event loop. All are started with the server, so its thread count is constant.
OFFLOAD_THREADS = 4


def _fixed_pool(n_threads: int) -> concurrent.futures.ThreadPoolExecutor:
    """A thread pool with all ``n_threads`` workers started now.

    ``ThreadPoolExecutor`` starts a worker only when a task finds none idle, so a pool used by a long-running
    server grows whenever requests first overlap, hours into a run. Starting them all up front keeps the
    process's thread count fixed from start-up, which is what a soak watches for leaks.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="edge-offload")
    gate = threading.Barrier(n_threads)
    # Each task waits until all n are running at once, which forces the pool to start n workers.
    futures = [pool.submit(gate.wait, 10.0) for _ in range(n_threads)]
    concurrent.futures.wait(futures)
    return pool


class _EventStream:
    """An ASGI ``text/event-stream`` response that cancels its job when the client disconnects.

    Starlette's StreamingResponse notices a disconnect only through the ASGI server's spec version;
    this watches ``http.disconnect`` itself and sets the job's cancel event, so the worker stops within
    one token whatever server runs the app.
    """

    def __init__(self, chunks: AsyncIterator[bytes], job: _Job, watch: Any) -> None:
        self.chunks, self.job, self.watch = chunks, job, watch

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        watcher = asyncio.ensure_future(self.watch(receive, self.job))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if self.job.cancel.is_set():
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-send; the job is cancelled below
        finally:
            self.job.cancel.set()
            watcher.cancel()
            await self.chunks.aclose()  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ the CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edge-runtime serve``."""
    parser.add_argument("--model", help="GGUF chat model (default: the built-in SmolLM2-135M-Instruct asset)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (needed for a non-loopback host)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    parser.add_argument("--ctx", type=int, default=2048, help="context window in tokens (default 2048)")
    parser.add_argument("--queue-depth", type=int, default=4, help="requests that may wait (default 4)")
    parser.add_argument("--max-tokens-cap", type=int, default=512, help="upper bound on max_tokens (default 512)")
    parser.add_argument("--db", help="results database: answer questions about the counts from it, and offer "
                                     "its tools at /v1/tools")
    parser.add_argument("--tz", help="time zone for clock times in questions (default: this machine's)")
    parser.add_argument("--no-phrase", action="store_true", help="answer counts with the template sentence only")


def run_command(args: argparse.Namespace) -> int:
    """``edge-runtime serve``: load the model and serve until interrupted."""
    from .chat_cli import resolve_model

    config = ServerConfig(host=args.host, port=args.port, token=args.token, queue_depth=args.queue_depth,
                          max_tokens_cap=args.max_tokens_cap)  # checks host/token before loading anything
    store = hooks = None
    if args.db:
        from ..ask.cli import timezone
        from ..runtime.store import Store

        tz = timezone(args.tz)
        store = Store.open(args.db, readonly=True)
    chat = Chat(resolve_model(args.model), n_threads=args.threads, n_ctx=args.ctx)
    try:
        if store is not None:
            from ..ask.answer import Asker
            from ..ask.data import StoreView, catalog_from_store
            from ..ask.serving import AskService

            hooks = AskService(Asker(StoreView(store), catalog_from_store(store), chat=chat, tz=tz,
                                     phrase=not args.no_phrase))
        log.info("serving %s on http://%s:%d/v1", chat.model_name, config.host, config.port)
        ChatServer(chat, config, hooks=hooks).serve()
    finally:
        chat.close()
        if store is not None:
            store.close()
    return 0
