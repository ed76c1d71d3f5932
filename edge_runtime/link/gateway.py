"""The gateway's side of edge-link: answers a node's hello, pings, count queries and questions.

Replies are sent from a worker thread (a reply waits for its ACK, which the link's reader thread
delivers). Count queries are answered exactly from the results database; questions by the grounded
:class:`~edge_runtime.ask.answer.Asker`, in as many ``ANSWER`` chunks as the text needs.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Dict, Optional

from .. import __version__
from .endpoint import Link, LinkTimeout
from .protocol import MAX_PAYLOAD, Packet, Type, fields, join_fields

__all__ = ["GatewaySession"]

log = logging.getLogger(__name__)


class GatewaySession:
    """Serves one node on one port.

    Args:
        port: the byte stream to the node.
        asker: answers questions and supplies the data view and catalogue for count queries.
        on_sensor: called with (node id, name, value) for each sensor reading.
    """

    def __init__(self, port: Any, asker: Any, *, on_sensor: Any = None, on_frame: Any = None,
                 gone_after_s: float = 15.0, name: str = "") -> None:
        self.asker = asker
        self.on_sensor = on_sensor
        self.name = name
        self.gone_after_s = gone_after_s
        self.node: Optional[Dict[str, str]] = None
        #: True while the node is heard from; False once it has been silent for ``gone_after_s``.
        self.present = False
        self.logs: list = []
        self._jobs: "queue.Queue[Optional[Packet]]" = queue.Queue()
        self.link = Link(port, self._jobs.put, on_frame=on_frame)
        self._worker = threading.Thread(target=self._work, name="edge-link-gateway", daemon=True)
        self._closed = threading.Event()
        self._events_on = threading.Event()
        self._event_cursor = 0

    def start(self) -> "GatewaySession":
        self._worker.start()
        self.link.start()
        threading.Thread(target=self._watch, name="edge-link-watch", daemon=True).start()
        return self

    def _watch(self) -> None:
        """Report a node that went silent (it pings every few seconds), once; HELLO welcomes it back."""
        import time

        while not self._closed.wait(1.0):
            silent = time.monotonic() - self.link.last_heard if self.link.last_heard else None
            if self.present and silent is not None and silent > self.gone_after_s:
                self.present = False
                log.warning("edge-link %s: node %s silent for %.0f s: gone", self.name or "", (self.node or {}).get(
                    "id", "?"), silent)

    def close(self) -> None:
        self._closed.set()
        self._jobs.put(None)
        self.link.close()
        self._worker.join(2.0)

    def _work(self) -> None:
        while True:
            packet = self._jobs.get()
            if packet is None:
                return
            try:
                self._handle(packet)
            except LinkTimeout as exc:
                log.warning("edge-link: node %s did not acknowledge: %s",
                            (self.node or {}).get("id", "?"), exc)
            except Exception:
                log.exception("edge-link: handling %s failed", packet.name)

    def _handle(self, packet: Packet) -> None:
        f = fields(packet.payload)
        if packet.type != Type.HELLO and not self.present and self.node is not None:
            self.present = True
            log.info("edge-link %s: node %s is back", self.name, self.node["id"])
        if packet.type == Type.HELLO:
            was = self.node
            self.present = True
            self.node = {"id": f[0], "firmware": f[1] if len(f) > 1 else "", "caps": f[2] if len(f) > 2 else "0"}
            log.info("edge-link: node %s %s (firmware %s)", f[0], "is back" if was else "joined", self.node["firmware"])
            self.link.send(Type.WELCOME, join_fields([__version__, MAX_PAYLOAD]))
        elif packet.type == Type.PING:
            self.link.send(Type.PONG, packet.payload)
        elif packet.type == Type.COUNTS_Q:
            self.link.send(Type.COUNTS, self._counts(f))
        elif packet.type == Type.ASK:
            request, question = (f[0], "\x1f".join(f[1:])) if len(f) > 1 else ("", f[0])
            result = self.asker.ask(question) if question.strip() else None
            text = result.text if result is not None and result.text else self.asker.help_text()
            self.link.send_long(Type.ANSWER, join_fields([request, ""]), text.encode("utf-8"))
        elif packet.type == Type.SUBSCRIBE:
            self._subscribe(f[0] == "1")
        elif packet.type == Type.SENSOR and len(f) >= 2:
            if self.on_sensor is not None:
                self.on_sensor((self.node or {}).get("id", "?"), f[0], float(f[1]))
        elif packet.type == Type.LOG:
            self.logs.append((f[0], "\x1f".join(f[1:])))
            log.info("edge-link: node %s: %s", (self.node or {}).get("id", "?"), "\x1f".join(f[1:]))

    def _subscribe(self, on: bool) -> None:
        """Event notifications from the results database: every event recorded from now on."""
        store = getattr(self.asker.view, "store", None)
        if not on or store is None:
            self._events_on.clear()
            return
        if not self._events_on.is_set():
            last = store.events_after(0, 1_000_000)
            self._event_cursor = last[-1][0] if last else 0
            self._events_on.set()
            threading.Thread(target=self._forward_events, args=(store,), name="edge-link-events", daemon=True).start()

    def _forward_events(self, store: Any) -> None:
        while self._events_on.is_set() and not self._closed.wait(0.2):
            for event_id, ev in store.events_after(self._event_cursor, 20):
                try:
                    self.link.send(Type.EVENT, join_fields([event_id, ev.name, ev.direction, ev.class_name]))
                except LinkTimeout:
                    return  # the node is gone; it subscribes again after its next hello
                self._event_cursor = event_id

    def _counts(self, f: list) -> bytes:
        request = f[0] if f else ""
        if len(f) < 3:
            return join_fields([request, "ERR", "expected request id, name, window seconds"])
        name, window = f[1], f[2]
        catalog = self.asker.catalog
        if name not in catalog.places:
            return join_fields([request, "ERR", f"no line or zone {name!r}"[:120]])
        try:
            seconds = float(window)
        except ValueError:
            return join_fields([request, "ERR", f"bad window {window!r}"[:120]])
        view = self.asker.view
        now = view.now_s()
        since = None if seconds <= 0 or now is None else now - seconds
        counts = view.event_counts(since, now, ((name,), None, ()))
        ins = sum(n for (_, _, d), n in counts.items() if d in ("in", "enter"))
        outs = sum(n for (_, _, d), n in counts.items() if d in ("out", "exit"))
        occupancy: object = "-"
        if catalog.kind(name) == "zone":
            occupancy = sum(view.occupancy((name,)).get(name, {}).values())
        return join_fields([request, name, ins, outs, occupancy])
