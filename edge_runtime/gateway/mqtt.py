"""Publish the results database to an MQTT broker, losing nothing while the broker is away.

:class:`MqttPublisher` runs on its own thread next to the pipeline and never touches a frame: the
pipeline writes events to SQLite (committed per frame), the publisher reads them after its **cursor** —
the id of the last event the broker acknowledged (events go at QoS >= 1: ``PUBACK``), kept in the database's ``meta``
table — and sends them in order. While the broker is down nothing is sent and nothing waits in memory:
events wait in SQLite. After a reconnect, or a restart after ``kill -9``, sending resumes after the
cursor, so every event arrives, in order; one that was in flight when the connection broke may arrive
twice, always with the same ``id``.

Also published: the latest reading of each node's sensor (edge-link; retained), availability (``online`` on connect, ``stopped`` on a clean stop, ``offline`` as the
last will; retained), cumulative totals per line x direction x class and zone occupancy (retained, after
every change), stats every ``stats_every_s``, and Home Assistant's device discovery (re-sent when
Home Assistant says ``online`` on ``<discovery_prefix>/status``). Commands: ``<prefix>/set`` (``pause`` /
``resume``) and ``<prefix>/ask`` -> ``<prefix>/answer`` (the grounded answer, the request's ``id``
echoed).

A refused connection (bad password, not authorised) is logged once with the broker's reason and
retried with backoff; the password itself is never logged.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Tuple

from ..errors import BackendUnavailableError, ConfigError
from .discovery import components, device_config
from .topics import Topics, default_device_id, slug

__all__ = ["MqttPublisher", "read_password", "CURSOR_KEY"]

log = logging.getLogger(__name__)

CURSOR_KEY = "mqtt_cursor"  # meta key: the last event id the broker acknowledged
ANNOUNCED_KEY = "mqtt_announced"  # meta key: component ids last announced to Home Assistant
_WINDOW = 64  # events in flight at most


def read_password(cfg: Any) -> Optional[str]:
    """The broker password from ``password_file`` or ``password_env`` (never from the config itself).

    Raises:
        ConfigError: the file cannot be read or the variable is not set.
    """
    if cfg.password_file:
        try:
            return Path(cfg.password_file).read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigError(f"config key 'mqtt.password_file': cannot read {cfg.password_file}: "
                              f"{exc.strerror}") from None
    if cfg.password_env:
        value = os.environ.get(cfg.password_env)
        if value is None:
            raise ConfigError(f"config key 'mqtt.password_env': environment variable {cfg.password_env} is not set")
        return value
    return None


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise BackendUnavailableError(f"MQTT needs paho-mqtt: pip install 'edge-runtime[mqtt]' ({exc})") from exc
    return mqtt


class MqttPublisher:
    """Publishes one results database (see the module docs).

    Args:
        cfg: the ``[mqtt]`` config section.
        store: the :class:`~edge_runtime.runtime.store.Store` the pipeline writes.
        places: {line/zone name: "line" | "zone"}.
        class_names: {class_id: name}.
        stats: returns the stats message (fps, frame_age_s, cpu_percent, rss_bytes, chat tokens/s).
        occupancy: returns {zone: {class_id: n}} now (None: no zones).
        on_command: called with "pause" / "resume".
        ask: answers a question (returns a dict with at least "answer").
        poll_s: how often new events are looked for.
    """

    def __init__(self, cfg: Any, store: Any, places: Mapping[str, str], class_names: Mapping[int, str], *,
                 stats: Optional[Callable[[], Dict[str, Any]]] = None,
                 occupancy: Optional[Callable[[], Dict[str, Dict[int, int]]]] = None,
                 on_command: Optional[Callable[[str], None]] = None,
                 ask: Optional[Callable[[str], Dict[str, Any]]] = None, poll_s: float = 0.2) -> None:
        mqtt = _import_paho()
        self.cfg, self.store = cfg, store
        self.places, self.class_names = dict(places), dict(class_names)
        self.device_id = slug(cfg.device_id) if cfg.device_id else default_device_id()
        self.topics = Topics(cfg.topic_prefix or f"edge-runtime/{self.device_id}")
        self._stats, self._occupancy, self._on_command, self._ask = stats, occupancy, on_command, ask
        self.poll_s = poll_s
        password = read_password(cfg)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id or
                                  f"edge-runtime-{self.device_id}", clean_session=True)
        if cfg.username:
            self.client.username_pw_set(cfg.username, password)
        if cfg.tls:
            for key in ("ca_file", "cert_file", "key_file"):
                path = getattr(cfg, key)
                if path and not Path(path).is_file():
                    raise ConfigError(f"config key 'mqtt.{key}': no such file {path}")
            self.client.tls_set(ca_certs=cfg.ca_file or None, certfile=cfg.cert_file or None,
                                keyfile=cfg.key_file or None, cert_reqs=ssl.CERT_REQUIRED)
        self.client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        # (event id, paho message info) in the order sent; acknowledged ones leave from the front.
        self._inflight: Deque[Tuple[int, Any]] = collections.deque()
        self._sent_upto = 0  # highest event id handed to the client this connection
        self.cursor = int(store.meta(CURSOR_KEY) or 0)
        self._totals_sent: Dict[str, int] = {}
        self._occ_sent: Dict[str, str] = {}
        self._thread: Optional[threading.Thread] = None
        #: Last connection failure ("not authorised", ...), for metrics and tests; None when connected.
        self.last_error: Optional[str] = None
        self.connects = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (retrying with backoff) and start publishing."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what the database holds (while connected, up to ``timeout_s``), say ``stopped``, disconnect."""
        deadline = time.monotonic() + timeout_s
        while self._connected.is_set() and time.monotonic() < deadline and self._pending():
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._connected.is_set():
            info = self.client.publish(self.topics.availability, "stopped", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def _pending(self) -> bool:
        self._advance_cursor()
        return bool(self.store.events_after(self.cursor, 1))

    # -- paho callbacks (paho's network thread) -------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            message = f"MQTT broker {self.cfg.host}:{self.cfg.port} refused the connection: {reason}"
            if message != self.last_error:
                log.error("%s; retrying with backoff", message)
            self.last_error = message
            return
        self.last_error = None
        self.connects += 1
        log.info("MQTT connected to %s:%d", self.cfg.host, self.cfg.port)
        with self._lock:
            self._inflight.clear()
            self._sent_upto = self.cursor  # resend whatever was not acknowledged
            self._totals_sent.clear()
            self._occ_sent.clear()
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        subs = [(self.topics.set, 1), (self.topics.ask, 1)]
        if self.cfg.discovery:
            subs.append((f"{self.cfg.discovery_prefix}/status", 1))
            self._announce()
        client.subscribe(subs)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if self._connected.is_set():
            log.warning("MQTT disconnected from %s:%d (%s); events wait in the database", self.cfg.host,
                        self.cfg.port, reason)
        self._connected.clear()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            payload = msg.payload.decode("utf-8", errors="replace").strip()
            if msg.topic == f"{self.cfg.discovery_prefix}/status":
                if payload == "online":
                    self._announce()
                    with self._lock:
                        self._totals_sent.clear()
                        self._occ_sent.clear()
                    self._wake.set()
            elif msg.topic == self.topics.set:
                if payload in ("pause", "resume") and self._on_command is not None:
                    self._on_command(payload)
                else:
                    log.warning("MQTT %s: expected 'pause' or 'resume', got %r", msg.topic, payload[:40])
            elif msg.topic == self.topics.ask:
                threading.Thread(target=self._answer, args=(payload,), daemon=True).start()
        except Exception:  # a bad message must not kill paho's network thread
            log.exception("MQTT: handling a message on %s failed", msg.topic)

    def _answer(self, payload: str) -> None:
        try:
            request = json.loads(payload)
            if not isinstance(request, dict) or not isinstance(request.get("question"), str):
                raise ValueError("expected {\"question\": str, \"id\": ...}")
        except ValueError as exc:
            self.client.publish(self.topics.answer, json.dumps({"error": f"bad request: {exc}"}), qos=1)
            return
        reply: Dict[str, Any] = {"id": request.get("id")}
        if self._ask is None:
            reply["error"] = "no question answerer configured"
        else:
            try:
                reply.update(self._ask(request["question"]))
            except Exception as exc:  # reported to the asker, never raised into paho
                reply["error"] = str(exc)
        self.client.publish(self.topics.answer, json.dumps(reply, ensure_ascii=False), qos=1)

    # -- publishing ---------------------------------------------------------------------------------
    def _announce(self) -> None:
        cmps = components(self.places, self.class_names.values(), self.topics, self.device_id)
        before = json.loads(self.store.meta(ANNOUNCED_KEY) or "[]")
        removed = [c for c in before if c not in cmps]
        topic, payload = device_config(self.device_id, self.topics, cmps, removed, self.cfg.discovery_prefix)
        self.client.publish(topic, json.dumps(payload), qos=1, retain=True)
        self.store.set_meta(ANNOUNCED_KEY, json.dumps(sorted(cmps)))

    def _run(self) -> None:
        next_stats = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            self._advance_cursor()
            if not self._connected.is_set():
                continue
            try:
                self._send_events()
                self._send_state()
                if self.cfg.stats_every_s > 0 and self._stats is not None and time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.cfg.stats_every_s
                    self.client.publish(self.topics.stats, json.dumps(self._stats()), qos=0)
            except Exception:  # keep publishing; the error is logged once per occurrence
                log.exception("MQTT publishing failed")

    def _advance_cursor(self) -> None:
        """Move the cursor over the acknowledged events at the front of the in-flight queue (events
        are sent in id order, so everything up to the cursor has been acknowledged) and save it."""
        moved = None
        with self._lock:
            while self._inflight:
                event_id, info = self._inflight[0]
                try:
                    done = info.is_published()
                except (RuntimeError, ValueError):  # the publish failed: resent after the next connect
                    break
                if not done:
                    break
                self._inflight.popleft()
                moved = self.cursor = event_id
        if moved is not None:
            try:
                self.store.set_meta(CURSOR_KEY, str(moved))
            except Exception:  # a full disk: saved again with the next acknowledgement
                log.warning("MQTT: could not save the publisher cursor", exc_info=True)

    def _send_events(self) -> None:
        with self._lock:
            room = _WINDOW - len(self._inflight)
            start = self._sent_upto
        if room <= 0:
            return
        for event_id, ev in self.store.events_after(start, room):
            message = {"id": event_id, "run": ev.run_id, "frame": ev.frame_index, "t": ev.timestamp_s,
                       "track": ev.track_id, "class": ev.class_name, "class_id": ev.class_id, "kind": ev.kind,
                       "place": ev.name, "direction": ev.direction}
            info = self.client.publish(self.topics.events, json.dumps(message), qos=max(1, self.cfg.qos))
            if info.rc != 0:  # not connected any more: start again after the cursor on reconnect
                return
            with self._lock:
                self._sent_upto = event_id
                self._inflight.append((event_id, info))

    def _send_state(self) -> None:
        for t in self.store.totals():
            topic = self.topics.total(t.name, t.direction, t.class_name)
            if self._totals_sent.get(topic) != t.count:
                self.client.publish(topic, str(t.count), qos=1, retain=True)
                self._totals_sent[topic] = t.count
        for name in self.store.sensor_names():
            reading = self.store.reading_at(name)
            if reading is None:
                continue
            node, value, _ = reading
            topic = self.topics.sensor(node, name)
            text = f"{value:g}"
            if self._occ_sent.get(topic) != text:
                self.client.publish(topic, text, qos=1, retain=True)
                self._occ_sent[topic] = text
        if self._occupancy is None:
            return
        for zone, per_class in self._occupancy().items():
            body = {"total": int(sum(per_class.values()))}
            body.update({self.class_names.get(c, str(c)): int(n) for c, n in per_class.items()})
            text = json.dumps(body, sort_keys=True)
            if self._occ_sent.get(zone) != text:
                self.client.publish(self.topics.occupancy(zone), text, qos=1, retain=True)
                self._occ_sent[zone] = text
