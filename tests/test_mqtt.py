"""MQTT against a real broker: each test starts its own mosquitto on a free loopback port and listens
with a real subscriber (paho-mqtt)."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_runtime.errors import ConfigError
from edge_runtime.runtime.config import MqttConfig, config_from_dict
from edge_runtime.runtime.store import Store

mqtt = pytest.importorskip("paho.mqtt.client", reason="the mqtt extra (paho-mqtt) is not installed")
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
if MOSQUITTO is None:  # make test installs it (make system-deps); in CI its absence is a failure
    if os.environ.get("CI"):
        pytest.fail("mosquitto is not installed: make system-deps should have installed it", pytrace=False)
    pytest.skip("mosquitto is not installed (make system-deps installs it)", allow_module_level=True)

PLACES = {"walkway": "line", "lawn": "zone"}
CLASSES = {0: "person"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto on a free loopback port; stop() / start() keep the port."""

    def __init__(self, tmp: Path, extra: str = "") -> None:
        self.port = _free_port()
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        # Run as this user (as root mosquitto would switch to 'mosquitto', which cannot read the test's files).
        user = f"user {getpass.getuser()}\n"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{extra or 'allow_anonymous true'}\npersistence false\n"
                             + user)
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.proc.stderr.read()[:500]!r}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Listener:
    """A subscriber that records every message (topic, payload, retained)."""

    def __init__(self, port: int, topics=("#",)) -> None:
        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{port}-{time.time_ns()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))

    def on(self, topic):
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def wait(self, predicate, timeout_s=15.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _cfg(port: int, **kw) -> MqttConfig:
    return MqttConfig(enabled=True, port=port, device_id="gate1", topic_prefix="edge/gate1", stats_every_s=0.2, **kw)


def _event(name, t, cid, direction, frame):
    return SimpleNamespace(name=name, timestamp_s=t, class_id=cid, direction=direction, frame_index=frame, track_id=7)


def _record(store, run, frame, n=1):
    evs = [_event("walkway", frame / 10, 0, "in" if (frame + k) % 2 else "out", frame) for k in range(n)]
    store.record_frame(run, frame, frame / 10, evs, occupancy={"lawn": {0: frame % 3}})


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "gw.db", checkpoint_every_s=0)
    yield s
    s.close()


def _publisher(cfg, store, **kw):
    from edge_runtime.gateway.mqtt import MqttPublisher

    return MqttPublisher(cfg, store, PLACES, CLASSES, stats=lambda: {"fps": 4.5, "frame_age_s": 0.2},
                         occupancy=lambda: {"lawn": {0: 2}}, poll_s=0.05, **kw)


def _event_ids(listener):
    return [json.loads(p)["id"] for p, _ in listener.on("edge/gate1/events")]


def test_discovery_availability_totals_events_stats(tmp_path, store):
    broker = Broker(tmp_path)
    listener = Listener(broker.port)
    run = store.begin_run(source="cam", class_names=CLASSES, places=PLACES)
    for f in range(5):
        _record(store, run, f)
    pub = _publisher(_cfg(broker.port), store)
    pub.start()
    try:
        assert listener.wait(lambda: len(_event_ids(listener)) == 5)
        assert _event_ids(listener) == [1, 2, 3, 4, 5]
        first = json.loads(listener.on("edge/gate1/events")[0][0])
        assert first["place"] == "walkway" and first["class"] == "person" and first["kind"] == "line"
        assert listener.on("edge/gate1/availability")[-1][0] == "online"
        disc = json.loads(listener.on("homeassistant/device/gate1/config")[-1][0])
        cmps = disc["cmps"]
        assert cmps["walkway_in_person"]["state_class"] == "total_increasing"
        assert cmps["walkway_in_person"]["unique_id"] == "gate1_walkway_in_person"
        assert cmps["lawn_occupancy"]["state_class"] == "measurement"
        assert cmps["fps"]["entity_category"] == "diagnostic"
        assert disc["avty_t"] == "edge/gate1/availability"
        assert listener.wait(lambda: listener.on("edge/gate1/walkway/in/person"))
        assert listener.wait(lambda: listener.on("edge/gate1/walkway/in/person")[-1][0] == "2")  # frames 1, 3
        assert listener.wait(lambda: listener.on("edge/gate1/stats"))
        assert json.loads(listener.on("edge/gate1/lawn/occupancy")[-1][0]) == {"total": 2, "person": 2}
        # More events while running: in order, after the first five.
        for f in range(5, 8):
            _record(store, run, f)
        assert listener.wait(lambda: _event_ids(listener) == list(range(1, 9)))
        assert listener.wait(lambda: int(store.meta("mqtt_cursor")) == 8)
        store.add_reading("pen-door", "door_open", 1.0)  # from an RT-Thread node over edge-link
        assert listener.wait(lambda: listener.on("edge/gate1/sensors/pen-door/door_open") == [("1", False)])
    finally:
        pub.stop()
    assert listener.wait(lambda: listener.on("edge/gate1/availability")[-1][0] == "stopped")
    # Retained: a new subscriber gets the totals and availability at once.
    late = Listener(broker.port)
    assert late.wait(lambda: late.on("edge/gate1/walkway/out/person") and late.on("edge/gate1/availability"))
    assert all(r for _, r in late.on("edge/gate1/walkway/out/person"))
    late.close()
    listener.close()
    broker.stop()


