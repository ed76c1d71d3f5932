"""The dashboard without a browser: auth, CSRF, path traversal, the editor (validation, saving, applying
without losing counts), live counts over SSE, the MJPEG stream stopping with its last viewer, thumbnails
under their cap, charts from the database.

The routes are served by a real uvicorn on a free loopback port (real HTTP: disconnects, raw paths),
around real counters, a real results database and real frames of the built-in video.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the llm extra (starlette, uvicorn) is not installed")

from edge_runtime.dashboard import Dashboard
from edge_runtime.dashboard.editor import parse_edit, place_tables, save_places
from edge_runtime.dashboard.history import chart_series
from edge_runtime.dashboard.snapshots import Snapshots, snapshot_name
from edge_runtime.errors import ConfigError
from edge_runtime.runtime.config import DashboardConfig, config_from_dict, load_config
from edge_runtime.runtime.pipeline import FrameResult, FrameTimings
from edge_runtime.runtime.store import Store
from edge_runtime.vision.counting import CountEvent, Direction, LineCounter, ZoneCounter
from edge_runtime.vision.detections import Detections
from edge_runtime.vision.sources_base import Frame

TOKEN = "s3cret-token"
CLASSES = {0: "person", 1: "fallen person"}

SITE = """# a site config, with comments the editor must keep
[source]
uri = "builtin:vtest-video"

[model]
path = "builtin:yolov8s-person"
classes = [0]

# the counting line
[[lines]]
name = "walkway"
start = [400, 400]
end = [400, 150]

[output]
db = ""

[chat]
enabled = true  # the dashboard needs the chat server

[dashboard]
enabled = true
mjpeg_fps = 20.0
"""


# ------------------------------------------------------------------------------------ fixtures

def _walk(x: float, track: int = 7, y: float = 300.0) -> Detections:
    """One confirmed person whose feet are at (x, y)."""
    return Detections(np.array([[x - 10, y - 80, x + 10, y]], np.float32), np.array([0.9], np.float32),
                      np.array([0], np.int32), np.array([track]))


def _pipeline(counters: List[Any], store: Any = None) -> Any:
    # The dashboard reads a pipeline's counters, lines, zones, store and source; these are the real
    # counters, and the properties are Pipeline's own definitions.
    ns = SimpleNamespace(counters=counters, store=store, source=SimpleNamespace(fps=10.0))
    return ns


class _Lines:
    """Pipeline.lines / zones over a SimpleNamespace pipeline (what sinks read)."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @property
    def lines(self) -> List[Any]:
        return [c for c in self.pipe.counters if isinstance(c, LineCounter)]

    @property
    def zones(self) -> List[Any]:
        return [c for c in self.pipe.counters if isinstance(c, ZoneCounter)]


def _dashboard(tmp_path: Path, token: Optional[str] = TOKEN, store: Any = None, **settings: Any) -> Dashboard:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    config = load_config(path)
    counter = LineCounter("walkway", (400, 400), (400, 150), return_s=0.0, nominal_fps=10.0)
    dash_settings = DashboardConfig(**{"enabled": True, "mjpeg_fps": 20.0, **settings})
    return Dashboard(dash_settings, pipeline=_pipeline([counter], store), config=config, config_path=path,
                     token=token, class_names=CLASSES, status=lambda: {"detection_fps": 3.0, "policy": "fair"})


class _Server:
    """A real uvicorn serving Starlette routes on a free loopback port."""

    def __init__(self, routes: List[Any]) -> None:
        import uvicorn
        from starlette.applications import Starlette

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(Starlette(routes=routes), http="h11", log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def request(self, method: str, path: str, *, body: Any = None, headers: Optional[Dict[str, str]] = None,
                host: Optional[str] = None) -> Tuple[int, Dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        hdrs = {"Host": host or f"127.0.0.1:{self.port}", **(headers or {})}
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)  # the raw path, unnormalised
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        conn.close()
        return out

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Tuple[Dashboard, _Server]]:
    dash = _dashboard(tmp_path)
    server = _Server(dash.routes())
    yield dash, server
    server.close()
    dash.close()


