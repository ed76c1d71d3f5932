"""MQTT publishing: what it costs the pipeline, how fast a burst drains, and memory while the broker is away.

Set-up: a real mosquitto on a free loopback port, a results database, and a frame loop that records each
frame with one counting event the way the pipeline's store sink does (``Store.record_frame``).

1. Per-frame cost: the frame loop with the publisher running vs without it, interleaved in blocks of
   200 frames over >= 5 rounds; the added time per frame (median of the per-block differences). The
   publisher never runs on the frame path (it reads the database on its own thread), so what it adds is
   contention for the database lock and the CPU. Target: <= 0.5 ms per frame.
2. A burst: 1000 events recorded at once; time until the broker acknowledged all of them, and the
   longest ``record_frame`` call while the burst drains (frames are not blocked).
3. The broker away: an hour of events at 10 per second (36 000) recorded while no broker runs; the
   publisher's resident memory before and after (they wait in SQLite, not in RAM); then the broker
   comes back and every event is delivered.

Run: ``python -m benchmarks.bench_mqtt`` (writes benchmarks/results/mqtt.json).
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

from benchmarks.harness import write_result
from edge_runtime.runtime.config import MqttConfig
from edge_runtime.runtime.metrics import rss_bytes
from edge_runtime.runtime.store import Store

CLASSES = {0: "person"}
PLACES = {"walkway": "line"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broker(port: int, tmp: Path) -> subprocess.Popen:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = tmp / f"m{port}.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_queued_messages 100000\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    raise SystemExit("bench_mqtt: mosquitto did not start")


def _events(frame: int, n: int = 1) -> List[Any]:
    return [SimpleNamespace(name="walkway", timestamp_s=frame / 10, class_id=0, direction="in" if k % 2 else "out",
                            frame_index=frame, track_id=k) for k in range(n)]


def _frames(store: Store, run: int, start: int, count: int) -> List[float]:
    times = []
    for f in range(start, start + count):
        t0 = time.perf_counter()
        store.record_frame(run, f, f / 10, _events(f))
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    from edge_runtime.gateway.mqtt import MqttPublisher

    tmp = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    port = _port()
    broker = _broker(port, tmp)
    cfg = MqttConfig(enabled=True, port=port, device_id="bench", topic_prefix="bench/gw", stats_every_s=0)
    result: Dict[str, Any] = {}
    try:
        # 1. per-frame cost, interleaved blocks
        store = Store.open(tmp / "a.db", checkpoint_every_s=0)
        run = store.begin_run(source="cam", class_names=CLASSES, places=PLACES)
        pub = MqttPublisher(cfg, store, PLACES, CLASSES, poll_s=0.05)
        frame, diffs, with_ms, without_ms = 0, [], [], []
        pub.start()
        time.sleep(0.5)
        for _ in range(6):
            on = _frames(store, run, frame, 200)
            frame += 200
            pub.stop()
            off = _frames(store, run, frame, 200)
            frame += 200
            with_ms.append(statistics.median(on) * 1e3)
            without_ms.append(statistics.median(off) * 1e3)
            diffs.append(with_ms[-1] - without_ms[-1])
            pub = MqttPublisher(cfg, store, PLACES, CLASSES, poll_s=0.05)
            pub.start()
            time.sleep(0.3)
        result["per_frame"] = {"rounds": len(diffs), "frames_per_block": 200,
                               "record_frame_ms_with_mqtt_median": statistics.median(with_ms),
                               "record_frame_ms_without_mqtt_median": statistics.median(without_ms),
                               "added_ms_per_frame_median": statistics.median(diffs),
                               "added_ms_per_frame_per_round": diffs, "target_ms": 0.5}
        # 2. burst of 1000 events on one frame, while frames go on
        cursor0 = frame
        store.record_frame(run, frame, frame / 10, _events(frame, 1000))
        frame += 1
        t0 = time.perf_counter()
        worst = 0.0
        last_id = store.events_after(0, 10**7)[-1][0]
        while pub.cursor < last_id and time.perf_counter() - t0 < 60:
            worst = max(worst, max(_frames(store, run, frame, 1)))
            frame += 1
            time.sleep(0.01)
        result["burst"] = {"events": 1000, "drained_s": time.perf_counter() - t0, "all_acknowledged": pub.cursor >= last_id,
                           "worst_record_frame_ms_while_draining": worst * 1e3}
        del cursor0
        pub.stop()
        store.close()
        # 3. an hour of events with the broker away
        broker.terminate()
        broker.wait(10)
        store = Store.open(tmp / "b.db", checkpoint_every_s=0)
        run = store.begin_run(source="cam", class_names=CLASSES, places=PLACES)
        pub = MqttPublisher(cfg, store, PLACES, CLASSES, poll_s=0.05)
        pub.start()
        time.sleep(0.5)
        rss0 = rss_bytes()
        for f in range(36000):
            store.record_frame(run, f, f / 10, _events(f))
        time.sleep(1.0)
        rss1 = rss_bytes()
        broker = _broker(port, tmp)
        t0 = time.perf_counter()
        last_id = store.events_after(35990, 100)[-1][0]
        while pub.cursor < last_id and time.perf_counter() - t0 < 300:
            time.sleep(0.1)
        result["broker_away_one_hour"] = {"events": 36000, "rss_growth_mb_while_away": (rss1 - rss0) / 1e6,
                                          "delivered_after_return_s": time.perf_counter() - t0,
                                          "all_acknowledged": pub.cursor >= last_id}
        pub.stop()
        store.close()
    finally:
        broker.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    path = write_result("mqtt", {"question": "MQTT publishing cost per frame, burst drain, memory with the broker away",
                                 **result})
    print(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