def test_broker_away_then_back_delivers_every_event_in_order(tmp_path, store):
    broker = Broker(tmp_path)
    run = store.begin_run(source="cam", class_names=CLASSES, places=PLACES)
    pub = _publisher(_cfg(broker.port), store)
    pub.start()
    listener = Listener(broker.port, topics=("edge/gate1/events",))
    try:
        for f in range(10):
            _record(store, run, f)
        assert listener.wait(lambda: len(set(_event_ids(listener))) == 10)
        listener.close()
        broker.stop()
        for f in range(10, 60):  # the broker is away: these wait in SQLite
            _record(store, run, f, n=2)
        time.sleep(0.5)
        broker.start()
        listener = Listener(broker.port, topics=("edge/gate1/events",))
        assert listener.wait(lambda: set(range(11, 111)) <= set(_event_ids(listener)), timeout_s=40)
        ids = _event_ids(listener)
        assert sorted(set(ids)) == [i for i in range(1, 111) if i >= min(ids)]  # nothing missing
        assert ids == sorted(ids)  # in order (a repeat, if any, carries the same id)
        assert set(range(11, 111)) <= set(ids)
    finally:
        pub.stop()
        listener.close()
        broker.stop()


_CHILD = textwrap.dedent("""
    import sys, time
    from types import SimpleNamespace
    from edge_runtime.runtime.config import MqttConfig
    from edge_runtime.runtime.store import Store
    from edge_runtime.gateway.mqtt import MqttPublisher
    port, db = int(sys.argv[1]), sys.argv[2]
    store = Store.open(db, checkpoint_every_s=0)
    cfg = MqttConfig(enabled=True, port=port, device_id="gate1", topic_prefix="edge/gate1", keepalive_s=5)
    pub = MqttPublisher(cfg, store, {"walkway": "line"}, {0: "person"}, poll_s=0.05)
    pub.start()
    print("started", flush=True)
    time.sleep(600)
""")


def test_kill_9_leaves_offline_and_a_restart_resumes_after_the_cursor(tmp_path):
    broker = Broker(tmp_path)
    db = tmp_path / "k.db"
    store = Store.open(db, checkpoint_every_s=0)
    run = store.begin_run(source="cam", class_names=CLASSES, places={"walkway": "line"})
    for f in range(20):
        _record(store, run, f)
    store.close()
    listener = Listener(broker.port)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(broker.port), str(db)], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline().strip() == b"started"
        assert listener.wait(lambda: len(set(_event_ids(listener))) == 20)
        assert listener.wait(lambda: listener.on("edge/gate1/availability")[-1][0] == "online")
        time.sleep(0.5)  # let the cursor reach the database
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        # The broker notices within 1.5 x keepalive and publishes the last will.
        assert listener.wait(lambda: listener.on("edge/gate1/availability")[-1][0] == "offline", timeout_s=20)
    finally:
        if child.poll() is None:
            child.kill()
    store = Store.open(db, checkpoint_every_s=0)
    cursor = int(store.meta("mqtt_cursor"))
    assert 1 <= cursor <= 20
    run = store.begin_run(source="cam", class_names=CLASSES, places={"walkway": "line"})
    for f in range(20, 25):
        _record(store, run, f)
    before = len(_event_ids(listener))
    pub = _publisher(_cfg(broker.port), store)
    pub.start()
    try:
        assert listener.wait(lambda: set(range(1, 26)) <= set(_event_ids(listener)))
        again = _event_ids(listener)[before:]
        assert again == list(range(cursor + 1, 26))  # resumed exactly after the cursor, in order
    finally:
        pub.stop()
        store.close()
        listener.close()
        broker.stop()


