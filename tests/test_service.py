"""systemd: the unit `edge-runtime service install` writes, checked by systemd-analyze, and the notify /
watchdog protocol over a real NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge_runtime.runtime.sdnotify import Notifier

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp: Path, db: str) -> Path:
    cfg = tmp / "job.toml"
    cfg.write_text(textwrap.dedent(f"""
        [source]
        uri = "builtin:vtest-video"
        [[lines]]
        name = "walkway"
        start = [400, 400]
        end = [400, 150]
        [output]
        db = "{db}"
        print_every_s = 0
    """))
    return cfg


def _cli(*args, env=None, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


def test_install_writes_a_hardened_notify_unit_that_systemd_accepts(tmp_path):
    cfg = _config(tmp_path, str(tmp_path / "data" / "counts.db"))
    units = tmp_path / "units"
    out = _cli("service", "install", str(cfg), "--unit-dir", str(units), "--user", "root")
    assert out.returncode == 0, out.stderr
    text = (units / "edge-runtime.service").read_text()
    for line in ("Type=notify", "Restart=on-failure", "WatchdogSec=60", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", f"ExecStart=", f" run {cfg.resolve()}"):
        assert line in text, line
    assert f"ReadWritePaths={tmp_path / 'data'}" in text
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine (the unit text was checked above)")
    verify = subprocess.run(["systemd-analyze", "verify", str(units / "edge-runtime.service")], capture_output=True,
                            text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    gone = _cli("service", "uninstall", "--unit-dir", str(units))
    assert gone.returncode == 0 and not (units / "edge-runtime.service").exists()


def test_install_refuses_a_broken_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nconf = 7\n")
    out = _cli("service", "install", str(bad), "--unit-dir", str(tmp_path), "--print")
    assert out.returncode == 2 and "model.conf" in out.stderr


def test_notifier_speaks_the_protocol_on_a_real_socket(tmp_path):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
    assert n.watchdog_s == 2.0
    assert n.ready("counting")
    assert server.recv(256) == b"READY=1\nSTATUS=counting"
    assert n.ping(now=100.0) and server.recv(64) == b"WATCHDOG=1"
    assert not n.ping(now=100.5)  # within half the interval: not again
    assert n.ping(now=101.1)
    assert server.recv(64) == b"WATCHDOG=1"
    assert n.stopping() and server.recv(64) == b"STOPPING=1"
    server.close()
    assert not Notifier({}).ready() and not Notifier({}).ping()
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready()  # no exception


def test_a_running_job_notifies_ready_pings_the_watchdog_and_stops_cleanly(tmp_path):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(60)
    cfg = _config(tmp_path, str(tmp_path / "counts.db"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "-q", "run", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        got = []
        while not any(m.startswith("READY=1") for m in got):
            got.append(server.recv(256).decode())
        pings = 0
        deadline = time.monotonic() + 30
        while pings < 3 and time.monotonic() < deadline:
            if server.recv(256) == b"WATCHDOG=1":
                pings += 1
        assert pings == 3
        proc.send_signal(signal.SIGTERM)
        while True:
            message = server.recv(256)
            if message == b"STOPPING=1":
                break
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
