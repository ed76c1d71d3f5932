"""edge-link: frames that survive line noise, ACKs and retransmission over a lossy stream, and the portable
C client (built with -Wall -Wextra -Werror) talking to the gateway over a real pseudo-terminal."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("cobs", reason="the link extra (cobs, pyserial) is not installed")

from edge_runtime.link.endpoint import Link, LinkTimeout  # noqa: E402
from edge_runtime.link.protocol import (MAX_FRAME, MAX_PAYLOAD, FrameError, FrameReader, Packet, Type,  # noqa: E402
                                        decode_packet, encode_frame, fields, join_fields)

ROOT = Path(__file__).resolve().parents[1]
RTLINK = ROOT / "native" / "rtlink"
BENCH_DB = ROOT / "benchmarks" / "grounding" / "vtest_results.db"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 7), st.binary(max_size=MAX_PAYLOAD))
def test_frames_round_trip_and_fit_256_bytes(type_, seq, flags, payload):
    frame = encode_frame(Packet(type_, seq, flags, payload))
    assert frame.endswith(b"\x00") and b"\x00" not in frame[:-1] and len(frame) <= MAX_FRAME
    assert decode_packet(frame[:-1]) == Packet(type_, seq, flags, payload)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600), st.lists(st.binary(max_size=60), min_size=1, max_size=5))
def test_reader_resynchronises_after_noise(noise, payloads):
    """Whatever garbage comes first, every packet after the next delimiter is read, in order."""
    stream = noise + b"\x00" + b"".join(encode_frame(Packet(Type.LOG, 0, 0, p)) for p in payloads)
    reader = FrameReader()
    got = [p.payload for p in reader.feed(stream)]
    assert got[-len(payloads):] == payloads


def test_corrupt_frames_are_dropped_and_counted():
    frame = bytearray(encode_frame(Packet(Type.ASK, 3, 1, b"how many?")))
    frame[5] ^= 0x40  # one flipped bit
    reader = FrameReader()
    assert list(reader.feed(bytes(frame))) == [] and reader.dropped == 1
    with pytest.raises(FrameError, match="CRC"):
        decode_packet(bytes(frame[:-1]))
    with pytest.raises(FrameError, match="at least 6"):
        decode_packet(encode_frame(Packet(Type.ASK))[:3])


class Pipe:
    """One direction of an in-memory stream; ``drop`` loses every n-th write (a noisy line)."""

    def __init__(self, drop: int = 0) -> None:
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.drop, self.writes = drop, 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.drop and self.writes % self.drop == 0:
            return len(data)
        with self.cond:
            self.buf += data
            self.cond.notify_all()
        return len(data)

    def read(self, n: int) -> bytes:
        with self.cond:
            if not self.buf:
                self.cond.wait(0.05)
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out


class End:
    def __init__(self, rx: Pipe, tx: Pipe) -> None:
        self.rx, self.tx = rx, tx

    def read(self, n):
        return self.rx.read(n)

    def write(self, data):
        return self.tx.write(data)


def test_lost_frames_are_retransmitted_and_delivered_once():
    a_to_b, b_to_a = Pipe(drop=3), Pipe(drop=4)  # a third of one way and a quarter of the other lost
    got = []
    b = Link(End(a_to_b, b_to_a), got.append, retry_ms=30, retries=10).start()
    a = Link(End(b_to_a, a_to_b), lambda p: None, retry_ms=30, retries=10).start()
    try:
        for i in range(30):
            a.send(Type.SENSOR, join_fields(["door", i]))
        deadline = time.monotonic() + 5
        while len(got) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [int(fields(p.payload)[1]) for p in got] == list(range(30))  # each once, in order
    finally:
        a.close()
        b.close()


def test_no_ack_means_a_clear_timeout():
    silent = Pipe()
    a = Link(End(Pipe(), silent), lambda p: None, retry_ms=20, retries=2).start()
    try:
        with pytest.raises(LinkTimeout, match="not acknowledged after 3 tries"):
            a.send(Type.ASK, b"a1\x1fhello?")
    finally:
        a.close()


class PtyPort:
    """The gateway's end of a pseudo-terminal pair, as a port."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, n):
        import select

        ready, _, _ = select.select([self.fd], [], [], 0.05)
        return os.read(self.fd, n) if ready else b""

    def write(self, data):
        return os.write(self.fd, data)