def test_bad_password_is_a_clear_error_and_retried(tmp_path, store, caplog):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "gate", "right-secret"], check=True,
                   capture_output=True)
    passwd.chmod(0o644)
    broker = Broker(tmp_path, extra=f"allow_anonymous false\npassword_file {passwd}")
    secret = tmp_path / "secret"
    secret.write_text("wrong-secret\n")
    pub = _publisher(_cfg(broker.port, username="gate", password_file=str(secret)), store)
    with caplog.at_level("ERROR", logger="edge_runtime.gateway.mqtt"):
        pub.start()
        deadline = time.monotonic() + 10
        while pub.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
    try:
        assert pub.last_error is not None and "refused" in pub.last_error
        assert "wrong-secret" not in caplog.text and "refused the connection" in caplog.text
        secret.write_text("right-secret\n")
        # The right password works (a fresh publisher reads the file again).
    finally:
        pub.stop(timeout_s=1)
    good = _publisher(_cfg(broker.port, username="gate", password_file=str(secret)), store)
    good.start()
    try:
        deadline = time.monotonic() + 10
        while good.connects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert good.connects >= 1 and good.last_error is None
    finally:
        good.stop()
        broker.stop()


def test_ask_over_mqtt_echoes_the_id_and_set_pauses(tmp_path, store):
    broker = Broker(tmp_path)
    commands = []
    pub = _publisher(_cfg(broker.port), store, on_command=commands.append,
                     ask=lambda q: {"answer": f"you asked: {q}"})
    pub.start()
    listener = Listener(broker.port, topics=("edge/gate1/answer",))
    try:
        time.sleep(0.5)
        listener.client.publish("edge/gate1/ask", json.dumps({"question": "how many?", "id": "abc-1"}), qos=1)
        listener.client.publish("edge/gate1/ask", "not json", qos=1)
        listener.client.publish("edge/gate1/set", "pause", qos=1)
        assert listener.wait(lambda: len(listener.on("edge/gate1/answer")) == 2)
        replies = [json.loads(p) for p, _ in listener.on("edge/gate1/answer")]
        assert {"id": "abc-1", "answer": "you asked: how many?"} in replies
        assert any("bad request" in r.get("error", "") for r in replies)
        assert listener.wait(lambda: commands == ["pause"])
    finally:
        pub.stop()
        listener.close()
        broker.stop()


def test_removed_line_is_removed_from_home_assistant(tmp_path, store):
    broker = Broker(tmp_path)
    listener = Listener(broker.port, topics=("homeassistant/device/#",))
    from edge_runtime.gateway.mqtt import MqttPublisher

    first = MqttPublisher(_cfg(broker.port), store, {"walkway": "line", "gate": "line"}, CLASSES, poll_s=0.05)
    first.start()
    assert listener.wait(lambda: listener.on("homeassistant/device/gate1/config"))
    first.stop()
    second = MqttPublisher(_cfg(broker.port), store, {"walkway": "line"}, CLASSES, poll_s=0.05)
    second.start()
    try:
        assert listener.wait(lambda: len(listener.on("homeassistant/device/gate1/config")) >= 2)
        cmps = json.loads(listener.on("homeassistant/device/gate1/config")[-1][0])["cmps"]
        assert cmps["gate_in_person"] == {"p": "sensor"}  # platform only: Home Assistant removes it
        assert "unique_id" in cmps["walkway_in_person"]
        # Home Assistant restarting (birth message) gets the discovery again.
        n = len(listener.on("homeassistant/device/gate1/config"))
        listener.client.publish("homeassistant/status", "online", qos=1)
        assert listener.wait(lambda: len(listener.on("homeassistant/device/gate1/config")) > n)
    finally:
        second.stop()
        listener.close()
        broker.stop()


def test_mqtt_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="mqtt.port"):
        config_from_dict({"mqtt": {"port": 0}})
    with pytest.raises(ConfigError, match="mqtt.qos"):
        config_from_dict({"mqtt": {"qos": 3}})
    from edge_runtime.gateway.mqtt import read_password

    with pytest.raises(ConfigError, match="mqtt.password_env.*EDGE_NO_SUCH_VAR"):
        read_password(MqttConfig(password_env="EDGE_NO_SUCH_VAR"))
    with pytest.raises(ConfigError, match="mqtt.password_file"):
        read_password(MqttConfig(password_file=str(tmp_path / "missing")))
    from edge_runtime.gateway.topics import Topics

    with pytest.raises(ConfigError, match="wildcards"):
        Topics("edge/#")


