"""Write the fuzzers' seed corpora (tests/fuzz/corpus/<target>/): small valid inputs and a few hostile ones.

    python tests/fuzz/make_seeds.py           # rewrite (deterministic bytes)
    python tests/fuzz/make_seeds.py --check   # exit 1 if the committed seeds differ

Needs the dev extra (gguf, onnx).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "corpus"


def gguf_seeds() -> Dict[str, bytes]:
    import gguf

    out = {}
    for name, arrays in (("small", False), ("arrays", True)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.gguf"
            w = gguf.GGUFWriter(path, arch="llama")
            w.add_context_length(64)
            w.add_block_count(1)
            w.add_token_list(["<s>", "</s>", "a"])
            if arrays:
                w.add_array("test.ints", [1, 2, 3])
                w.add_array("test.nested", [[1, 2], [3]])
            w.add_tensor("token_embd.weight", gguf.quants.quantize(np.ones((2, 32), np.float32),
                                                                 gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor("output_norm.weight", np.arange(8, dtype=np.float32))
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            out[f"{name}.gguf"] = path.read_bytes()
    return out


def onnx_seeds() -> Dict[str, bytes]:
    sys.path.insert(0, str(HERE))
    import make_hostile_onnx as h

    out = {"valid.onnx": h.valid(), "external.onnx": h.serialized(h.external("tiny.bin", length=4))}
    for name in ("opset_99.onnx", "classifier.onnx", "external_parent.onnx", "names_unhashable.onnx",
                 "huge_output.onnx", "truncated.onnx"):
        out[name] = h.CASES[name][2]()
    # Inputs the fuzzer once found crashing the target, kept as seeds so the fix stays proven.
    out["non-utf8-input-name"] = (HERE / "regressions" / "onnx-non-utf8-input-name").read_bytes()
    return out


def model_meta_seeds() -> Dict[str, bytes]:
    def pairs(**kv: str) -> bytes:
        return "\x00".join(f"{k}\x00{v}" for k, v in kv.items()).encode()

    return {
        "ultralytics": pairs(names="{0: 'person', 1: 'bicycle', 2: 'car'}", imgsz="[640, 640]", stride="32",
                             task="detect", args="{'batch': 1, 'nms': False, 'imgsz': 640}"),
        "end2end": pairs(names="['a', 'b']", imgsz="320", end2end="True"),
        "bad": pairs(names="{0: 'a', 2: 'c'}", imgsz="[1, 99999]", stride="x"),
    }


def shape_seeds() -> Dict[str, bytes]:
    """See targets._shapes: a head byte (rank, flags), then int32 dimensions and a class count."""
    def seed(shape, nc=None, end2end=None) -> bytes:
        head = len(shape) | (0x08 if nc is not None else 0) | ({None: 0, True: 1, False: 2}[end2end] << 4)
        return bytes([head]) + b"".join(int(v).to_bytes(4, "little", signed=True) for v in (*shape, nc or 0))

    return {"v8": seed((1, 84, 8400)), "v5": seed((1, 25200, 85), 80), "e2e": seed((1, 300, 6), None, True),
            "dynamic": seed((1, -1, -1), 2, False)}


def config_seeds() -> Dict[str, Dict[str, str]]:
    full = {
        "source": {"uri": "builtin:vtest-video", "mode": "every", "fps_cap": 10.0, "motion_gate": True},
        "model": {"path": "builtin:yolov8s-person", "classes": [0], "labels": ["person", "fallen person"],
                  "conf": 0.3},
        "tracker": {"high_score": 0.4, "low_score": 0.1, "min_hits": 2},
        "lines": [{"name": "walkway", "start": [400, 400], "end": [400, 150], "trigger": "box"}],
        "zones": [{"name": "door", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]], "return_s": 2.0}],
        "output": {"db": "", "print_every_s": 0.0, "interval_s": 60.0},
        "budget": {"cores": 2, "policy": "fair", "min_fps": 2.0},
        "chat": {"enabled": True, "port": 8080, "timezone": "Europe/Berlin"},
        "mqtt": {"enabled": False, "qos": 1, "topic_prefix": "site/a"},
        "links": [{"device": "socket://127.0.0.1:7000", "baud": 115200}],
    }
    toml = {
        "default.toml": ('[source]\nuri = "builtin:vtest-video"\n\n[model]\npath = "builtin:yolov8s-person"\n'
                         'classes = [0]\n\n[[lines]]\nname = "walkway"\nstart = [400, 400]\nend = [400, 150]\n'),
        "full.toml": _toml(full),
        "typo.toml": '[source]\nuri = "x"\nfps_capp = 3\n[[zones]]\nname = "z"\npolygon = [[0, 0], [1, 1], [0, 1], [1, 0]]\n',
    }
    import yaml

    yml = {
        "full.yaml": yaml.safe_dump(full, sort_keys=True),
        "anchors.yaml": "a: &a {name: x, start: [0, 0], end: [1, 1]}\nlines: [*a, *a]\n",
        "types.yaml": "source: {uri: 2026-12-04, fps_cap: .inf}\nmodel: {classes: !!set {1, 2}}\n",
    }
    return {"config_toml": toml, "config_yaml": yml}


def _toml(table: dict) -> str:
    """A small TOML writer for the seed (tables, arrays of tables, scalars and arrays)."""
    lines: List[str] = []
    for key, value in table.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            lines.append(f"[[{key}]]" if isinstance(value, list) else f"[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in item.items()]
            lines.append("")
    return "\n".join(lines)


def chat_seeds() -> Dict[str, bytes]:
    bodies = {
        "simple.json": {"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
        "sampling.json": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [
            {"type": "text", "text": "How many?"}]}], "temperature": 0.5, "top_p": 0.9, "max_tokens": 8,
            "stop": ["\n"], "seed": 7, "stream": True, "stream_options": {"include_usage": True}},
        "tools.json": {"messages": [{"role": "user", "content": "How many people crossed?"}], "tools": [
            {"type": "function", "function": {"name": "count_crossings", "parameters": {
                "type": "object", "properties": {"line": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "count_crossings"}}},
        "tool_result.json": {"messages": [
            {"role": "user", "content": "How many?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "counts", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"tool": "counts", "answer": "3 people."})}]},
        "bad_role.json": {"messages": [{"role": "robot", "content": "x"}], "n": 2},
        # Found by the chat_app fuzzer: a schema llama.cpp's grammar converter rejects (was a 500), and one
        # it would expand into gigabytes of grammar.
        "bad_schema.json": {"messages": [{"role": "user", "content": "x"}], "tool_choice": "required", "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "stri]g"}}}]},
        "huge_schema.json": {"messages": [{"role": "user", "content": "x"}], "tool_choice": "required", "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {
                "type": "array", "items": {"type": "string"}, "minItems": 100000000}}}]},
    }
    return {name: json.dumps(body, sort_keys=True).encode() for name, body in bodies.items()}


def link_seeds() -> Dict[str, bytes]:
    from edge_runtime.link.protocol import Packet, Type, encode_frame, join_fields

    frames = [Packet(Type.HELLO, 1, 1, join_fields(["node-1", "1.0", "4"])),
              Packet(Type.COUNTS_Q, 2, 1, join_fields(["r1", "walkway", "3600"])),
              Packet(Type.ASK, 3, 5, "How many people crossed today?".encode()),
              Packet(Type.SENSOR, 4, 0, join_fields(["temp", "21.5"])), Packet(Type.PING, 5, 0, b"\x00\xff" * 60)]
    stream = b"".join(encode_frame(p) for p in frames)
    return {"stream.bin": stream, "noisy.bin": b"\x13\x37" + stream[:40] + b"\x00\x00" + stream[40:],
            "one.bin": encode_frame(frames[1])[:-1]}


def build() -> Dict[str, Dict[str, bytes]]:
    configs = config_seeds()
    seeds = {"gguf": gguf_seeds(), "onnx": onnx_seeds(), "model_meta": model_meta_seeds(), "shapes": shape_seeds(),
             "config_toml": {k: v.encode() for k, v in configs["config_toml"].items()},
             "config_yaml": {k: v.encode() for k, v in configs["config_yaml"].items()},
             "chat_request": chat_seeds(), "chat_app": chat_seeds(), "link": link_seeds(),
             "canary": {"ok": b"fine"}}
    return seeds


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    seeds = build()
    if args.check:
        bad = [f"{t}/{n}" for t, files in seeds.items() for n, data in files.items()
               if not (OUT / t / n).is_file() or (OUT / t / n).read_bytes() != data]
        extra = [str(p.relative_to(OUT)) for p in OUT.glob("*/*") if p.name not in seeds.get(p.parent.name, {})]
        if bad or extra:
            print(f"seed corpora out of date: differ {bad}, not generated {extra}", file=sys.stderr)
            return 1
        return 0
    for t, files in seeds.items():
        (OUT / t).mkdir(parents=True, exist_ok=True)
        for n, data in files.items():
            (OUT / t / n).write_bytes(data)
    total = sum(len(d) for f in seeds.values() for d in f.values())
    digest = hashlib.sha256(b"".join(d for f in seeds.values() for d in f.values())).hexdigest()[:12]
    print(f"wrote {sum(map(len, seeds.values()))} seeds ({total} bytes, sha256 {digest}) to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