def _asker():
    from edge_runtime.ask.answer import Asker
    from edge_runtime.ask.data import StoreView, catalog_from_store
    from edge_runtime.runtime.store import Store

    store = Store.open(BENCH_DB, readonly=True)
    return store, Asker(StoreView(store), catalog_from_store(store, labels=["person", "fallen person"]),
                        tz=dt.timezone.utc)


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="no C compiler")
def test_c_client_talks_to_the_gateway_over_a_pty(tmp_path):
    """hello, ping, a count query, an ask (and one with an answer longer than a frame), a sensor reading that
    ends up in the database, and a subscription that delivers a new event."""
    from types import SimpleNamespace

    from edge_runtime.ask.answer import Asker
    from edge_runtime.ask.data import StoreView, catalog_from_store
    from edge_runtime.link.gateway import GatewaySession
    from edge_runtime.runtime.store import Store

    cc = shutil.which("gcc") or shutil.which("cc")
    exe = tmp_path / "host_node"
    build = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-o", str(exe),
                            str(RTLINK / "examples" / "host_node.c"), str(RTLINK / "edge_link.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    db = tmp_path / "copy.db"
    db.write_bytes(BENCH_DB.read_bytes())
    store = Store.open(db)  # writable: migrated, readings stored, events added
    asker = Asker(StoreView(store), catalog_from_store(store, labels=["person", "fallen person"]),
                  tz=dt.timezone.utc)
    master, slave = os.openpty()

    session = GatewaySession(PtyPort(master), asker, on_sensor=lambda node, name, value: store.add_reading(
        node, name, value)).start()
    try:
        node = subprocess.Popen([str(exe), os.ttyname(slave), "door-1", "lamp",
                                 "How many people crossed the walkway line yesterday?", "sub"],
                                stdout=subprocess.PIPE, text=True)
        lines = {}
        for line in node.stdout:
            key, _, value = line.rstrip("\n").partition(" ")
            lines[key] = value
            if key == "subscribed":
                time.sleep(0.3)
                run = store.begin_run(source="cam", class_names={0: "person"}, places={"walkway": "line"})
                ev = SimpleNamespace(name="walkway", timestamp_s=9e9, class_id=0, direction="in", frame_index=1,
                                     track_id=3)
                store.record_frame(run, 1, 9e9, [ev])
        assert node.wait(30) == 0, lines
        assert lines["welcome"].split("\x1f")[1] == str(MAX_PAYLOAD)
        assert lines["pong"] == "hi"
        q, name, ins, outs, occ = lines["counts"].split("\x1f")
        expected = asker.view.event_counts(None, None, (("lamp",), None, ()))
        assert (q, name) == ("q1", "lamp")
        assert int(ins) == sum(n for (_, _, d), n in expected.items() if d == "enter")
        assert int(outs) == sum(n for (_, _, d), n in expected.items() if d == "exit")
        assert lines["answer"] == "59 people crossed the walkway line yesterday (31 in, 28 out)."
        assert lines["event"].split("\x1f")[1:] == ["walkway", "in", "person"]
        assert [(n, v) for n, _, v, _ in store.readings("door_open")] == [("door-1", 1.0)]
        assert session.node == {"id": "door-1", "firmware": "1.0", "caps": "15"}
        # An answer longer than one packet arrives in chunks and is put back together.
        long = subprocess.run([str(exe), os.ttyname(slave), "door-1", "walkway", "Tell me about the walkway"],
                              capture_output=True, text=True, timeout=60)
        text = dict(line.split(" ", 1) for line in long.stdout.strip().splitlines() if " " in line)["answer"]
        assert len(text.encode()) > MAX_PAYLOAD and text == asker.help_text()
    finally:
        session.close()
        store.close()
        os.close(master)
        os.close(slave)


def test_unknown_place_gets_an_error_reply():
    from edge_runtime.link.gateway import GatewaySession

    store, asker = _asker()
    try:
        session = GatewaySession(End(Pipe(), Pipe()), asker)
        reply = fields(session._counts(["q9", "gate", "0"]))
        assert reply[:2] == ["q9", "ERR"] and "gate" in reply[2]
        assert fields(session._counts(["q9", "walkway", "soon"]))[1] == "ERR"
    finally:
        store.close()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_rtthread_port_compiles_warning_free_against_the_documented_api(tmp_path):
    """No RT-Thread kernel here: the port is compiled against declarations of the documented API
    (tests/rtthread_stubs), which catches a wrong call or type, not a kernel behaviour."""
    out = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                          f"-I{ROOT / 'tests' / 'rtthread_stubs'}", f"-I{RTLINK}", "-c",
                          str(RTLINK / "rtthread" / "edge_link_port.c"), "-o", str(tmp_path / "port.o")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("SConscript", "Kconfig", "README.md"):
        assert (RTLINK / "rtthread" / name).is_file()


def _build_node(tmp_path: Path) -> Path:
    exe = tmp_path / "host_node"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o", str(exe),
                    str(RTLINK / "examples" / "host_node.c"), str(RTLINK / "edge_link.c")], check=True)
    return exe


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_link_monitor_serves_a_node_and_shows_every_frame(tmp_path):
    import sys

    exe = _build_node(tmp_path)
    # The monitor serves a pyserial URL (a loopback socket, as a serial-over-network adapter would be); the
    # node (the C client) talks to a pty whose other end this test bridges to that socket.
    import socket as sk

    listener = sk.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    m, s = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mon = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "link", "monitor", f"socket://127.0.0.1:{port}",
                            "--db", str(BENCH_DB), "--seconds", "20"], stdout=subprocess.PIPE, text=True, env=env)
    conn, _ = listener.accept()
    stop = threading.Event()

    def bridge():
        import select

        while not stop.is_set():
            ready, _, _ = select.select([m, conn], [], [], 0.05)
            if m in ready:
                conn.sendall(os.read(m, 4096))
            if conn in ready:
                try:
                    data = conn.recv(4096)
                except ConnectionResetError:  # the node's side closed first: the test is over
                    return
                if not data:
                    return
                os.write(m, data)

    t = threading.Thread(target=bridge, daemon=True)
    t.start()
    try:
        out = subprocess.run([str(exe), os.ttyname(s), "pen-door", "walkway", "How many people crossed the walkway?"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout
        assert "answer 105 people crossed the walkway line" in out.stdout
    finally:
        stop.set()
        mon.terminate()
        shown = mon.communicate(timeout=30)[0]
        t.join(timeout=5)  # the bridge sees stop within one 50 ms select; its fds are closed after it ends
        conn.close()
        listener.close()
        os.close(m)
        os.close(s)
    assert "rx HELLO" in shown and "pen-door | 1.0 | 15" in shown
    assert "tx WELCOME" in shown and "tx ANSWER" in shown and "ACK" in shown


def test_sensor_readings_are_stored_and_a_silent_node_is_reported(tmp_path, caplog):
    from edge_runtime.link.gateway import GatewaySession
    from edge_runtime.runtime.store import Store

    store = Store.open(tmp_path / "r.db")
    from edge_runtime.ask.answer import Asker
    from edge_runtime.ask.data import StoreView, catalog_from_store

    asker = Asker(StoreView(store), catalog_from_store(store))
    to_gw, to_node = Pipe(), Pipe()
    session = GatewaySession(End(to_gw, to_node), asker, gone_after_s=1.0,
                             on_sensor=lambda node, name, value: store.add_reading(node, name, value)).start()
    node = Link(End(to_node, to_gw), lambda p: None, retry_ms=50).start()
    try:
        node.send(Type.HELLO, join_fields(["pen-door", "1.0", "8"]))
        node.send(Type.SENSOR, join_fields(["door_open", 1]))
        node.send(Type.SENSOR, join_fields(["door_open", 0]))
        deadline = time.monotonic() + 5
        while len(store.readings("door_open")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(n, v) for n, _, v, _ in store.readings("door_open")] == [("pen-door", 1.0), ("pen-door", 0.0)]
        with caplog.at_level("WARNING", logger="edge_runtime.link.gateway"):
            deadline = time.monotonic() + 5
            while session.present and time.monotonic() < deadline:
                time.sleep(0.05)
        assert not session.present and "gone" in caplog.text
        node.send(Type.HELLO, join_fields(["pen-door", "1.0", "8"]))  # welcomed back
        deadline = time.monotonic() + 5
        while not session.present and time.monotonic() < deadline:
            time.sleep(0.02)
        assert session.present
    finally:
        node.close()
        session.close()
        store.close()


_ARM_GCC = shutil.which("arm-linux-gnueabihf-gcc")
_QEMU_ARM = shutil.which("qemu-arm-static") or shutil.which("qemu-arm")


@pytest.mark.skipif(_ARM_GCC is None, reason="no ARM cross compiler (make cross installs it)")
def test_client_builds_for_a_cortex_m4_without_heap_or_libc_beyond_memcpy(tmp_path):
    obj = tmp_path / "edge_link_m4.o"
    subprocess.run([_ARM_GCC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os", "-mcpu=cortex-m4",
                    "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-ffreestanding", "-c",
                    str(RTLINK / "edge_link.c"), "-o", str(obj)], check=True, capture_output=True)
    undefined = subprocess.run([_ARM_GCC.replace("gcc", "nm"), "-u", str(obj)], capture_output=True,
                               text=True, check=True).stdout.split()
    assert set(undefined) - {"U"} <= {"memcpy", "memset"}  # no malloc, no printf, no OS calls
    size = subprocess.run([_ARM_GCC.replace("gcc", "size"), str(obj)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    assert text < 2048 and data == 0 and bss == 0


@pytest.mark.skipif(_ARM_GCC is None or _QEMU_ARM is None, reason="no ARM cross compiler / qemu-user (make cross)")
def test_an_emulated_arm_node_talks_to_the_gateway(tmp_path):
    """The node client built for 32-bit ARM and run on an emulated Cortex-A7 (qemu user mode), over a pty."""
    exe = tmp_path / "host_node_armv7"
    subprocess.run([_ARM_GCC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-static", "-O2", "-o", str(exe),
                    str(RTLINK / "examples" / "host_node.c"), str(RTLINK / "edge_link.c")], check=True,
                   capture_output=True)
    from edge_runtime.link.gateway import GatewaySession

    master, slave = os.openpty()

    store, asker = _asker()
    session = GatewaySession(PtyPort(master), asker).start()
    try:
        out = subprocess.run([_QEMU_ARM, "-cpu", "cortex-a7", str(exe), os.ttyname(slave), "arm-node", "walkway",
                              "How many people crossed the walkway line yesterday?"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout
        assert "answer 59 people crossed the walkway line yesterday" in out.stdout
        assert session.node["id"] == "arm-node"
    finally:
        session.close()
        store.close()
        os.close(master)
        os.close(slave)


def test_subscribed_node_gets_every_new_event(tmp_path):
    from types import SimpleNamespace

    from edge_runtime.ask.answer import Asker
    from edge_runtime.ask.data import StoreView, catalog_from_store
    from edge_runtime.link.gateway import GatewaySession
    from edge_runtime.runtime.store import Store

    store = Store.open(tmp_path / "e.db", checkpoint_every_s=0)
    run = store.begin_run(source="cam", class_names={0: "person"}, places={"walkway": "line"})

    def record(frame):
        ev = SimpleNamespace(name="walkway", timestamp_s=frame / 10, class_id=0, direction="in", frame_index=frame,
                             track_id=1)
        store.record_frame(run, frame, frame / 10, [ev])

    record(0)  # before the subscription: not sent
    to_gw, to_node = Pipe(), Pipe()
    session = GatewaySession(End(to_gw, to_node), Asker(StoreView(store), catalog_from_store(store))).start()
    got = []
    node = Link(End(to_node, to_gw), got.append, retry_ms=50).start()
    try:
        node.send(Type.HELLO, join_fields(["n", "1", "4"]))
        node.send(Type.SUBSCRIBE, b"1")
        time.sleep(0.3)
        for f in range(1, 6):
            record(f)
        deadline = time.monotonic() + 5
        while len([p for p in got if p.type == Type.EVENT]) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        events = [fields(p.payload) for p in got if p.type == Type.EVENT]
        assert [int(e[0]) for e in events] == [2, 3, 4, 5, 6] and events[0][1:] == ["walkway", "in", "person"]
    finally:
        node.close()
        session.close()
        store.close()


_ARM_EABI = shutil.which("arm-none-eabi-gcc")
_QEMU_SYSTEM = shutil.which("qemu-system-arm")
if os.environ.get("CI") and None in (_ARM_EABI, _QEMU_SYSTEM, shutil.which("clang"), _ARM_GCC, _QEMU_ARM):
    pytest.fail("a toolchain the link tests need is missing in CI (make system-deps installs arm-none-eabi-gcc, "
                "qemu-system-arm and clang; the ARM stage of make test installs arm-linux-gnueabihf-gcc and qemu-user)",
                pytrace=False)


@pytest.mark.skipif(_ARM_EABI is None, reason="no arm-none-eabi-gcc (make system-deps installs it)")
def test_client_fits_a_small_mcu():
    """Flash and RAM of the client for a Cortex-M4 at -Os: at most 8 KB and 2 KB."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        obj, probe = Path(tmp) / "c.o", Path(tmp) / "probe.c"
        subprocess.run([_ARM_EABI, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os", "-mcpu=cortex-m4",
                        "-mthumb", "-ffreestanding", "-c", str(RTLINK / "edge_link.c"), "-o", str(obj)], check=True)
        size = subprocess.run([_ARM_EABI.replace("gcc", "size"), str(obj)], capture_output=True, text=True, check=True)
        text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
        probe.write_text('#include "edge_link.h"\nchar link_bytes[sizeof(struct edge_link)];\n')
        subprocess.run([_ARM_EABI, "-std=c99", "-mcpu=cortex-m4", "-mthumb", f"-I{RTLINK}", "-c", str(probe), "-o",
                        str(Path(tmp) / "p.o")], check=True)
        nm = subprocess.run([_ARM_EABI.replace("gcc", "nm"), "-S", str(Path(tmp) / "p.o")], capture_output=True,
                            text=True, check=True).stdout
        link_bytes = int(nm.split()[1], 16)
    assert text + data <= 8 * 1024
    # RAM: the caller's struct edge_link plus one decoded packet on the stack while a frame is handled
    assert data + bss + link_bytes + 256 <= 2 * 1024, (link_bytes, data, bss)


@pytest.mark.skipif(_ARM_EABI is None or _QEMU_SYSTEM is None,
                    reason="no arm-none-eabi-gcc / qemu-system-arm (make system-deps installs them)")
def test_bare_metal_firmware_on_an_emulated_cortex_m3(tmp_path):
    """The client in a bare-metal firmware for the LM3S6965 board qemu-system-arm emulates: its UART0 is wired
    to the gateway through a socket chardev; it reports a reading, asks for counts and a question, and prints
    the replies on UART1."""
    import socket as sk

    fw = tmp_path / "fw.elf"
    qdir = RTLINK / "qemu"
    subprocess.run([_ARM_EABI, "-std=c99", "-mcpu=cortex-m3", "-mthumb", "-Os", "-ffreestanding", "-nostdlib", "-Wall",
                    "-Wextra", "-Werror", "-T", str(qdir / "lm3s6965.ld"), "-o", str(fw), str(qdir / "firmware.c"),
                    str(RTLINK / "edge_link.c"), "-lgcc"], check=True)
    with sk.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qemu = subprocess.Popen([_QEMU_SYSTEM, "-M", "lm3s6965evb", "-nographic", "-monitor", "none", "-kernel", str(fw),
                             "-chardev", f"socket,id=link,host=127.0.0.1,port={port},server=on,wait=on",
                             "-serial", "chardev:link", "-serial", "stdio"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    conn = None
    for _ in range(200):
        try:
            conn = sk.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    assert conn is not None, qemu.stderr.read1(500) if qemu.poll() is not None else "qemu did not listen"
    conn.settimeout(0.05)

    class SocketPort:
        def read(self, n):
            try:
                return conn.recv(n)
            except sk.timeout:
                return b""

        def write(self, data):
            conn.sendall(data)
            return len(data)

    from edge_runtime.link.gateway import GatewaySession

    store, asker = _asker()
    readings = []
    session = GatewaySession(SocketPort(), asker, on_sensor=lambda *r: readings.append(r)).start()
    out = b""
    try:
        os.set_blocking(qemu.stdout.fileno(), False)
        deadline = time.monotonic() + 60
        while b"done" not in out and time.monotonic() < deadline:
            out += qemu.stdout.read() or b""
            time.sleep(0.05)
    finally:
        qemu.kill()
        qemu.wait(10)
        session.close()
        conn.close()
        store.close()
    text = out.decode(errors="replace")
    assert "answer 59 people crossed the walkway line yesterday (31 in, 28 out)." in text, text
    assert "counts c1\x1fwalkway\x1f53\x1f52\x1f-" in text
    assert readings == [("mcu-1", "door_open", 1.0)] and session.node["id"] == "mcu-1"


class NoisyPipe(Pipe):
    """A line that loses whole writes, flips bits and duplicates bytes at set rates (seeded)."""

    def __init__(self, seed: int, lose: float = 0.05, flip: float = 0.003, dup: float = 0.003) -> None:
        super().__init__()
        import random

        self.rng, self.lose, self.flip, self.dup = random.Random(seed), lose, flip, dup

    def write(self, data: bytes) -> int:
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


@pytest.mark.parametrize("seed", [1, 2])
def test_line_noise_every_message_exactly_once_or_reported_failed(seed):
    got = []
    a_to_b, b_to_a = NoisyPipe(seed), NoisyPipe(seed + 100)
    b = Link(End(a_to_b, b_to_a), got.append, retry_ms=30, retries=8).start()
    a = Link(End(b_to_a, a_to_b), lambda p: None, retry_ms=30, retries=8).start()
    sent, failed = [], []
    try:
        for i in range(120):
            payload = join_fields(["temp", i, "x" * (i % 150)])
            try:
                a.send(Type.SENSOR, payload)
                sent.append(i)
            except LinkTimeout:
                failed.append(i)
        time.sleep(0.3)
    finally:
        a.close()
        b.close()
    delivered = [int(fields(p.payload)[1]) for p in got]
    assert len(delivered) == len(set(delivered))  # never twice
    assert set(sent) <= set(delivered) <= set(sent) | set(failed)  # acknowledged ones all arrived
    assert len(failed) <= 2 and b.reader.dropped > 0  # the noise was real, and retransmission beat it


_CLANG = shutil.which("clang")


@pytest.mark.skipif(_CLANG is None, reason="no clang for libFuzzer (make system-deps installs it)")
def test_c_frame_parser_under_libfuzzer_with_sanitizers(tmp_path):
    """libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer on the C client's receive path (bounded
    time); seeded with real frames. Any crash or sanitizer report fails."""
    exe = tmp_path / "fuzz_frames"
    subprocess.run([_CLANG, "-std=c99", "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
                    "-fno-sanitize-recover=undefined", f"-I{RTLINK}", "-o", str(exe),
                    str(RTLINK / "fuzz" / "fuzz_frames.c"), str(RTLINK / "edge_link.c")], check=True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, (t, payload) in enumerate([(Type.HELLO, b"n\x1f1\x1f15"), (Type.ANSWER, b"a1\x1f" + b"x" * 200),
                                      (Type.COUNTS, b"q1\x1fwalkway\x1f3\x1f4\x1f-")]):
        (corpus / f"seed{i}").write_bytes(encode_frame(Packet(t, i, 1, payload)) * 2)
    # The client never allocates: the limit that matters is on malloc (libFuzzer's own tables stay small);
    # the process RSS is dominated by the sanitizers' shadow memory, which varies by machine, so it is not
    # limited. Artifacts (a crashing input) go to tmp_path, reported in the failure.
    out = subprocess.run([str(exe), "-max_total_time=15", "-timeout=5", "-rss_limit_mb=0", "-malloc_limit_mb=256",
                          f"-artifact_prefix={tmp_path}/", str(corpus)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ASAN_OPTIONS": "quarantine_size_mb=16:detect_leaks=1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done" in out.stderr


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_python_link_survives_any_bytes(data):
    got = []
    link = Link(End(Pipe(), Pipe()), got.append)
    for packet in link.reader.feed(data):  # the reader thread's path, without the thread
        link._receive(packet)
    assert all(len(p.payload) <= MAX_PAYLOAD for p in got)
