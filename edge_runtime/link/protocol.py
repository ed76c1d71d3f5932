"""edge-link packets and frames (``native/rtlink/PROTOCOL.md``): COBS framing with a ``0x00`` delimiter,
a 4-byte header, a payload of at most 240 bytes and a CRC-16/CCITT-FALSE."""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass
from typing import Iterator, List, Sequence

from ..errors import InputError

__all__ = ["VERSION", "MAX_PAYLOAD", "MAX_FRAME", "Type", "Flag", "Packet", "encode_frame", "decode_packet",
           "FrameReader", "fields", "join_fields", "FrameError"]

VERSION = 1
MAX_PAYLOAD = 240
MAX_FRAME = 256  # a whole frame, delimiter included, always fits
SEP = b"\x1f"


class FrameError(InputError):
    """A frame that is not a valid packet (bad COBS, length, version or CRC)."""


class Type(enum.IntEnum):
    HELLO = 0x01
    WELCOME = 0x02
    PING = 0x03
    PONG = 0x04
    COUNTS_Q = 0x10
    COUNTS = 0x11
    ASK = 0x20
    ANSWER = 0x21
    SUBSCRIBE = 0x30
    EVENT = 0x31
    SENSOR = 0x40
    LOG = 0x50


class Flag(enum.IntFlag):
    ACK_REQ = 1
    ACK = 2
    MORE = 4


@dataclass(frozen=True)
class Packet:
    type: int
    seq: int = 0
    flags: int = 0
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= 255 or not 0 <= self.type <= 255 or not 0 <= self.flags <= 255:
            raise InputError(f"edge-link: type, seq and flags are bytes, got {self.type}, {self.seq}, {self.flags}")
        if len(self.payload) > MAX_PAYLOAD:
            raise InputError(f"edge-link: payload of {len(self.payload)} bytes; at most {MAX_PAYLOAD}")

    @property
    def name(self) -> str:
        try:
            return Type(self.type).name
        except ValueError:
            return f"0x{self.type:02x}"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): ``binascii.crc_hqx`` with that start value."""
    return binascii.crc_hqx(data, 0xFFFF)


def _cobs_encode(data: bytes) -> bytes:
    from cobs import cobs

    return cobs.encode(data)


def _cobs_decode(data: bytes) -> bytes:
    from cobs import cobs

    try:
        return cobs.decode(data)
    except cobs.DecodeError as exc:
        raise FrameError(f"edge-link: bad COBS: {exc}") from None


def encode_frame(packet: Packet) -> bytes:
    """The bytes to write: COBS(header + payload + CRC) + 0x00."""
    body = bytes((VERSION, packet.type, packet.seq, packet.flags)) + packet.payload
    body += crc16(body).to_bytes(2, "big")
    return _cobs_encode(body) + b"\x00"


def decode_packet(frame: bytes) -> Packet:
    """A packet from one frame without its delimiter.

    Raises:
        FrameError: bad COBS, too short or long, another version, or a CRC mismatch.
    """
    if len(frame) > MAX_FRAME:
        raise FrameError(f"edge-link: frame of {len(frame)} bytes; at most {MAX_FRAME}")
    body = _cobs_decode(frame)
    if len(body) < 6:
        raise FrameError(f"edge-link: packet of {len(body)} bytes; at least 6")
    if crc16(body[:-2]) != int.from_bytes(body[-2:], "big"):
        raise FrameError("edge-link: CRC mismatch")
    if body[0] != VERSION:
        raise FrameError(f"edge-link: version {body[0]}; this gateway speaks {VERSION}")
    return Packet(body[1], body[2], body[3], bytes(body[4:-2]))


class FrameReader:
    """Splits a byte stream into packets; resynchronises after noise at the next 0x00.

    Attributes:
        dropped: frames discarded (noise, CRC errors, overlong runs).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self.dropped = 0

    def feed(self, data: bytes) -> Iterator[Packet]:
        for byte in data:
            if byte == 0:
                if self._buf and not self._overflow:
                    try:
                        yield decode_packet(bytes(self._buf))
                    except FrameError:
                        self.dropped += 1
                elif self._overflow:
                    self.dropped += 1
                self._buf.clear()
                self._overflow = False
            elif len(self._buf) >= MAX_FRAME:
                self._overflow = True  # noise without a delimiter: skip to the next one
            else:
                self._buf.append(byte)


def fields(payload: bytes) -> List[str]:
    """The ␟-separated text fields of a payload (invalid UTF-8 replaced)."""
    return payload.decode("utf-8", errors="replace").split("\x1f")


def join_fields(values: Sequence[object]) -> bytes:
    text = "\x1f".join(str(v).replace("\x1f", " ") for v in values).encode("utf-8")
    if len(text) > MAX_PAYLOAD:
        raise InputError(f"edge-link: fields take {len(text)} bytes; at most {MAX_PAYLOAD}")
    return text
