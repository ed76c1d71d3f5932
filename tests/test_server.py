"""The OpenAI-compatible server over the real SmolLM2 model: the official ``openai`` client (plain and
streaming), SSE framing, auth, limits, validation, the bounded queue, and cancellation on disconnect."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import openai
import pytest

from edge_runtime.errors import ConfigError
from edge_runtime.llm.chat import Chat
from edge_runtime.llm.server import ChatServer, ServerConfig, is_loopback

pytestmark = [pytest.mark.llm, pytest.mark.slow]


TOKEN = "test-token-123"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
DRAGON = [{"role": "user", "content": "Write a long story about a dragon."}]


@pytest.fixture(scope="module")
def chat():
    from edge_runtime.assets import ensure

    with Chat(ensure("smollm2-135m"), n_threads=1, n_ctx=512, temperature=0.0, max_tokens=24) as c:
        yield c


@pytest.fixture
def make_server(chat):
    started = []

    def make(**config):
        server = ChatServer(chat, ServerConfig(port=0, **config))
        host, port = server.start()
        started.append(server)
        return server, port

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def served(make_server):
    """A server with a token, a small max_tokens cap and room for one waiting request."""
    return make_server(token=TOKEN, queue_depth=1, max_tokens_cap=32)


def client(port, key=TOKEN):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=120)


def raw(port, method, path, body=None, headers=None, token=TOKEN):
    """One HTTP request with the stdlib client; returns (status, headers, parsed JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(payload) if payload else None
    finally:
        conn.close()


def open_stream(port, body):
    """Start a streaming completion; returns (connection, response) positioned at the first event."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True}).encode(),
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    return conn, resp


def next_event(resp):
    while True:
        line = resp.readline()
        assert line, "stream ended"
        if line.strip():
            assert line.startswith(b"data: "), line
            return line[len(b"data: "):].strip()


def wait_for(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ------------------------------------------------------------------------- the official client


def test_openai_client_non_streaming(served):
    server, port = served
    r = client(port).chat.completions.create(model=server.model_id, messages=FRANCE, temperature=0, max_tokens=24)
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.model == server.model_id and r.object == "chat.completion"
    assert r.usage.prompt_tokens == server.chat.count_tokens(FRANCE)
    assert 0 < r.usage.completion_tokens <= 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_client_streaming_with_usage(served):
    server, port = served
    chunks = list(client(port).chat.completions.create(
        model=server.model_id, messages=[{"role": "user", "content": "What is the capital of Japan?"}],
        temperature=0, max_tokens=24, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Tokyo" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == server.last_stats.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_models_endpoints(served):
    server, port = served
    c = client(port)
    assert [m.id for m in c.models.list()] == [server.model_id]
    assert c.models.retrieve(server.model_id).id == server.model_id
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("no-such-model")


def test_sse_framing_and_stop_strings(served):
    _, port = served
    conn, resp = open_stream(port, {"messages": FRANCE, "temperature": 0, "max_tokens": 24, "stop": ["Paris"]})
    try:
        assert resp.getheader("content-type").startswith("text/event-stream")
        events = []
        while True:
            event = next_event(resp)
            if event == b"[DONE]":
                break
            events.append(json.loads(event))
    finally:
        conn.close()
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text and "Paris" not in text
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


# ------------------------------------------------------------------------------- auth, limits


def test_bearer_token_is_required_on_v1_but_not_health(served):
    _, port = served
    with pytest.raises(openai.AuthenticationError):
        client(port, key="wrong").chat.completions.create(model="m", messages=FRANCE, max_tokens=4)
    status, headers, body = raw(port, "GET", "/v1/models", token=None)
    assert status == 401 and headers.get("www-authenticate") == "Bearer"
    assert body["error"]["code"] == "invalid_api_key"
    status, _, body = raw(port, "GET", "/health", token=None)
    assert status == 200 and body["status"] == "ok" and body["queue_depth"] == 1


def test_no_token_means_open_on_loopback(make_server):
    _, port = make_server()
    status, _, body = raw(port, "GET", "/v1/models", token=None)
    assert status == 200 and body["object"] == "list"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "board.local"])
def test_refuses_non_loopback_without_token(host):
    with pytest.raises(ConfigError, match="non-loopback"):
        ServerConfig(host=host)
    assert ServerConfig(host=host, token="t").token == "t"


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com", ""]))


def test_cli_serve_refuses_public_host_before_loading():
    # The model path does not exist: the refusal must come before any attempt to load it.
    done = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "serve", "--host", "0.0.0.0",
                           "--model", "/nonexistent.gguf"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "non-loopback" in done.stderr and "--token" in done.stderr


@pytest.mark.parametrize("field,value", [("port", 70000), ("queue_depth", -1), ("max_body_bytes", 10),
                                         ("max_tokens_cap", 0), ("token", ""), ("token", "a b")])
def test_bad_server_config(field, value):
    with pytest.raises(ConfigError, match="token" if field == "token" else field):
        ServerConfig(**{field: value})


def test_body_size_limit(make_server):
    _, port = make_server(max_body_bytes=2048)
    big = {"messages": [{"role": "user", "content": "x" * 4000}]}
    status, _, body = raw(port, "POST", "/v1/chat/completions", big)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    # Without Content-Length (chunked upload) the limit holds while reading.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", body=iter([json.dumps(big).encode()]),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        assert conn.getresponse().status == 413
    finally:
        conn.close()


def test_max_tokens_is_capped(served):
    server, port = served
    status, _, body = raw(port, "POST", "/v1/chat/completions",
                          {"messages": DRAGON, "max_tokens": 100000, "temperature": 0})
    assert status == 200
    assert body["usage"]["completion_tokens"] == server.config.max_tokens_cap
    assert body["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("body,param", [
    (b"{not json", "body"),
    (b"[" * 100000 + b"]" * 100000, "body"),  # nesting deep enough to exhaust the parser's recursion
    (b"\xff\xfe{}", "body"),
    ([1, 2], "body"),
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
    ({"messages": FRANCE + [{"role": "assistant", "content": "x"}]}, "messages[1].role"),
    ({"messages": FRANCE, "temperature": 3}, "temperature"),
    ({"messages": FRANCE, "temperature": "hot"}, "temperature"),
    ({"messages": FRANCE, "top_p": 0}, "top_p"),
    ({"messages": FRANCE, "max_tokens": 0}, "max_tokens"),
    ({"messages": FRANCE, "max_completion_tokens": "9"}, "max_completion_tokens"),
    ({"messages": FRANCE, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": FRANCE, "seed": -3}, "seed"),
    ({"messages": FRANCE, "n": 2}, "n"),
    ({"messages": FRANCE, "stream": "yes"}, "stream"),
    ({"messages": FRANCE, "tools": [{"type": "function"}]}, "tools[0]"),
    ({"messages": FRANCE, "tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
    ({"messages": FRANCE, "tool_choice": "required"}, "tool_choice"),
    ({"messages": FRANCE, "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"messages": [{"role": "user", "content": "word " * 3000}]}, "messages"),
])
def test_validation_errors_name_the_field(served, body, param):
    _, port = served
    status, _, reply = raw(port, "POST", "/v1/chat/completions", body)
    assert status == 400
    assert reply["error"]["param"] == param
    assert reply["error"]["type"] == "invalid_request_error" and reply["error"]["message"]


def test_text_parts_and_developer_role_are_accepted(served):
    """OpenAI's newer message forms mean the same as the plain ones: the same greedy answer, token for token."""
    _, port = served
    status, _, body = raw(port, "POST", "/v1/chat/completions", {
        "messages": [{"role": "developer", "content": "Answer briefly."},
                     {"role": "user", "content": [{"type": "text", "text": "What is the capital "},
                                                  {"type": "text", "text": "of France?"}]}],
        "temperature": 0, "max_tokens": 24})
    status_plain, _, plain = raw(port, "POST", "/v1/chat/completions", {
        "messages": [{"role": "system", "content": "Answer briefly."},
                     {"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0, "max_tokens": 24})
    assert status == status_plain == 200
    answer = body["choices"][0]["message"]["content"]
    assert answer and answer == plain["choices"][0]["message"]["content"]
    assert body["usage"] == plain["usage"]


# --------------------------------------------------------------------- queue and cancellation


def test_full_queue_answers_429_and_queued_requests_run_in_order(served):
    server, port = served  # queue_depth=1: one running + one waiting
    conn, resp = open_stream(port, {"messages": DRAGON, "temperature": 0, "max_tokens": 32})
    try:
        next_event(resp)  # role chunk
        next_event(resp)  # first token: generation is running
        waiting = {}
        t = threading.Thread(target=lambda: waiting.update(r=raw(
            port, "POST", "/v1/chat/completions", {"messages": FRANCE, "temperature": 0, "max_tokens": 24})))
        t.start()
        wait_for(lambda: raw(port, "GET", "/health")[2]["queued"] == 1)
        status, headers, body = raw(port, "POST", "/v1/chat/completions", {"messages": FRANCE})
        assert status == 429
        assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "queue_full"
        assert headers.get("retry-after") == "1"
        assert server.counters["rejected"] == 1
    finally:
        conn.close()  # the client leaves; its generation stops and the queued one runs
    t.join(timeout=120)
    status, _, body = waiting["r"]
    assert status == 200 and "Paris" in body["choices"][0]["message"]["content"]


def test_stream_disconnect_cancels_generation(make_server):
    server, port = make_server(token=TOKEN, max_tokens_cap=256)
    conn, resp = open_stream(port, {"messages": DRAGON, "temperature": 0, "max_tokens": 256})
    for _ in range(4):  # role chunk + 3 tokens
        next_event(resp)
    conn.close()
    wait_for(lambda: server.counters["cancelled"] == 1)
    stats = server.last_stats
    assert stats.finish_reason.value == "cancelled"
    assert 3 <= stats.completion_tokens <= 12  # stopped within a few tokens of the disconnect, not 256
    # The next request is served at once: it does not wait behind the abandoned generation.
    status, _, body = raw(port, "POST", "/v1/chat/completions", {"messages": FRANCE, "temperature": 0, "max_tokens": 24})
    assert status == 200 and "Paris" in body["choices"][0]["message"]["content"]
    assert body["stats"]["wait_s"] < 0.5
    assert server.counters == {"completed": 1, "cancelled": 1, "failed": 0, "rejected": 0}


def test_non_streaming_disconnect_cancels_generation(make_server):
    server, port = make_server(max_tokens_cap=256)
    body = json.dumps({"messages": DRAGON, "temperature": 0, "max_tokens": 256}).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    wait_for(lambda: server.current_stats is not None and server.current_stats.completion_tokens >= 3)
    sock.close()
    wait_for(lambda: server.counters["cancelled"] == 1)
    assert server.last_stats.finish_reason.value == "cancelled"
    assert server.last_stats.completion_tokens < 256


class _SlowMetrics:
    """Hooks whose metrics take long enough that concurrent scrapes overlap in the offload pool."""

    def __init__(self):
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def metrics_text(self):
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.3)
        with self._lock:
            self.running -= 1
        return "edge_test 1\n"


def test_thread_count_is_fixed_from_start_up(chat):
    """Overlapping requests hours into a run must not add threads: the offload pool starts all its
    workers with the server, so a soak that watches the thread count sees no growth."""
    hooks = _SlowMetrics()
    server = ChatServer(chat, ServerConfig(port=0), hooks=hooks)
    existing = set(threading.enumerate())  # other servers of this test run may have pools of their own
    _, port = server.start()
    try:
        raw(port, "GET", "/health", token=None)
        ours = [t for t in threading.enumerate() if t not in existing and t.name.startswith("edge-offload")]
        assert len(ours) == 4
        before = {t.name for t in threading.enumerate()}
        results = []
        scrapes = [threading.Thread(target=lambda: results.append(raw_text(port, "/metrics"))) for _ in range(8)]
        for t in scrapes:
            t.start()
        for t in scrapes:
            t.join(timeout=30)
        assert results == [(200, "edge_test 1\n")] * 8
        assert hooks.peak == 4  # the scrapes did overlap, up to the pool's size
        after = {t.name for t in threading.enumerate()}
        assert after == before
    finally:
        server.stop()
    for t in ours:  # the pool is shut down with the server
        t.join(timeout=10)
        assert not t.is_alive()


def raw_text(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()
