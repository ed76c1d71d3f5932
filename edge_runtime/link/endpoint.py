"""Reliable messages over an edge-link byte stream: ACKs, retransmission, duplicate suppression, chunking.

:class:`Link` owns one port (a ``serial.Serial`` from pyserial, a pty, a socket wrapper: anything with
``read(n)`` honouring a timeout and ``write(bytes)``). A reader thread decodes frames and hands each new
message to ``on_message(packet)``; :meth:`Link.send` sends one packet and, when it asks for an ACK, waits
for it, retransmitting every ``retry_ms`` up to ``retries`` times.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ..errors import EdgeRuntimeError
from .protocol import MAX_PAYLOAD, Flag, FrameReader, Packet, Type, encode_frame

__all__ = ["Link", "LinkTimeout", "chunks"]

log = logging.getLogger(__name__)

RETRY_MS = 250
RETRIES = 5
_NO_ACK = {Type.PING, Type.PONG, Type.LOG}


class LinkTimeout(EdgeRuntimeError, TimeoutError):
    """A packet was not acknowledged after every retransmission."""


def chunks(data: bytes, size: int = MAX_PAYLOAD) -> List[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


class Link:
    """One end of an edge-link (see the module docs).

    Args:
        port: the byte stream.
        on_message: called on the reader thread with every new (non-duplicate, non-ACK) packet.
        retry_ms, retries: retransmission schedule.
        on_frame: called with ("rx" | "tx", packet) for every packet, ACKs included (``link monitor``).
    """

    def __init__(self, port: Any, on_message: Callable[[Packet], None], *, retry_ms: int = RETRY_MS,
                 retries: int = RETRIES, on_frame: Optional[Callable[[str, Packet], None]] = None) -> None:
        self.port = port
        self.on_message = on_message
        self.on_frame = on_frame
        self.retry_s = retry_ms / 1000.0
        self.retries = retries
        self.reader = FrameReader()
        self._seq = 0
        self._send_lock = threading.Lock()  # one unacknowledged packet at a time
        self._write_lock = threading.Lock()
        self._acked = threading.Condition()
        self._ack_for: Optional[tuple] = None  # (type, seq) acknowledged last
        self._last_rx_seq: Dict[int, int] = {}  # type -> last delivered seq (duplicate suppression)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.last_heard = 0.0

    def start(self) -> "Link":
        self._thread = threading.Thread(target=self._read_loop, name="edge-link", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    # -- sending -------------------------------------------------------------------------------------
    def _write(self, packet: Packet) -> None:
        if self.on_frame is not None:
            self.on_frame("tx", packet)
        with self._write_lock:
            self.port.write(encode_frame(packet))

    def send(self, type_: int, payload: bytes = b"", *, more: bool = False) -> None:
        """Send one message; waits for its ACK unless its type needs none.

        Raises:
            LinkTimeout: no ACK after every retransmission.
        """
        flags = Flag.MORE if more else 0
        if type_ in _NO_ACK:
            self._write(Packet(type_, 0, int(flags), payload))
            return
        with self._send_lock:
            self._seq = (self._seq + 1) % 256
            packet = Packet(type_, self._seq, int(flags | Flag.ACK_REQ), payload)
            key = (type_, self._seq)
            for _ in range(self.retries + 1):
                self._write(packet)
                deadline = time.monotonic() + self.retry_s
                with self._acked:
                    while self._ack_for != key and time.monotonic() < deadline:
                        self._acked.wait(max(0.0, deadline - time.monotonic()))
                    if self._ack_for == key:
                        return
            raise LinkTimeout(f"edge-link: {packet.name} seq {packet.seq} not acknowledged after "
                              f"{self.retries + 1} tries")

    def send_long(self, type_: int, prefix: bytes, text: bytes) -> None:
        """A message longer than one packet: ``prefix`` (e.g. the request id and ␟) on every chunk, flag
        MORE on all but the last."""
        room = MAX_PAYLOAD - len(prefix)
        parts = chunks(text, room)
        for i, part in enumerate(parts):
            self.send(type_, prefix + part, more=i < len(parts) - 1)

    # -- receiving -----------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.port.read(256)
            except Exception as exc:  # a port that went away: report and stop reading
                log.warning("edge-link: reading failed: %s", exc)
                return
            if not data:
                continue
            for packet in self.reader.feed(data):
                self._receive(packet)

    def _receive(self, packet: Packet) -> None:
        self.last_heard = time.monotonic()
        if self.on_frame is not None:
            self.on_frame("rx", packet)
        if packet.flags & Flag.ACK:
            with self._acked:
                self._ack_for = (packet.type, packet.seq)
                self._acked.notify_all()
            return
        if packet.flags & Flag.ACK_REQ:
            self._write(Packet(packet.type, packet.seq, int(Flag.ACK)))
            if packet.type in (Type.HELLO, Type.WELCOME):  # a (re)started peer numbers from 1 again
                self._last_rx_seq.clear()
            if self._last_rx_seq.get(packet.type) == packet.seq:
                return  # a retransmission whose ACK was lost: acknowledged again, not delivered twice
            self._last_rx_seq[packet.type] = packet.seq
        try:
            self.on_message(packet)
        except Exception:  # one bad message must not stop the link
            log.exception("edge-link: handling %s failed", packet.name)
