"""Fuzz targets: each takes one input (bytes) and lets escape only the errors its parser documents.

A target returning normally or raising one of its ``allowed`` errors is a pass; any other exception is a
finding (libFuzzer stops, writes the input as ``crash-*`` and exits non-zero); so is an input that takes
longer than ``-timeout`` seconds (a hang). ``tests/fuzz/run.py`` runs one target under atheris;
tests/test_fuzz.py replays the committed seeds in-process and runs every target for a few seconds.

Targets (seeds in tests/fuzz/corpus/<name>/, written by tests/fuzz/make_seeds.py):

    gguf          GGUFFile.open + every tensor view + validate       ModelFormatError
    onnx          Detector(model bytes): check_onnx_file, onnxruntime, metadata, shapes   ModelFormatError
    model_meta    parse_model_meta on NUL-separated key/value pairs   ModelFormatError
    shapes        ops.detect_layout + infer_num_classes on any output shape, class count, end2end flag
                                                                      ModelFormatError
    config_toml   load_config of a .toml file                         ConfigError
    config_yaml   load_config of a .yaml file                         ConfigError
    chat_request  parse_request + parse_tools + tool messages         the server's 400 (_RequestError), ToolRequestError
    chat_app      POST /v1/chat/completions to the real Starlette app: never a 500, always a JSON answer
    link          decode_packet, FrameReader.feed, fields             FrameError (an InputError)
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Type

__all__ = ["Target", "TARGETS", "target", "run_one"]


@dataclass
class Target:
    """One fuzz target: ``call(data)`` exercises the parser; ``allowed`` errors are documented refusals."""

    name: str
    call: Callable[[bytes], Any]
    allowed: Tuple[Type[BaseException], ...]


def _scratch() -> Path:
    """A per-process folder for targets that must read a real file (created on first use)."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Path(tempfile.mkdtemp(prefix="edge-fuzz-"))
    return _SCRATCH


_SCRATCH: Optional[Path] = None


def _file(name: str, data: bytes) -> Path:
    path = _scratch() / name
    path.write_bytes(data)
    return path


# -- targets ----------------------------------------------------------------------------------------------


def _gguf(data: bytes) -> None:
    import numpy as np

    from edge_runtime.llm.gguf_file import GGUFFile, validate

    path = _file("fuzz.gguf", data)
    with GGUFFile.open(path) as f:
        for name in f.tensors:  # every view lies inside the mapping and is readable
            int(np.asarray(f.tensor(name)).reshape(-1).view(np.uint8).sum())  # 0-d (n_dims = 0) too
        list(f.metadata.items())
        repr(f)
    validate(path, require_architecture=False)


def _onnx(data: bytes) -> None:
    from edge_runtime.vision.detector import Detector

    # In its own folder beside tiny.bin (the seeds' external data), with nothing else to reach.
    folder = _scratch() / "onnx"
    folder.mkdir(exist_ok=True)
    (folder / "tiny.bin").write_bytes(b"\x00\x00\x80\x3f")
    Detector(_file("onnx/fuzz.onnx", data), threads=1)


def _model_meta(data: bytes) -> None:
    from edge_runtime.vision.model_meta import parse_model_meta

    parts = data.decode("utf-8", errors="replace").split("\x00")
    props = dict(zip(parts[0::2], parts[1::2]))
    parse_model_meta(Path("fuzz.onnx"), props)


def _shapes(data: bytes) -> None:
    """Byte 0: rank (0..4) and flags; then a signed 32-bit value per dimension and one for the class count."""
    from edge_runtime.vision import ops

    if not data:
        return
    head, rest = data[0], data[1:]
    rank = head % 5
    values = [int.from_bytes(rest[i:i + 4].ljust(4, b"\x00"), "little", signed=True) for i in range(0, 4 * (rank + 1), 4)]
    shape = tuple(values[:rank])
    num_classes = values[rank] if head & 0x08 else None
    end2end = (None, True, False, None)[(head >> 4) & 3]
    layout = ops.detect_layout(shape, num_classes, end2end, path="fuzz.onnx")
    if layout is not ops.YoloLayout.E2E:
        nc = ops.infer_num_classes(shape, layout, path="fuzz.onnx")
        if nc < 1:
            raise AssertionError(f"{shape}: {nc} classes for {layout.name}")


def _config(suffix: str) -> Callable[[bytes], None]:
    def call(data: bytes) -> None:
        from edge_runtime.runtime.config import load_config

        load_config(_file(f"fuzz{suffix}", data))

    return call


def _chat_request(data: bytes) -> None:
    from edge_runtime.llm.chat import SamplingParams
    from edge_runtime.llm.server import parse_request
    from edge_runtime.llm.tool_calls import convert_tool_messages, parse_tools, tool_result_answer

    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # the server answers these 400 before parsing (read_json)
        return
    if isinstance(body, dict):
        parse_tools(body)
        if isinstance(body.get("messages"), list):
            convert_tool_messages(body["messages"])
            tool_result_answer(body["messages"])
    parse_request(body, SamplingParams(), 16)


