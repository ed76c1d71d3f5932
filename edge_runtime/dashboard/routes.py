"""The dashboard's HTTP endpoints: one small function each, registered in :data:`ENDPOINTS`.

Every endpoint takes the :class:`~edge_runtime.dashboard.app.Dashboard` and the request. Reads need
:meth:`Guard.authenticated`; writes need :meth:`Guard.write_problem` to be None (see
:mod:`edge_runtime.dashboard.auth`). The page (``GET /dashboard``) is sent with a strict
Content-Security-Policy: scripts, styles and images from this server only.
"""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Tuple
from urllib.parse import parse_qs

from ..errors import ConfigError, InputError
from .auth import COOKIE
from .history import chart_series, timeline
from .streams import StreamResponse, pause

__all__ = ["ENDPOINTS", "make_routes"]

_MAX_BODY = 64 * 1024
_SECURITY = {"content-security-policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                                        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                                        "form-action 'self'; base-uri 'none'",
             "x-frame-options": "DENY", "x-content-type-options": "nosniff",
             "referrer-policy": "same-origin"}  # not no-referrer: Chrome then sends "Origin: null" on form posts
_LOGIN_WAIT_S = 0.5  # after a wrong token: slows guessing


def _json(data: Any, status: int = 200) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(data, ensure_ascii=False, default=str), status_code=status,
                    media_type="application/json", headers={"cache-control": "no-store", **_SECURITY})


def _error(status: int, message: str) -> Any:
    return _json({"error": {"message": message}}, status)


def _read_denied(dash: Any, request: Any) -> Any:
    if dash.guard.authenticated(request):
        return None
    if not dash.guard.host_allowed(request):
        return _error(403, "this server answers to loopback host names only (it has no token)")
    return _error(401, "log in at /dashboard/login or send 'Authorization: Bearer TOKEN'")


def _write_denied(dash: Any, request: Any) -> Any:
    problem = dash.guard.write_problem(request)
    if problem is None:
        return None
    return _error(401 if problem == "not authenticated" else 403, problem)


async def _body(request: Any) -> bytes:
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > _MAX_BODY:
            raise InputError(f"request body over {_MAX_BODY} bytes")
    return data


async def _json_body(request: Any) -> Any:
    try:
        return json.loads(await _body(request) or b"null")
    except ValueError as exc:
        raise InputError(f"body: expected JSON ({exc})") from None


# ------------------------------------------------------------------------------------------ pages

async def root(dash: Any, request: Any) -> Any:
    from starlette.responses import RedirectResponse

    return RedirectResponse("/dashboard", status_code=307)


async def page(dash: Any, request: Any) -> Any:
    from starlette.responses import RedirectResponse, Response

    if not dash.guard.authenticated(request):
        if not dash.guard.host_allowed(request):
            return _read_denied(dash, request)
        return RedirectResponse("/dashboard/login", status_code=303)
    body, kind = dash.static["index.html"]
    text = body.decode().replace("{{CSRF}}", html.escape(dash.guard.csrf))
    return Response(text, media_type=kind, headers={"cache-control": "no-store", **_SECURITY})


def _login_page(dash: Any, message: str, status: int = 200) -> Any:
    from starlette.responses import Response

    body, kind = dash.static["login.html"]
    text = body.decode().replace("{{MESSAGE}}", html.escape(message))
    return Response(text, status_code=status, media_type=kind, headers={"cache-control": "no-store", **_SECURITY})


async def login_form(dash: Any, request: Any) -> Any:
    from starlette.responses import RedirectResponse

    if not dash.guard.login_required:
        return RedirectResponse("/dashboard", status_code=303)
    return _login_page(dash, "")


