"""systemd's notify protocol (``sd_notify``), without libsystemd: readiness, watchdog pings, stopping.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a datagram socket path, ``@`` for the abstract
namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC``. :class:`Notifier` sends ``READY=1`` once the job
runs, ``WATCHDOG=1`` from the frame loop at most every half watchdog interval (a loop that stops
processing frames for longer than ``WatchdogSec`` is restarted), ``STATUS=...`` and ``STOPPING=1`` on a
clean stop. Outside systemd every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping, Optional

__all__ = ["Notifier", "WatchdogSink"]


class Notifier:
    """Sends notify messages to ``NOTIFY_SOCKET`` (no-op when it is not set)."""

    def __init__(self, env: Optional[Mapping[str, str]] = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """Send one message; False (never an exception) when there is no socket or it is gone."""
        if self.address is None:
            return False
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(message.encode("utf-8"), addr)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def ping(self, now: Optional[float] = None) -> bool:
        """``WATCHDOG=1``, at most every half watchdog interval; True if one was sent."""
        if self.watchdog_s is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_s / 2:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")


class WatchdogSink:
    """A pipeline sink that proves the frame loop is alive: ready on the first frame, a watchdog ping
    per frame (rate-limited), stopping when the run closes."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._ready = False

    def write(self, result: Any, pipeline: Any) -> None:
        if not self._ready:
            self._ready = True
            self.notifier.ready("counting")
        self.notifier.ping()

    def close(self, pipeline: Any) -> None:
        self.notifier.stopping()
