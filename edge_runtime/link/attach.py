"""Open the configured ``[[links]]`` and serve their nodes next to the running job."""

from __future__ import annotations

import logging
from typing import Any, List

from ..errors import BackendUnavailableError, SourceError

__all__ = ["open_port", "start_links"]

log = logging.getLogger(__name__)


def open_port(device: str, baud: int) -> Any:
    """A pyserial port (a device path or any pyserial URL: socket://, rfc2217://, loop://).

    Raises:
        BackendUnavailableError: pyserial is not installed. SourceError: the port cannot be opened.
    """
    try:
        import serial
    except ImportError as exc:
        raise BackendUnavailableError(f"links need pyserial: pip install 'edge-runtime[link]' ({exc})") from exc
    try:
        return serial.serial_for_url(device, baudrate=baud, timeout=0.05)
    except (serial.SerialException, ValueError) as exc:
        raise SourceError(f"link {device}: cannot open: {exc}") from exc


def start_links(config: Any, pipeline: Any, asker: Any) -> List[Any]:
    """One :class:`~edge_runtime.link.gateway.GatewaySession` per ``[[links]]`` entry; sensor readings go to
    the job's database."""
    from .gateway import GatewaySession

    sessions = []
    store = getattr(pipeline, "store", None)

    def on_sensor(node: str, name: str, value: float) -> None:
        if store is not None:
            store.add_reading(node, name, value)

    for link in config.links:
        port = open_port(link.device, link.baud)
        sessions.append(GatewaySession(port, asker, on_sensor=on_sensor, name=link.name or link.device).start())
        log.info("edge-link: serving nodes on %s at %d baud", link.device, link.baud)
    return sessions