def test_edge_runtime_run_publishes_the_real_job(tmp_path):
    """The built-in detector on the first 120 frames of vtest.avi, [mqtt] enabled: every stored event
    reaches the broker, the retained totals equal the database's, and the run ends 'stopped'."""
    broker = Broker(tmp_path)
    listener = Listener(broker.port)
    db = tmp_path / "job.db"
    cfg = tmp_path / "job.toml"
    cfg.write_text(textwrap.dedent(f"""
        [source]
        uri = "builtin:vtest-video"
        [model]
        path = "builtin:yolov8s-person"
        classes = [0]
        labels = ["person", "fallen person"]
        [[lines]]
        name = "walkway"
        start = [400, 400]
        end = [400, 150]
        [[zones]]
        name = "lawn"
        polygon = [[0, 262], [330, 326], [768, 496], [768, 576], [0, 576]]
        [output]
        db = "{db}"
        max_frames = 120
        print_every_s = 0
        [mqtt]
        enabled = true
        port = {broker.port}
        device_id = "gate1"
        topic_prefix = "edge/gate1"
    """))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "-q", "run", str(cfg)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    store = Store.open(db, readonly=True)
    try:
        stored = [i for i, _ in store.events_after(0, 10_000)]
        totals = {(t.name, t.direction, t.class_name): t.count for t in store.totals()}
    finally:
        store.close()
    assert stored, "the first 120 frames hold crossings and zone entries"
    assert listener.wait(lambda: sorted(set(_event_ids(listener))) == stored)
    for (name, direction, cls), n in totals.items():
        topic = f"edge/gate1/{name}/{direction}/{cls.replace(' ', '_')}"
        assert listener.wait(lambda: listener.on(topic) and listener.on(topic)[-1][0] == str(n)), topic
    assert listener.on("edge/gate1/availability")[-1][0] == "stopped"
    listener.close()
    broker.stop()


def _make_tls(tmp: Path) -> dict:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca_key, ca, key, csr, crt = (tmp / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=edge-runtime test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = tmp / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(crt),
        "-days", "2", "-extfile", str(ext))
    for p in (ca, key, crt):
        p.chmod(0o644)
    return {"ca": ca, "key": key, "crt": crt}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make the test CA")
def test_tls_with_a_generated_ca(tmp_path, store):
    tls = _make_tls(tmp_path)
    broker = Broker(tmp_path, extra=f"allow_anonymous true\ncafile {tls['ca']}\ncertfile {tls['crt']}\n"
                                    f"keyfile {tls['key']}")
    run = store.begin_run(source="cam", class_names=CLASSES, places=PLACES)
    for f in range(3):
        _record(store, run, f)
    seen = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-listener")
    sub.tls_set(ca_certs=str(tls["ca"]))
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("edge/gate1/events", 1)
    sub.on_message = lambda c, u, m: seen.append(json.loads(m.payload)["id"])
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    pub = _publisher(_cfg(broker.port, tls=True, ca_file=str(tls["ca"])), store)
    pub.start()
    try:
        deadline = time.monotonic() + 15
        while sorted(set(seen)) != [1, 2, 3] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(set(seen)) == [1, 2, 3]
    finally:
        pub.stop()
        sub.loop_stop()
        broker.stop()
    with pytest.raises(ConfigError, match="mqtt.ca_file"):
        _publisher(_cfg(broker.port, tls=True, ca_file=str(tmp_path / "none.crt")), store)


def test_a_local_broker_bridged_to_a_central_one(tmp_path, store):
    """Many gateways, one broker each, bridged to a central broker: the standard mosquitto bridge."""
    central = Broker(tmp_path)
    local = Broker(tmp_path, extra=f"allow_anonymous true\nconnection central\naddress 127.0.0.1:{central.port}\n"
                                   f"topic edge/# out 1\ncleansession false\nrestart_timeout 1")
    listener = Listener(central.port, topics=("edge/#",))
    run = store.begin_run(source="cam", class_names=CLASSES, places=PLACES)
    for f in range(5):
        _record(store, run, f)
    pub = _publisher(_cfg(local.port), store)
    pub.start()
    try:
        assert listener.wait(lambda: sorted(set(_event_ids(listener))) == [1, 2, 3, 4, 5], timeout_s=20)
        assert listener.wait(lambda: listener.on("edge/gate1/availability"))
    finally:
        pub.stop()
        listener.close()
        local.stop()
        central.stop()


def test_kill_9_while_the_broker_is_down_loses_nothing(tmp_path):
    broker = Broker(tmp_path)
    db = tmp_path / "k2.db"
    store = Store.open(db, checkpoint_every_s=0)
    run = store.begin_run(source="cam", class_names=CLASSES, places={"walkway": "line"})
    for f in range(10):
        _record(store, run, f)
    listener = Listener(broker.port, topics=("edge/gate1/events",))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(broker.port), str(db)], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline().strip() == b"started"
        assert listener.wait(lambda: len(set(_event_ids(listener))) == 10)
        listener.close()
        broker.stop()
        for f in range(10, 40):  # recorded while the broker is away (the job writes, the publisher waits)
            _record(store, run, f)
        time.sleep(0.3)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    broker.start()
    listener = Listener(broker.port, topics=("edge/gate1/events",))
    pub = _publisher(_cfg(broker.port), store)
    pub.start()
    try:
        assert listener.wait(lambda: set(range(11, 41)) <= set(_event_ids(listener)), timeout_s=20)
        ids = _event_ids(listener)
        assert ids == sorted(ids) and min(ids) >= 1 and set(ids) <= set(range(1, 41))
    finally:
        pub.stop()
        store.close()
        listener.close()
        broker.stop()