class _App:
    """The real ChatServer app (SmolLM2-135M, 1 token per answer) behind Starlette's TestClient."""

    client: Any = None

    @classmethod
    def post(cls, data: bytes) -> Any:
        if cls.client is None:
            from starlette.testclient import TestClient

            from edge_runtime.assets import ensure
            from edge_runtime.llm.chat import Chat
            from edge_runtime.llm.server import ChatServer, ServerConfig

            chat = Chat(ensure("smollm2-135m"), n_threads=1, n_ctx=256, temperature=0.0, max_tokens=1)
            server = ChatServer(chat, ServerConfig(port=0, max_tokens_cap=1, max_body_bytes=64 * 1024))
            cls.client = TestClient(server.app, raise_server_exceptions=True)
            cls.client.__enter__()  # lifespan: the generation worker; it ends with the process
        return cls.client.post("/v1/chat/completions", content=data, headers={"content-type": "application/json"})


class ServerError(AssertionError):
    """The chat app answered a 5xx or a body that is not JSON (a finding, not a refusal)."""


def _chat_app(data: bytes) -> None:
    response = _App.post(data)
    if response.status_code >= 500 or response.status_code not in (200, 400, 413, 429):
        raise ServerError(f"status {response.status_code}: {response.text[:300]}")
    body = response.json() if "json" in response.headers.get("content-type", "") else None
    if response.status_code == 200 and "event-stream" in response.headers.get("content-type", ""):
        return
    if not isinstance(body, dict) or (response.status_code != 200) != ("error" in body):
        raise ServerError(f"status {response.status_code} with body {response.text[:300]}")


def _link(data: bytes) -> None:
    from edge_runtime.link.protocol import FrameReader, decode_packet, encode_frame, fields

    packets = list(FrameReader().feed(data))
    for packet in packets:  # what the reader accepts re-encodes to a frame that decodes to itself
        fields(packet.payload)
        frame = encode_frame(packet)
        if decode_packet(frame[:-1]) != packet:
            raise AssertionError(f"round trip changed {packet}")
    decode_packet(data)


def _canary(data: bytes) -> None:
    """Proves the harness: a KeyError (not allowed) for input starting b"boom", a 30 s stall for b"hang"."""
    if data.startswith(b"boom"):
        raise KeyError("the canary's deliberate finding")
    if data.startswith(b"hang"):
        import time

        time.sleep(30)


def _allowed() -> Dict[str, Tuple[Type[BaseException], ...]]:
    from edge_runtime.errors import ConfigError, ModelFormatError
    from edge_runtime.link.protocol import FrameError
    from edge_runtime.llm.server import _RequestError
    from edge_runtime.llm.tool_calls import ToolRequestError

    return {"gguf": (ModelFormatError,), "onnx": (ModelFormatError,), "model_meta": (ModelFormatError,),
            "shapes": (ModelFormatError,), "config_toml": (ConfigError,), "config_yaml": (ConfigError,),
            "chat_request": (_RequestError, ToolRequestError), "chat_app": (), "link": (FrameError,),
            "canary": ()}


_CALLS: Dict[str, Callable[[bytes], Any]] = {
    "gguf": _gguf, "onnx": _onnx, "model_meta": _model_meta, "shapes": _shapes, "config_toml": _config(".toml"),
    "config_yaml": _config(".yaml"), "chat_request": _chat_request, "chat_app": _chat_app, "link": _link,
    "canary": _canary,
}
TARGETS = tuple(name for name in _CALLS if name != "canary")
#: Modules each target exercises: run.py imports them before atheris instruments the loaded code.
MODULES: Dict[str, Tuple[str, ...]] = {
    "gguf": ("numpy", "edge_runtime.llm.gguf_file"),
    "onnx": ("edge_runtime.vision.detector", "edge_runtime.vision.onnx_check", "edge_runtime.vision.ops"),
    "model_meta": ("edge_runtime.vision.model_meta",),
    "shapes": ("edge_runtime.vision.ops",),
    "config_toml": ("tomllib", "edge_runtime.runtime.config", "edge_runtime.vision.counting"),
    "config_yaml": ("yaml", "edge_runtime.runtime.config", "edge_runtime.vision.counting"),
    "chat_request": ("edge_runtime.llm.chat", "edge_runtime.llm.server", "edge_runtime.llm.tool_calls"),
    "chat_app": ("starlette.testclient", "edge_runtime.llm.server", "edge_runtime.llm.tool_calls"),
    "link": ("cobs.cobs", "edge_runtime.link.protocol"),
}


def target(name: str) -> Target:
    """The target called ``name`` (importing what it needs now, not at module import)."""
    return Target(name, _CALLS[name], _allowed()[name])


def run_one(t: Target, data: bytes) -> None:
    """One input: returns on success or a documented refusal; re-raises anything else."""
    try:
        t.call(data)
    except t.allowed:
        pass
