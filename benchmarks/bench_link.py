"""edge-link throughput on a 115200-baud line, clean and noisy.

Two :class:`~edge_runtime.link.endpoint.Link` ends joined by a simulated UART: bytes leave at the line
rate (10 bits per byte: start, 8 data, stop -> 11 520 bytes/s at 115 200 baud) and, on the noisy line,
whole writes are lost and bits flipped and bytes duplicated at the rates given. The sender sends
``--messages`` sensor messages of ``--payload`` bytes, each acknowledged (the protocol keeps one message
in flight). Reported: messages per second, payload bytes per second as a share of the line rate, failures
(messages not acknowledged after every retransmission) and duplicates delivered (must be 0).

Run: ``python -m benchmarks.bench_link`` (writes benchmarks/results/link.json).
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from typing import Any, Dict

from benchmarks.harness import write_result
from edge_runtime.link.endpoint import Link, LinkTimeout
from edge_runtime.link.protocol import Type, fields, join_fields


class Uart:
    """One direction of a UART at ``baud``; optional noise (seeded)."""

    def __init__(self, baud: int, seed: int, lose: float = 0.0, flip: float = 0.0, dup: float = 0.0) -> None:
        self.byte_s = 10.0 / baud
        self.rng = random.Random(seed)
        self.lose, self.flip, self.dup = lose, flip, dup
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.free_at = time.perf_counter()

    def write(self, data: bytes) -> int:
        # The line is busy for len(data) byte times; a write returns once its bytes are on the wire.
        now = time.perf_counter()
        start = max(now, self.free_at)
        self.free_at = start + len(data) * self.byte_s
        time.sleep(max(0.0, self.free_at - now))
        if self.rng.random() < self.lose:
            return len(data)
        out = bytearray()
        for b in data:
            if self.rng.random() < self.flip:
                b ^= 1 << self.rng.randrange(8)
            out.append(b)
            if self.rng.random() < self.dup:
                out.append(b)
        with self.cond:
            self.buf += out
            self.cond.notify_all()
        return len(data)

    def read(self, n: int) -> bytes:
        with self.cond:
            if not self.buf:
                self.cond.wait(0.02)
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out


class End:
    def __init__(self, rx: Uart, tx: Uart) -> None:
        self.rx, self.tx = rx, tx

    def read(self, n: int) -> bytes:
        return self.rx.read(n)

    def write(self, data: bytes) -> int:
        return self.tx.write(data)


def run(baud: int, messages: int, payload: int, noise: Dict[str, float], seed: int) -> Dict[str, Any]:
    forward, back = Uart(baud, seed, **noise), Uart(baud, seed + 1, **noise)
    got = []
    receiver = Link(End(forward, back), got.append).start()
    sender = Link(End(back, forward), lambda p: None).start()
    failed = 0
    body = "x" * max(0, payload - 12)
    t0 = time.perf_counter()
    for i in range(messages):
        try:
            sender.send(Type.SENSOR, join_fields([f"s{i:05d}", body]))
        except LinkTimeout:
            failed += 1
    elapsed = time.perf_counter() - t0
    time.sleep(0.2)
    sender.close()
    receiver.close()
    ids = [fields(p.payload)[0] for p in got]
    line_bytes_s = baud / 10.0
    return {"baud": baud, "messages": messages, "payload_bytes": payload, "noise": noise, "seconds": elapsed,
            "messages_per_s": (messages - failed) / elapsed,
            "payload_bytes_per_s": (messages - failed) * payload / elapsed,
            "share_of_line_rate": (messages - failed) * payload / elapsed / line_bytes_s,
            "failed": failed, "delivered": len(ids), "duplicates_delivered": len(ids) - len(set(ids)),
            "frames_dropped_by_receiver": receiver.reader.dropped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--payload", type=int, default=100)
    args = parser.parse_args()
    clean = run(args.baud, args.messages, args.payload, {}, seed=1)
    noisy = run(args.baud, args.messages, args.payload, {"lose": 0.02, "flip": 0.0005, "dup": 0.0005}, seed=2)
    for name, r in (("clean", clean), ("noisy", noisy)):
        print(f"{name}: {r['messages_per_s']:.1f} msg/s, {r['payload_bytes_per_s']:.0f} payload B/s "
              f"({r['share_of_line_rate'] * 100:.0f} % of the line), failed {r['failed']}, "
              f"duplicates {r['duplicates_delivered']}")
    path = write_result("link", {"question": "edge-link throughput at 115200 baud, clean and noisy line",
                                 "clean": clean, "noisy": noisy})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
