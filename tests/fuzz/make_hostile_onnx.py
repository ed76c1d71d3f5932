"""Write the hostile-ONNX corpus (tests/fuzz/hostile_onnx/): small models that the detector must refuse
with ModelFormatError, never a crash, a hang or a read outside the model's folder.

    python tests/fuzz/make_hostile_onnx.py          # rewrite the corpus (deterministic bytes)
    python tests/fuzz/make_hostile_onnx.py --check  # exit 1 if the committed corpus differs

Each case is built from one valid tiny YOLOv8-layout detector (input (1, 3, 64, 64), output (1, 6, 84),
two classes) with onnx's helper API, then broken in one way. MANIFEST.json maps each file to why it is
hostile and a regular expression its error message must match. Needs the ``onnx`` package (dev extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper

OUT = Path(__file__).resolve().parent / "hostile_onnx"
IR_VERSION = 8
OPSET = 13
TINY_BIN = b"\x00\x00\x80\x3f"  # one float32 1.0: the only external data file the corpus ships


def detector(in_shape: Sequence = (1, 3, 64, 64), out_shape: Sequence = (1, 6, 84), *,
             in_type: int = TensorProto.FLOAT, out_type: int = TensorProto.FLOAT, opset: int = OPSET,
             metadata: Optional[Dict[str, str]] = None, extra_inputs: int = 0,
             initializer: Optional[TensorProto] = None, nodes: Optional[List[onnx.NodeProto]] = None,
             outputs: Optional[List[onnx.ValueInfoProto]] = None, opsets: Optional[List] = None) -> onnx.ModelProto:
    """A tiny model answering a constant (out_shape) for any input; every argument breaks one thing."""
    inputs = [helper.make_tensor_value_info("images", in_type, list(in_shape))]
    inputs += [helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [1]) for i in range(extra_inputs)]
    if outputs is None:
        outputs = [helper.make_tensor_value_info("output0", out_type, list(out_shape))]
    if nodes is None:
        # The constant itself stays small: absurd declared dimensions are the declared output's alone.
        shape = [d if isinstance(d, int) and 0 <= d <= 1 << 16 else 1 for d in out_shape]
        n = int(np.prod(shape))
        value = helper.make_tensor("zeros", out_type, shape, np.zeros(n, np.float64).astype(
            helper.tensor_dtype_to_np_dtype(out_type)).tolist())
        nodes = [helper.make_node("Constant", [], ["output0"], value=value)]
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, initializer=[initializer] if initializer else [])
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", opset)],
                              producer_name="edge-runtime hostile corpus")
    model.ir_version = IR_VERSION
    for key, value in {"names": "{0: 'a', 1: 'b'}", "imgsz": "[64, 64]", "stride": "32", "task": "detect",
                       **(metadata or {})}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def external(location: str, *, offset: Optional[int] = None, length: Optional[int] = 6 * 84 * 4) -> onnx.ModelProto:
    """The valid detector, its output read from an initializer stored in `location`."""
    weights = TensorProto()
    weights.name, weights.data_type = "weights", TensorProto.FLOAT
    weights.dims.extend([1, 6, 84])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = weights.external_data.add()
            entry.key, entry.value = key, str(value)
    return detector(initializer=weights, nodes=[helper.make_node("Identity", ["weights"], ["output0"])])


def nested_ifs(depth: int) -> onnx.ModelProto:
    """If nodes nested `depth` deep (each then-branch a graph holding the next If; else a leaf: linear size)."""
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 84])
    body = helper.make_graph([helper.make_node("Constant", [], ["output0"], value=helper.make_tensor(
        "z", TensorProto.FLOAT, [1, 6, 84], [0.0] * 504))], "leaf", [], [out])
    leaf = body
    for level in range(depth):
        cond = helper.make_node("Constant", [], [f"c{level}"], value=helper.make_tensor("t", TensorProto.BOOL, [], [1]))
        node = helper.make_node("If", [f"c{level}"], ["output0"], then_branch=body, else_branch=leaf)
        body = helper.make_graph([cond, node], f"level{level}", [], [out])
    return detector(nodes=list(body.node))


def _lying_tensor() -> TensorProto:
    """An initializer whose dims promise 2^40 floats while its raw_data holds one (the helper refuses that)."""
    tensor = TensorProto()
    tensor.name, tensor.data_type, tensor.raw_data = "weights", TensorProto.FLOAT, TINY_BIN
    tensor.dims.append(1 << 40)
    return tensor


def declared_only() -> List[onnx.NodeProto]:
    """Nodes whose output shape onnxruntime cannot infer (an If on the input's values), so the graph's
    declared output shape is what the session reports."""
    def branch(rows: int) -> onnx.GraphProto:
        out = helper.make_tensor_value_info("o", TensorProto.FLOAT, None)
        value = helper.make_tensor("z", TensorProto.FLOAT, [1, rows, rows], [0.0] * rows * rows)
        return helper.make_graph([helper.make_node("Constant", [], ["o"], value=value)], f"rows{rows}", [], [out])

    return [helper.make_node("ReduceMax", ["images"], ["max"], keepdims=0),
            helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])),
            helper.make_node("Greater", ["max", "zero"], ["bright"]),
            helper.make_node("If", ["bright"], ["output0"], then_branch=branch(1), else_branch=branch(2))]


def serialized(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString(deterministic=True)


def valid() -> bytes:
    return serialized(detector())


# name -> (why it is hostile, regex its ModelFormatError must match, bytes)
Case = Tuple[str, str, Callable[[], bytes]]
CASES: Dict[str, Case] = {
    "truncated.onnx": ("the valid detector cut at 60 %", r"not a valid ONNX protobuf|truncated",
                       lambda: valid()[: len(valid()) * 6 // 10]),
    "truncated_header.onnx": ("only the first 7 bytes", r"not a valid ONNX protobuf|not an ONNX model",
                              lambda: valid()[:7]),
    "empty.onnx": ("zero bytes", r"empty file", lambda: b""),
    "text.onnx": ("a text file named .onnx", r"ONNX", lambda: b"this is not a model\n" * 20),
    "garbage.onnx": ("random bytes", r"ONNX",
                     lambda: np.random.default_rng(17).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
    "opset_99.onnx": ("ai.onnx opset 99, from the future", r"opset 99 is not supported",
                      lambda: serialized(detector(opset=99))),
    "opset_3.onnx": ("ai.onnx opset 3, older than onnxruntime supports", r"opset 3 is not supported",
                     lambda: serialized(detector(opset=3))),
    "no_default_opset.onnx": ("imports only a custom domain", r"imports no ai.onnx opset",
                              lambda: serialized(detector(opsets=[helper.make_opsetid("evil.ops", 1)]))),
    "unknown_op.onnx": ("an operator of an unknown domain", r"not a loadable ONNX model",
                        lambda: serialized(detector(
                            nodes=[helper.make_node("Exfiltrate", ["images"], ["output0"], domain="evil.ops")],
                            opsets=[helper.make_opsetid("", OPSET), helper.make_opsetid("evil.ops", 1)]))),
    "huge_input.onnx": ("input declared 1,000,000 x 1,000,000 pixels", r"1000000x1000000 pixels",
                        lambda: serialized(detector(in_shape=(1, 3, 1_000_000, 1_000_000)))),
    "huge_output.onnx": ("output declares 2^31 rows: 2^31 - 4 classes", r"dimensions 1\.\.|classes",
                         lambda: serialized(_without_names(detector(out_shape=(1, 1 << 31, 84), nodes=declared_only())))),
    "huge_classes.onnx": ("output (1, 200004, 300000) with no names: 200,000 classes", r"200000 classes",
                          lambda: serialized(_without_names(detector(out_shape=(1, 200_004, 300_000), nodes=declared_only())))),
    "huge_initializer.onnx": ("an initializer declaring 2^40 floats with 4 bytes of data", r"not a loadable ONNX",
                              lambda: serialized(detector(out_shape=(1 << 40,), initializer=_lying_tensor(), nodes=[
                                  helper.make_node("Identity", ["weights"], ["output0"])]))),
    "classifier.onnx": ("an ImageNet-style classifier, output (1, 1000)", r"fits no YOLO layout|expected",
                        lambda: serialized(_without_names(detector(out_shape=(1, 1000))))),
    "two_inputs.onnx": ("a second input", r"expected one image input", lambda: serialized(detector(extra_inputs=1))),
    "input_rank3.onnx": ("input (3, 64, 64)", r"expected \(1, 3, H, W\)",
                         lambda: serialized(detector(in_shape=(3, 64, 64)))),
    "input_batch4.onnx": ("a fixed batch of 4", r"batch is 4", lambda: serialized(detector(in_shape=(4, 3, 64, 64)))),
    "zero_size_input.onnx": ("input (1, 3, 0, 0)", r"0x0 pixels", lambda: serialized(detector(in_shape=(1, 3, 0, 0)))),
    "zero_size_output.onnx": ("output (1, 6, 0)", r"dimensions 1\.\.", lambda: serialized(detector(out_shape=(1, 6, 0)))),
    "input_int64.onnx": ("an int64 image input", r"tensor\(int64\), expected float32 or uint8",
                         lambda: serialized(detector(in_type=TensorProto.INT64))),
    "input_float16.onnx": ("a float16 image input", r"tensor\(float16\), expected float32 or uint8",
                           lambda: serialized(detector(in_type=TensorProto.FLOAT16))),
    "output_int32.onnx": ("int32 output", r"tensor\(int32\), expected float32",
                          lambda: serialized(detector(out_type=TensorProto.INT32))),
    "names_unhashable.onnx": ("metadata names {[1]: 'a'} (a literal that cannot be built)", r"'names' is not a literal",
                              lambda: serialized(detector(metadata={"names": "{[1]: 'a'}"}))),
    "names_deep.onnx": ("metadata names nested 100,000 brackets deep", r"'names'",
                        lambda: serialized(detector(metadata={"names": "[" * 100_000}))),
    "names_code.onnx": ("metadata names that is code", r"'names' is not a literal",
                        lambda: serialized(detector(metadata={"names": "__import__('os').system('true')"}))),
    "imgsz_huge.onnx": ("dynamic input, metadata imgsz 10^9", r"'imgsz'", lambda: serialized(detector(
        in_shape=(1, 3, "h", "w"), metadata={"imgsz": "[10**9, 10**9]"}))),
    "metadata_not_utf8.onnx": ("a metadata value that is not UTF-8 (onnxruntime's str conversion fails)",
                               r"not UTF-8", lambda: serialized(detector(metadata={"author": "NOT-UTF8"})).replace(
                                   b"NOT-UTF8", b"\xe0\xe0\xff\xfe\xe0\xe0\xff\xfe")),
    "stride_zero.onnx": ("metadata stride 0", r"'stride' must be 1\.\.256", lambda: serialized(detector(
        metadata={"stride": "0"}))),
    "task_pose.onnx": ("a pose model's task", r"task is 'pose'", lambda: serialized(detector(metadata={"task": "pose"}))),
    "nested_if_19.onnx": ("If subgraphs nested 19 deep (about 58 protobuf messages)", r"nested more than 48 deep",
                          lambda: serialized(nested_ifs(19))),
    "external_parent.onnx": ("external data at ../../etc/passwd", r"climbs out with '\.\.'",
                             lambda: serialized(external("../../etc/passwd"))),
    "external_parent_inner.onnx": ("external data at sub/../../secret.bin", r"climbs out with '\.\.'",
                                   lambda: serialized(external("sub/../../secret.bin"))),
    "external_backslash.onnx": ("external data at ..\\..\\etc\\passwd", r"climbs out with '\.\.'",
                                lambda: serialized(external("..\\..\\etc\\passwd"))),
    "external_absolute.onnx": ("external data at /etc/passwd", r"is absolute", lambda: serialized(external("/etc/passwd"))),
    "external_drive.onnx": ("external data at C:\\Windows\\win.ini", r"is absolute",
                            lambda: serialized(external("C:\\Windows\\win.ini"))),
    "external_missing.onnx": ("external data in a file that does not exist", r"missing or not a regular file",
                              lambda: serialized(external("weights_absent.bin"))),
    "external_no_location.onnx": ("external data without a location", r"names no location",
                                  lambda: serialized(external(""))),
    "external_overlong.onnx": ("2^40 bytes from tiny.bin (4 bytes)", r"run past its end",
                               lambda: serialized(external("tiny.bin", length=1 << 40))),
    "external_offset.onnx": ("offset 2^62 into tiny.bin", r"run past its end",
                             lambda: serialized(external("tiny.bin", offset=1 << 62, length=4))),
    "external_bad_offset.onnx": ("offset '-1'", r"not a byte count", lambda: serialized(external("tiny.bin", offset=-1))),
}


def _without_names(model: onnx.ModelProto) -> onnx.ModelProto:
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != "names"]
    del model.metadata_props[:]
    for key, value in keep:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def build() -> Dict[str, bytes]:
    """Every corpus file's bytes, by name (MANIFEST.json and tiny.bin included)."""
    files = {name: make() for name, (_, _, make) in CASES.items()}
    files["tiny.bin"] = TINY_BIN
    files["MANIFEST.json"] = (json.dumps({name: {"why": why, "match": match} for name, (why, match, _) in CASES.items()},
                                         indent=1, sort_keys=True) + "\n").encode()
    return files


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed corpus, write nothing")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        present = {p.name for p in args.out.iterdir()} if args.out.is_dir() else set()
        differ = sorted(n for n, data in files.items() if not (args.out / n).is_file() or (args.out / n).read_bytes() != data)
        extra = sorted(present - set(files))
        if differ or extra:
            print(f"hostile corpus out of date: differ {differ}, not generated {extra}", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    print(f"wrote {len(files)} files to {args.out} ({sum(map(len, files.values()))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