def _login(server: _Server) -> str:
    status, headers, _ = server.request("POST", "/dashboard/login", body=f"token={TOKEN}".encode(),
                                        headers={"Content-Type": "application/x-www-form-urlencoded",
                                                 "Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 303, status
    return headers["set-cookie"].split(";")[0]


# ------------------------------------------------------------------------------------------ auth

def test_without_a_session_the_page_redirects_to_login_and_the_api_answers_401(served) -> None:
    dash, server = served
    status, headers, _ = server.request("GET", "/dashboard")
    assert status == 303 and headers["location"] == "/dashboard/login"
    for path in ("/dashboard/api/state", "/dashboard/api/counts", "/dashboard/api/system", "/dashboard/live.mjpg",
                 "/dashboard/api/counts/stream", "/dashboard/api/facts?q=x"):
        assert server.request("GET", path)[0] == 401, path
    assert server.request("GET", "/dashboard/api/state", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert server.request("GET", "/dashboard/api/state", headers={"Cookie": "edge_dashboard=forged"})[0] == 401


def test_a_wrong_token_is_refused_and_the_right_one_sets_an_httponly_strict_cookie(served) -> None:
    dash, server = served
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    t0 = time.monotonic()
    status, headers, body = server.request("POST", "/dashboard/login", body=b"token=guess", headers=form)
    assert status == 401 and b"Wrong token." in body and "set-cookie" not in headers
    assert time.monotonic() - t0 >= 0.4  # a wrong token waits before the answer
    status, headers, _ = server.request("POST", "/dashboard/login", body=f"token={TOKEN}".encode(), headers=form)
    assert status == 303 and headers["location"] == "/dashboard"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie  # the cookie holds an HMAC of the token, not the token
    status, headers, body = server.request("GET", "/dashboard", headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and dash.guard.csrf.encode() in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert server.request("GET", "/dashboard/api/state", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_login_from_another_site_is_refused(served) -> None:
    dash, server = served
    status, headers, _ = server.request("POST", "/dashboard/login", body=f"token={TOKEN}".encode(),
                                        headers={"Content-Type": "application/x-www-form-urlencoded",
                                                 "Origin": "http://evil.example"})
    assert status == 403 and "set-cookie" not in headers


def test_without_a_token_only_loopback_host_names_are_served(tmp_path: Path) -> None:
    dash = _dashboard(tmp_path, token=None)
    server = _Server(dash.routes())
    try:
        assert server.request("GET", "/dashboard")[0] == 200
        assert server.request("GET", "/dashboard/api/state", host=f"localhost:{server.port}")[0] == 200
        # DNS rebinding: a page on evil.example resolving its name to 127.0.0.1 sends its own Host.
        assert server.request("GET", "/dashboard/api/state", host=f"evil.example:{server.port}")[0] == 403
        assert server.request("GET", "/dashboard", host="evil.example")[0] == 403
        # No token: writes still need this page's CSRF token (a cross-site form cannot send the header).
        assert server.request("POST", "/dashboard/api/places", body={"lines": []})[0] == 403
    finally:
        server.close()
        dash.close()


# ------------------------------------------------------------------------------------------ CSRF

def test_cookie_writes_need_the_csrf_header_and_this_origin(served) -> None:
    dash, server = served
    cookie = _login(server)
    edit = {"lines": place_tables(dash.config)["lines"]}
    origin = f"http://127.0.0.1:{server.port}"
    assert server.request("POST", "/dashboard/api/places", body=edit, headers={"Cookie": cookie})[0] == 403
    assert server.request("POST", "/dashboard/api/places", body=edit,
                          headers={"Cookie": cookie, "X-CSRF-Token": "guessed"})[0] == 403
    status, _, body = server.request("POST", "/dashboard/api/places", body=edit,
                                     headers={"Cookie": cookie, "X-CSRF-Token": dash.guard.csrf,
                                              "Origin": "http://evil.example"})
    assert status == 403 and b"cross-site" in body
    assert server.request("POST", "/dashboard/api/places", body=edit,
                          headers={"Cookie": cookie, "X-CSRF-Token": dash.guard.csrf,
                                   "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert server.request("POST", "/dashboard/api/places", body=edit,
                          headers={"Cookie": cookie, "X-CSRF-Token": dash.guard.csrf, "Origin": origin,
                                   "Sec-Fetch-Site": "same-origin"})[0] == 200
    # A client with the token in its header (not a browser) needs no CSRF token; without auth, nothing.
    assert server.request("POST", "/dashboard/api/places", body=edit,
                          headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert server.request("POST", "/dashboard/api/places", body=edit,
                          headers={"X-CSRF-Token": dash.guard.csrf})[0] == 401


# ------------------------------------------------------------------------------------- traversal

@pytest.mark.parametrize("path", [
    "/dashboard/static/../../pyproject.toml",
    "/dashboard/static/..%2f..%2fpyproject.toml",
    "/dashboard/static/%2e%2e/%2e%2e/edge_runtime/errors.py",
    "/dashboard/static/..%5c..%5cerrors.py",
    "/dashboard/static//etc/passwd",
    "/dashboard/static/%2fetc%2fpasswd",
    "/dashboard/static/../app.py",
    "/dashboard/static/./app.js/../../routes.py",
    "/dashboard/static/app.js%00.html",
    "/dashboard/snapshots/../../site.toml",
    "/dashboard/snapshots/..%2fsite.toml",
    "/dashboard/snapshots/%2e%2e%2fsite.toml",
])
def test_no_request_path_reads_outside_the_served_files(served, path: str) -> None:
    dash, server = served
    status, _, body = server.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 404, (path, status, body[:80])
    assert b"root:" not in body and b"[model]" not in body and b"import" not in body


def test_the_shipped_files_are_served(served) -> None:
    dash, server = served
    status, headers, body = server.request("GET", "/dashboard/static/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"EventSource" in body
    assert server.request("GET", "/dashboard/static/style.css")[0] == 200


def test_snapshot_names_must_be_ours(tmp_path: Path) -> None:
    snaps = Snapshots(tmp_path / "snaps", max_bytes=10**6)
    try:
        (tmp_path / "secret.jpg").write_bytes(b"x")
        for name in ("../secret.jpg", "/etc/passwd", "1-2-in-abc.jpg", "1-2-sideways-0123456789ab.jpg", "",
                     "1-2-in-0123456789ab.jpg/..", "1-2-in-0123456789ab.jpeg"):
            assert snaps.path_for(name) is None, name
        good = snapshot_name("walkway", 10, 3, "in")
        (snaps.directory / good).write_bytes(b"\xff\xd8")
        assert snaps.path_for(good) == snaps.directory / good
    finally:
        snaps.close()


# -------------------------------------------------------------------------------------- editor

def test_an_edit_is_validated_like_the_config_file(tmp_path: Path) -> None:
    raw = {"source": {"uri": "builtin:vtest-video"}, "lines": [{"name": "a", "start": [0, 0], "end": [10, 0]}]}
    cases = [
        ({"lines": [{"name": "a", "start": [0, 0], "end": "x"}]}, "config key 'lines[0].end': expected a pair"),
        ({"lines": [{"name": "a", "start": [0, 0], "end": [10, 0], "directon": "in"}]},
         "'lines[0].directon' is not known"),
        ({"lines": [{"name": "a", "start": [5, 5], "end": [5, 5]}]}, "start and end are the same point"),
        ({"lines": [{"name": "a", "start": [0, 0], "end": [1, 1]}, {"name": "a", "start": [0, 2], "end": [1, 3]}]},
         "is used twice"),
        ({"zones": [{"name": "z", "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}]}, "zones[0].polygon"),
        ({"zones": [{"name": "z", "polygon": [[0, 0], [10, 10]]}]}, "expected at least 3 points"),
        ({"lines": [{"name": "a", "start": [0, 0], "end": [1, 1], "hysteresis_frames": 0}]},
         "'lines[0].hysteresis_frames': expected a value in [1, 1000]"),
        ({"lines": [{"name": "a\nb", "start": [0, 0], "end": [1, 1]}]}, "'lines[0].name': expected at most 64"),
        ({"lines": "walkway"}, "config key 'lines': expected a list"),
        ({"lines": [], "source": {}}, "editor: expected"),
    ]
    for edit, message in cases:
        with pytest.raises(ConfigError, match=None) as info:
            parse_edit(raw, edit)
        assert message in str(info.value), (edit, str(info.value))
    new_raw, config = parse_edit(raw, {"lines": [{"name": "b", "start": [1, 2], "end": [3, 4], "classes": None}],
                                       "zones": [{"name": "z", "polygon": [[0, 0], [9, 0], [9, 9]]}]})
    assert [line.name for line in config.lines] == ["b"] and config.zones[0].name == "z"
    assert new_raw["source"] == raw["source"] and "classes" not in new_raw["lines"][0]


def test_saving_keeps_the_rest_of_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    from edge_runtime.runtime.config import read_config_file

    raw = read_config_file(path)
    new_raw, _ = parse_edit(raw, {"lines": [{"name": "walkway", "start": [400, 400], "end": [400, 150]},
                                            {"name": "door \"2\"", "start": [10.5, 20], "end": [30, 40],
                                             "classes": [0]}],
                                  "zones": [{"name": "plaza", "polygon": [[0, 0], [100, 0], [100, 50]]}]})
    save_places(path, new_raw)
    text = path.read_text()
    assert "# a site config, with comments the editor must keep" in text
    assert "enabled = true  # the dashboard needs the chat server" in text
    assert text.index("[[lines]]") < text.index("[output]")  # where the lines were, not at the end
    config = load_config(path)
    assert [(x.name, x.start, x.end, x.classes) for x in config.lines] == [
        ("walkway", (400.0, 400.0), (400.0, 150.0), None), ('door "2"', (10.5, 20.0), (30.0, 40.0), [0])]
    assert config.zones[0].polygon == [(0.0, 0.0), (100.0, 0.0), (100.0, 50.0)]
    assert config.dashboard.mjpeg_fps == 20.0 and config.chat.enabled


def test_inline_lines_are_not_rewritten_and_the_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "inline.toml"
    original = 'lines = [{name = "a", start = [0, 0], end = [10, 0]}]\n\n[output]\ndb = ""\n'
    path.write_text(original)
    from edge_runtime.runtime.config import read_config_file

    new_raw, _ = parse_edit(read_config_file(path), {"lines": [{"name": "b", "start": [0, 0], "end": [5, 5]}]})
    with pytest.raises(ConfigError, match=r"\[\[lines\]\]"):
        save_places(path, new_raw)
    assert path.read_text() == original
    assert [p.name for p in tmp_path.iterdir()] == ["inline.toml"]  # no temporary file left behind


def test_yaml_configs_are_saved_too(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML (the peers extra) is not installed")
    path = tmp_path / "site.yaml"
    path.write_text("output:\n  db: ''\nlines:\n- name: a\n  start: [0, 0]\n  end: [10, 0]\n")
    from edge_runtime.runtime.config import read_config_file

    new_raw, _ = parse_edit(read_config_file(path), {"lines": [{"name": "b", "start": [1, 1], "end": [5, 5]}]})
    save_places(path, new_raw)
    assert [x.name for x in load_config(path).lines] == ["b"] and load_config(path).output.db == ""


def test_an_edit_keeps_the_counts_and_tracks_of_unchanged_lines(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "r.db")
    try:
        run = store.begin_run(source="cam", class_names=CLASSES, places={"walkway": "line", "old": "line"})
        # "old" has stored totals from an earlier run: re-adding a line of that name continues them.
        store.record_frame(run, 0, 0.0, [CountEvent(0, 0.0, 1, 0, Direction.IN, "old")])
        dash = _dashboard(tmp_path, store=store)
        walkway = dash.pipeline.counters[0]
        # Track 7 walks right across x = 400 (in): counted; track 8 is half-way when the edit lands.
        for f, x in enumerate((300, 350, 380)):
            walkway.update(_walk(x, 8, 300), frame_index=f, timestamp_s=f / 10)
        for f, x in enumerate((300, 350, 450, 500), start=3):
            walkway.update(_walk(x, 7, 250), frame_index=f, timestamp_s=f / 10)
        assert walkway.in_counts == {0: 1}

        result = dash.apply_edit({"lines": [{"name": "walkway", "start": [400, 400], "end": [400, 150]},
                                            {"name": "old", "start": [100, 400], "end": [100, 100]}],
                                  "zones": [{"name": "plaza", "polygon": [[0, 0], [700, 0], [700, 500]]}]})
        assert result.kept == ["walkway"] and result.added == ["old", "plaza"] and result.removed == []
        assert dash.pipeline.counters[0] is walkway and walkway.in_counts == {0: 1}
        assert dash.pipeline.counters[1].in_counts == {0: 1}  # from the database
        # Track 8 finishes its crossing after the edit: the kept counter remembers its side.
        walkway.update(_walk(450, 8, 300), frame_index=7, timestamp_s=0.7)
        walkway.update(_walk(480, 8, 300), frame_index=8, timestamp_s=0.8)
        assert walkway.in_counts == {0: 2}
        assert [x.name for x in load_config(dash.config_path).lines] == ["walkway", "old"]
        assert json.loads(store.meta("places"))["plaza"] == "zone"

        # Moving the line is a change: a new counter that starts from the old totals.
        result = dash.apply_edit({"lines": [{"name": "walkway", "start": [420, 400], "end": [420, 150]}]})
        assert result.changed == ["walkway"] and set(result.removed) == {"old", "plaza"}
        moved = dash.pipeline.counters[0]
        assert moved is not walkway and moved.in_counts == {0: 2} and moved.start == (420.0, 400.0)

        # An invalid edit changes nothing: not the counters, not the file.
        before = dash.config_path.read_text()
        with pytest.raises(ConfigError, match="lines\\[0\\].start"):
            dash.apply_edit({"lines": [{"name": "walkway", "start": "here", "end": [1, 1]}]})
        assert dash.pipeline.counters == [moved] and dash.config_path.read_text() == before
        # A name the database knows as a line cannot come back as a zone (its totals would mix).
        with pytest.raises(ConfigError, match="was a line"):
            dash.apply_edit({"lines": [], "zones": [{"name": "old", "polygon": [[0, 0], [9, 0], [9, 9]]}]})
        assert dash.pipeline.counters == [moved] and dash.config_path.read_text() == before
        dash.close()
    finally:
        store.close()


def test_the_editor_refuses_to_save_for_the_built_in_job(tmp_path: Path) -> None:
    dash = _dashboard(tmp_path)
    dash.config_path = None
    try:
        with pytest.raises(ConfigError, match="built-in config"):
            dash.apply_edit({"lines": []})
        assert dash.state()["editor"] is False
    finally:
        dash.close()


# --------------------------------------------------------------------------------- live counts

def _sse_events(server: _Server, path: str, count: int, headers: Dict[str, str],
                during: Any = None) -> List[Dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    events: List[Dict[str, Any]] = []
    buffer = b""
    while len(events) < count:
        buffer += resp.readline()
        if buffer.endswith(b"\n\n"):
            if buffer.startswith(b"data: "):
                events.append(json.loads(buffer[6:]))
                if during is not None and len(events) == 1:
                    during()
            buffer = b""
    conn.close()
    return events


def test_counts_are_pushed_over_sse_when_they_change(served) -> None:
    dash, server = served
    walkway = dash.pipeline.counters[0]

    def cross() -> None:
        for f, x in enumerate((300, 350, 450, 500)):
            walkway.update(_walk(x), frame_index=f, timestamp_s=f / 10)

    first, second = _sse_events(server, "/dashboard/api/counts/stream", 2,
                                {"Authorization": f"Bearer {TOKEN}"}, during=cross)
    assert first["lines"][0]["name"] == "walkway" and first["lines"][0]["in_total"] == 0
    assert second["lines"][0]["in_total"] == 1 and second["lines"][0]["in"] == {"person": 1}


# ---------------------------------------------------------------------------------------- MJPEG

def _frames(n: int) -> List[Any]:
    from edge_runtime.assets import ensure
    from edge_runtime.vision.sources import open_source

    out = []
    with open_source(str(ensure("vtest-video"))) as source:
        for frame in source:
            out.append(frame)
            if len(out) == n:
                break
    return out


def _feed(dash: Dashboard, frames: List[Any], stop: threading.Event) -> threading.Thread:
    pipe = _Lines(dash.pipeline)

    def run() -> None:
        i = 0
        while not stop.is_set():
            frame = frames[i % len(frames)]
            result = FrameResult(frame, _walk(300 + i % 200), [], True, FrameTimings())
            for sink in dash.sinks():
                sink.write(result, pipe)
            i += 1
            time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _read_parts(resp: Any, n: int) -> List[bytes]:
    parts = []
    while len(parts) < n:
        line = resp.readline()
        if line.lower().startswith(b"content-length:"):
            size = int(line.split(b":")[1])
            resp.readline()
            parts.append(resp.read(size))
    return parts


def test_mjpeg_sends_annotated_frames_and_stops_encoding_when_the_viewer_leaves(served) -> None:
    import cv2

    dash, server = served
    live = dash.live
    stop = threading.Event()
    feeder = _feed(dash, _frames(5), stop)
    try:
        time.sleep(0.3)
        assert live.frames_encoded == 0 and live._latest is None  # nobody watches: nothing kept or encoded
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/dashboard/live.mjpg", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        assert resp.status == 200 and "multipart/x-mixed-replace" in resp.getheader("content-type")
        parts = _read_parts(resp, 3)
        image = cv2.imdecode(np.frombuffer(parts[-1], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (480, 640, 3)  # 768x576 scaled to live_width 640
        assert len(set(parts)) == 3 and live.viewers == 1
        conn.close()  # the viewer leaves
        deadline = time.monotonic() + 5
        while live.viewers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.viewers == 0
        encoded = live.frames_encoded
        time.sleep(0.6)  # frames keep arriving at ~100/s; at 20 fps, 12 would be encoded if it went on
        assert live.frames_encoded == encoded and live._latest is None
    finally:
        stop.set()
        feeder.join(5)


def test_the_line_arrow_points_to_the_in_side() -> None:
    from edge_runtime.vision.draw import annotate

    image = np.zeros((200, 200, 3), np.uint8)
    up = annotate(image, Detections.empty(with_track_id=True), CLASSES,
                  lines=[LineCounter("v", (100, 180), (100, 20))])  # drawn upwards: "in" is walking right
    right, left = up[95:106, 104:130].sum(), up[95:106, 70:96].sum()
    assert right > 3 * left, (right, left)


# ------------------------------------------------------------------------------------ snapshots

def test_event_thumbnails_are_written_and_kept_under_the_cap(tmp_path: Path) -> None:
    frames = _frames(3)
    snaps = Snapshots(tmp_path / "snaps", max_bytes=20_000, width=160)
    pipe = SimpleNamespace(lines=[], zones=[])
    try:
        for i in range(40):
            frame = Frame(frames[i % 3].image, i, i / 10)
            event = CountEvent(i, i / 10, 5, 0, Direction.OUT, "walkway")
            snaps.write(FrameResult(frame, _walk(400, 5), [event], True, FrameTimings()), pipe)
            time.sleep(0.005)
        snaps.close()
        files = sorted(snaps.directory.iterdir(), key=lambda p: p.stat().st_mtime)
        assert snaps.written + snaps.skipped == 40 and snaps.written >= 10
        assert 0 < sum(p.stat().st_size for p in files) <= 20_000 == snaps.max_bytes
        assert len(files) < snaps.written  # the oldest were deleted
        newest = snapshot_name("walkway", 39, 5, "out")
        assert snaps.path_for(newest) is not None or snaps.skipped
        import cv2

        thumb = cv2.imread(str(files[-1]))
        assert thumb is not None and thumb.shape[1] <= 160
    finally:
        snaps.close()


# --------------------------------------------------------------------------------------- charts

def test_charts_bin_the_stored_counts_and_end_at_the_latest_frame(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "c.db", interval_s=10.0, checkpoint_every_s=0)
    try:
        run = store.begin_run(source="cam", class_names=CLASSES, places={"walkway": "line", "plaza": "zone"})
        base = 1_800_000_000.0  # Unix time: a live camera
        events = [(base + 5, "in"), (base + 65, "in"), (base + 70, "out"), (base + 3000, "in")]
        for i, (t, d) in enumerate(events):
            store.record_frame(run, i, t, [CountEvent(i, t, i, 0, Direction(d), "walkway")])
        store.record_frame(run, 10, base + 3599)
        store.add_outage(run, base - 100, base + 20, "stream lost", 2)  # began before the hour's first bin
        store.add_outage(run, base + 1000, base + 1300, "read timed out after 5.0 s", 1)
        data = chart_series(store, "hour", store.places())
        series = {(s["name"], s["direction"]): s for s in data["series"]}
        assert data["clock"] == "unix" and data["bin_s"] == 60 and data["now_s"] == base + 3599
        assert data["end_s"] > data["now_s"] >= data["end_s"] - 60  # the live edge is in the last bin
        ins = series[("walkway", "in")]["values"]
        assert len(ins) == 60 and sum(ins) == 3 and series[("walkway", "out")]["total"] == 1
        assert series[("plaza", "enter")]["total"] == 0  # a zone without events is still charted
        assert ins[int((base + 3000 - data["start_s"]) // 60)] == 1
        # The outages of the range come with it (whole), and the seconds of the range they cover (clipped).
        assert [(o["start_s"], o["reason"]) for o in data["outages"]] == [(base - 100, "stream lost"),
                                                                          (base + 1000, "read timed out after 5.0 s")]
        assert data["start_s"] == base and data["outage_s"] == 20 + 300
        assert chart_series(store, "day", store.places())["outage_s"] == 120 + 300
        day = {(s["name"], s["direction"]): s for s in chart_series(store, "day", store.places())["series"]}
        assert day[("walkway", "in")]["total"] == 3 and len(day[("walkway", "in")]["values"]) == 96
        with pytest.raises(Exception, match="range"):
            chart_series(store, "year", store.places())
    finally:
        store.close()


# --------------------------------------------------------------------------------------- config

def test_the_dashboard_section_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"'dashboard.enabled'.*chat.enabled = true"):
        config_from_dict({"dashboard": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"'dashboard.mjpeg_fps': expected a value in \[0.2, 30.0\], got 100"):
        config_from_dict({"dashboard": {"mjpeg_fps": 100}})
    with pytest.raises(ConfigError, match=r"'dashboard.snapshot_dri' is not known; did you mean 'snapshot_dir'"):
        config_from_dict({"dashboard": {"snapshot_dri": "x"}})
    config = config_from_dict({"chat": {"enabled": True}, "dashboard": {"enabled": True, "jpeg_quality": 50}})
    assert config.dashboard.jpeg_quality == 50


def test_state_counts_and_facts_endpoints(served) -> None:
    dash, server = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = server.request("GET", "/dashboard/api/state", headers=auth)
    state = json.loads(body)
    assert state["places"]["lines"][0]["name"] == "walkway" and state["editor"] is True and state["login"] is True
    status, _, body = server.request("GET", "/dashboard/api/system", headers=auth)
    assert json.loads(body)["policy"] == "fair"
    _, _, body = server.request("GET", "/dashboard/api/facts?q=hello", headers=auth)
    assert json.loads(body)["grounded"] is False

    from edge_runtime.ask.answer import Answer

    dash.answers.record("How many?", Answer("3 people crossed", "template"))
    _, _, body = server.request("GET", "/dashboard/api/facts?q=How%20many%3F", headers=auth)
    entry = json.loads(body)
    assert entry["grounded"] is True and entry["answer"] == "3 people crossed"
    # No results database: charts and timeline say so instead of failing.
    assert server.request("GET", "/dashboard/api/history?range=hour", headers=auth)[0] == 404


def test_the_live_view_keeps_its_rate_when_frames_arrive_between_due_times() -> None:
    from edge_runtime.dashboard.live import LiveView

    frame = _frames(1)[0]
    live = LiveView(CLASSES, fps=5.0)
    pipe = SimpleNamespace(lines=[], zones=[])
    live.add_viewer()
    result = FrameResult(frame, _walk(300), [], True, FrameTimings())
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:  # frames at 8 fps: 0.125 s apart, between the 0.2 s due times
        live.write(result, pipe)
        time.sleep(0.125)
    kept = live._seq
    assert 9 <= kept <= 12, kept  # 5 fps over 2 s (+1 for the first frame), not one per 0.25 s (8)
    live.remove_viewer()
    for _ in range(5):
        live.write(result, pipe)
    assert live._seq == kept and live._latest is None  # no viewer: nothing kept