async def login(dash: Any, request: Any) -> Any:
    from starlette.responses import RedirectResponse

    if not dash.guard.same_origin(request):
        return _error(403, "cross-site request refused")
    if not dash.guard.login_required:
        return RedirectResponse("/dashboard", status_code=303)
    try:
        form = parse_qs((await _body(request)).decode("utf-8", "replace"), max_num_fields=4)
    except (InputError, ValueError):
        return _login_page(dash, "Malformed login request.", 400)
    token = (form.get("token") or [""])[0]
    if not dash.guard.token_matches(token):
        await asyncio.sleep(_LOGIN_WAIT_S)
        return _login_page(dash, "Wrong token.", 401)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(COOKIE, dash.guard.session_value(), max_age=30 * 86400, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


async def logout(dash: Any, request: Any) -> Any:
    from starlette.responses import RedirectResponse

    denied = _write_denied(dash, request)
    if denied is not None:
        return denied
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def static(dash: Any, request: Any) -> Any:
    from starlette.responses import Response

    found = dash.static.get(request.path_params["name"])  # a table lookup: no path is ever opened
    if found is None:
        return _error(404, "no such file")
    body, kind = found
    return Response(body, media_type=kind, headers={"cache-control": "no-cache", **_SECURITY})


# ------------------------------------------------------------------------------------- live data

async def live_mjpeg(dash: Any, request: Any) -> Any:
    denied = _read_denied(dash, request)
    if denied is not None:
        return denied
    live = dash.live
    loop = asyncio.get_running_loop()

    async def frames(gone: asyncio.Event) -> AsyncIterator[bytes]:
        live.add_viewer()
        try:
            last = 0
            while not gone.is_set():
                seq, data = await loop.run_in_executor(None, live.jpeg)
                if data and seq != last:
                    last = seq
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(data)).encode()
                           + b"\r\n\r\n" + data + b"\r\n")
                if await pause(gone, live.period_s / 3):  # a few looks per period: no kept frame is missed
                    break
        finally:
            live.remove_viewer()

    return StreamResponse(frames, "multipart/x-mixed-replace; boundary=frame")


async def live_stats(dash: Any, request: Any) -> Any:
    denied = _read_denied(dash, request)
    if denied is not None:
        return denied
    return _json({"viewers": dash.live.viewers, "frames_encoded": dash.live.frames_encoded,
                  "frame_size": dash.live.frame_size})


async def state(dash: Any, request: Any) -> Any:
    return _read_denied(dash, request) or _json(dash.state())


async def counts(dash: Any, request: Any) -> Any:
    return _read_denied(dash, request) or _json(dash.counts())


async def counts_stream(dash: Any, request: Any) -> Any:
    denied = _read_denied(dash, request)
    if denied is not None:
        return denied

    async def events(gone: asyncio.Event) -> AsyncIterator[bytes]:
        last, quiet = None, 0.0
        while not gone.is_set():
            now = dash.counts()
            if now != last:
                last, quiet = now, 0.0
                yield b"data: " + json.dumps(now, ensure_ascii=False).encode() + b"\n\n"
            elif quiet >= 15.0:
                quiet = 0.0
                yield b": keep-alive\n\n"
            if await pause(gone, 0.5):
                break
            quiet += 0.5

    return StreamResponse(events, "text/event-stream; charset=utf-8")


async def history(dash: Any, request: Any) -> Any:
    denied = _read_denied(dash, request)
    if denied is not None:
        return denied
    store = dash.store
    if store is None:
        return _error(404, "no results database (output.db is empty): charts need one")
    try:
        data = await asyncio.get_running_loop().run_in_executor(
            None, chart_series, store, request.query_params.get("range", "hour"),
            {c.name: ("zone" if hasattr(c, "polygon") else "line") for c in dash.pipeline.counters})
    except InputError as exc:
        return _error(400, str(exc))
    return _json(data)


async def events(dash: Any, request: Any) -> Any:
    denied = _read_denied(dash, request)
    if denied is not None:
        return denied
    if dash.store is None:
        return _error(404, "no results database (output.db is empty): the timeline needs one")
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        return _error(400, "limit: expected an integer")
    rows = await asyncio.get_running_loop().run_in_executor(None, timeline, dash.store, dash.snapshots, limit)
    return _json({"events": rows})


async def snapshot(dash: Any, request: Any) -> Any:
    from starlette.responses import Response

    denied = _read_denied(dash, request)
    if denied is not None:
        return denied
    path = dash.snapshots.path_for(request.path_params["name"]) if dash.snapshots is not None else None
    if path is None:
        return _error(404, "no such snapshot")
    return Response(path.read_bytes(), media_type="image/jpeg", headers={"cache-control": "max-age=3600"})


async def system(dash: Any, request: Any) -> Any:
    denied = _read_denied(dash, request)
    if denied is not None:
        return denied
    return _json(await asyncio.get_running_loop().run_in_executor(None, dash.status))


