"""``edge-runtime link monitor DEVICE``: serve a node on a serial port and show every frame, for debugging.

Answers come from ``--db`` (a results database) when given, else the node is only welcomed and pinged
back. Each line: direction, type, sequence, flags, and the payload's fields.
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["configure_parser", "run_command"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    mon = sub.add_parser("monitor", help="serve a node on DEVICE and print every frame")
    mon.add_argument("device", help="serial device or pyserial URL (socket://host:port)")
    mon.add_argument("--baud", type=int, default=115200)
    mon.add_argument("--db", help="results database to answer counts and questions from")
    mon.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = until Ctrl-C)")


def run_command(args: argparse.Namespace) -> int:
    from ..ask.answer import Asker
    from ..ask.data import StoreView, catalog_from_store
    from ..ask.query import Catalog
    from .attach import open_port
    from .gateway import GatewaySession
    from .protocol import Flag, fields

    store = None
    if args.db:
        from ..runtime.store import Store

        store = Store.open(args.db, readonly=True)
        asker = Asker(StoreView(store), catalog_from_store(store))
    else:
        asker = Asker(None, Catalog({}, {}))

    def show(direction: str, packet) -> None:
        flags = "".join(n for n, f in (("A?", Flag.ACK_REQ), ("ACK", Flag.ACK), ("+", Flag.MORE)) if packet.flags & f)
        print(f"{time.strftime('%H:%M:%S')} {direction} {packet.name:<9} seq {packet.seq:3d} {flags:<5} "
              f"{' | '.join(fields(packet.payload)) if packet.payload else ''}", flush=True)

    session = GatewaySession(open_port(args.device, args.baud), asker, on_frame=show,
                             on_sensor=lambda node, name, value: print(f"sensor {node}.{name} = {value}"))
    session.start()
    try:
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("", file=sys.stderr)
    finally:
        session.close()
        if store is not None:
            store.close()
    return 0
