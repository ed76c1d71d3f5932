"""Topic names of one gateway (documented with examples in README, "MQTT")."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Topics", "slug", "default_device_id"]


def slug(text: str) -> str:
    """A topic- and id-safe form of a name: [a-z0-9_-] only."""
    out = re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_")
    return out or "x"


def default_device_id() -> str:
    return slug(socket.gethostname())


@dataclass(frozen=True)
class Topics:
    """Every topic under ``prefix`` (e.g. ``edge-runtime/pi-gate``)."""

    prefix: str

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "+#\0") or self.prefix.startswith("/"):
            raise ConfigError(f"config key 'mqtt.topic_prefix': expected a topic without wildcards, got "
                              f"{self.prefix!r}")

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"  # online | offline (last will) | stopped; retained

    def total(self, place: str, direction: str, class_name: str) -> str:
        return f"{self.prefix}/{slug(place)}/{direction}/{slug(class_name)}"  # cumulative count; retained

    def occupancy(self, zone: str) -> str:
        return f"{self.prefix}/{slug(zone)}/occupancy"  # JSON {"total": n, "<class>": n}; retained

    def sensor(self, node: str, name: str) -> str:
        return f"{self.prefix}/sensors/{slug(node)}/{slug(name)}"  # a node's latest reading (edge-link); retained

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"  # one JSON message per event, with its id; not retained

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"  # JSON every stats_every_s

    @property
    def set(self) -> str:
        return f"{self.prefix}/set"  # "pause" | "resume"

    @property
    def ask(self) -> str:
        return f"{self.prefix}/ask"  # JSON {"question": str, "id": any}

    @property
    def answer(self) -> str:
        return f"{self.prefix}/answer"  # JSON {"id": the request's, "answer": str, ...}