# ---------------------------------------------------------------------------------------- writes

async def places(dash: Any, request: Any) -> Any:
    denied = _write_denied(dash, request)
    if denied is not None:
        return denied
    try:
        edit = await _json_body(request)
        result = await asyncio.get_running_loop().run_in_executor(None, dash.apply_edit, edit)
    except (ConfigError, InputError) as exc:
        return _error(400, str(exc))
    return _json({"applied": result.as_dict(), "places": dash.state()["places"]})


class _Forward:
    """Passes a request, rewritten, to another ASGI app (the chat server's /v1/chat/completions)."""

    def __init__(self, app: Any, path: str, body: bytes, headers: List[Tuple[bytes, bytes]]) -> None:
        self.app, self.path, self.body, self.headers = app, path, body, headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        sent = False

        async def replay() -> Dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            return await receive()  # the client's disconnect reaches the chat server and cancels

        inner = {k: v for k, v in scope.items() if k not in ("route", "endpoint", "path_params", "router")}
        inner.update({"method": "POST", "path": self.path, "raw_path": self.path.encode(), "query_string": b"",
                      "headers": self.headers})
        await self.app(inner, replay, send)


async def chat(dash: Any, request: Any) -> Any:
    denied = _write_denied(dash, request)
    if denied is not None:
        return denied
    if dash.chat_app is None:
        return _error(503, "the chat server is not running")
    try:
        body = await _json_body(request)
    except InputError as exc:
        return _error(400, str(exc))
    question = body.get("question") if isinstance(body, dict) else None
    if not isinstance(question, str) or not question.strip() or len(question) > 2000:
        return _error(400, "question: expected a non-empty string of at most 2000 characters")
    payload = json.dumps({"messages": [{"role": "user", "content": question.strip()}], "stream": True,
                          "max_tokens": 200}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if dash.guard.token:
        headers.append((b"authorization", b"Bearer " + dash.guard.token.encode()))
    return _Forward(dash.chat_app, "/v1/chat/completions", payload, headers)


async def facts(dash: Any, request: Any) -> Any:
    denied = _read_denied(dash, request)
    if denied is not None:
        return denied
    entry = dash.answers.facts_for(request.query_params.get("q", ""))
    if entry is None:
        return _json({"grounded": False, "note": "this question was not answered from the counts; the model "
                                                 "answered it with the live totals as context"})
    return _json({"grounded": True, **entry})


Endpoint = Callable[[Any, Any], Awaitable[Any]]

#: (path, methods, endpoint): every dashboard route.
ENDPOINTS: List[Tuple[str, List[str], Endpoint]] = [
    ("/", ["GET"], root),
    ("/dashboard", ["GET"], page),
    ("/dashboard/login", ["GET"], login_form),
    ("/dashboard/login", ["POST"], login),
    ("/dashboard/logout", ["POST"], logout),
    ("/dashboard/static/{name:path}", ["GET"], static),
    ("/dashboard/live.mjpg", ["GET"], live_mjpeg),
    ("/dashboard/api/live", ["GET"], live_stats),
    ("/dashboard/api/state", ["GET"], state),
    ("/dashboard/api/counts", ["GET"], counts),
    ("/dashboard/api/counts/stream", ["GET"], counts_stream),
    ("/dashboard/api/history", ["GET"], history),
    ("/dashboard/api/events", ["GET"], events),
    ("/dashboard/snapshots/{name:path}", ["GET"], snapshot),
    ("/dashboard/api/system", ["GET"], system),
    ("/dashboard/api/places", ["POST"], places),
    ("/dashboard/api/chat", ["POST"], chat),
    ("/dashboard/api/facts", ["GET"], facts),
]


def make_routes(dash: Any) -> List[Any]:
    """Starlette routes for :data:`ENDPOINTS`, bound to ``dash``."""
    from starlette.routing import Route

    def bind(fn: Endpoint) -> Callable[[Any], Awaitable[Any]]:
        async def endpoint(request: Any) -> Any:
            return await fn(dash, request)
        endpoint.__name__ = fn.__name__
        return endpoint

    return [Route(path, bind(fn), methods=methods) for path, methods, fn in ENDPOINTS]
