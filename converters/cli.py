"""``edge-runtime convert torch | transformer | mtcnn | gguf | llm-onnx``: the converters from the command line.

Each run ends in verification and writes a report (``*.report.json`` / ``*.report.md``) next to the
models; a failed check exits with status 2 and leaves no model file behind.

Examples::

    edge-runtime convert transformer ~/models/all-MiniLM-L6-v2 --out-dir out/
    edge-runtime convert mtcnn --out-dir out/                      # weights and photos from the assets
    edge-runtime convert torch --module mypkg.nets:Net --weights net.pt --input image=1x3x64x64 \\
        --dynamic image:0=batch:1:32 --out net.onnx
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

from edge_runtime.errors import ConfigError

__all__ = ["configure_parser", "run_command"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``convert`` sub-commands and their options to ``parser``."""
    sub = parser.add_subparsers(dest="convert_kind", metavar="KIND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for verification and latency")
    common.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")

    t = sub.add_parser("torch", parents=[common], help="a PyTorch module + state dict -> verified ONNX fp32")
    t.add_argument("--module", required=True, help="module class as 'package.module:Class' (built with no arguments)")
    t.add_argument("--weights", required=True, type=Path, help="state dict saved with torch.save")
    t.add_argument("--input", action="append", required=True, metavar="NAME=1x3x64x64[:dtype]",
                   help="an input's name and example shape (repeat per input; dtype default float32)")
    t.add_argument("--dynamic", action="append", default=[], metavar="NAME:AXIS=SYMBOL[:MIN:MAX]",
                   help="a dynamic axis, e.g. image:0=batch:1:32 (axes sharing a symbol are equal)")
    t.add_argument("--output-names", default="", help="comma-separated output names")
    t.add_argument("--max-abs-err", type=float, default=1e-4, help="bound against PyTorch (default 1e-4)")
    t.add_argument("--out", required=True, type=Path, help="the .onnx file to write")

    h = sub.add_parser("transformer", parents=[common],
                       help="a Hugging Face encoder dir -> ONNX fp32, dynamic int8 and 4-bit, with a report")
    h.add_argument("model_dir", type=Path, help="directory with config.json, *.safetensors, tokenizer.json")
    h.add_argument("--out-dir", required=True, type=Path)
    h.add_argument("--stem", default=None, help="output file stem (default: the directory's name)")
    h.add_argument("--no-int8", action="store_true", help="skip dynamic int8")
    h.add_argument("--no-q4", action="store_true", help="skip 4-bit")
    h.add_argument("--block-size", type=int, default=32, help="4-bit block size along K (power of two >= 16)")
    h.add_argument("--accuracy-level", type=int, default=4, choices=range(5),
                   help="MatMulNBits compute type: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 (default)")
    h.add_argument("--int8-target", type=float, default=0.995, help="min sentence cosine vs PyTorch for int8")
    h.add_argument("--q4-target", type=float, default=0.985, help="min sentence cosine vs PyTorch for 4-bit")
    h.add_argument("--fallback-bits", type=int, default=8, choices=(8, 32),
                   help="4-bit fallback nodes become 8-bit (default) or stay fp32")
    h.add_argument("--no-smooth", action="store_true", help="do not move activation outliers into weights")

    m = sub.add_parser("mtcnn", parents=[common], help="MTCNN PNet/RNet/ONet -> ONNX fp32 + calibrated int8")
    m.add_argument("--weights-dir", type=Path, default=None,
                   help="dir with pnet.pt rnet.pt onet.pt (default: the 'mtcnn' asset)")
    m.add_argument("--out-dir", required=True, type=Path)
    m.add_argument("--calibration", nargs="+", type=Path, default=None,
                   help="calibration photos (default: the 'skimage-photos' camera, chelsea, coffee)")
    m.add_argument("--eval", nargs="+", type=Path, default=None,
                   help="evaluation photos, kept apart from calibration (default: astronaut)")
    m.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"))

    from .yolo_int8 import configure_yolo_parser

    configure_yolo_parser(sub)

    g = sub.add_parser("gguf", help="a HF Llama/Qwen2/BERT dir or a GGUF -> GGUF f32/f16/q8_0/q4_0/q4_1 or a K-quant")
    g.add_argument("src", type=Path, help="HF checkpoint dir (config.json, *.safetensors, tokenizer.json) or a .gguf")
    g.add_argument("--out", required=True, type=Path, help="the .gguf file to write")
    g.add_argument("--type", default="f16", help="f32, f16, q8_0, q4_0, q4_1 (ours) or Q4_K_M, Q5_K_M, Q6_K ... (llama.cpp)")
    g.add_argument("--tokenizer-pre", default=None, help="llama.cpp pre-tokenizer name when the hash is unknown")
    g.add_argument("--allow-requantize", action="store_true", help="K-quant a GGUF that is already quantized")
    g.add_argument("--threads", type=int, default=1, help="quantizer threads")

    o = sub.add_parser("llm-onnx", parents=[common], help="a HF Llama dir or GGUF -> ONNX decoder fp32 + 4-bit, with a report")
    o.add_argument("src", type=Path, help="HF Llama checkpoint dir or a llama .gguf")
    o.add_argument("--out-dir", required=True, type=Path)
    o.add_argument("--stem", default=None, help="output file stem (default: the source's name)")
    o.add_argument("--block-size", type=int, default=32, help="4-bit block size along K")
    o.add_argument("--accuracy-level", type=int, default=4, choices=range(5), help="MatMulNBits compute type")
    o.add_argument("--lm-head-bits", type=int, default=8, choices=(4, 8, 32), help="LM head bits (32 = float)")
    o.add_argument("--compare-gguf", type=Path, default=None, help="GGUF of the same weights to compare with")


def _parse_inputs(specs: List[str]) -> Dict[str, np.ndarray]:
    out = {}
    for spec in specs:
        match = re.fullmatch(r"([A-Za-z_][\w.]*)=(\d+(?:x\d+)*)(?::(\w+))?", spec)
        if not match:
            raise ConfigError(f"convert torch: --input {spec!r}: expected NAME=1x3x64x64[:dtype]")
        name, dtype = match.group(1), match.group(3) or "float32"
        shape = tuple(int(d) for d in match.group(2).split("x"))
        try:
            np_dtype = np.dtype(dtype)
        except TypeError as exc:
            raise ConfigError(f"convert torch: --input {spec!r}: unknown dtype {dtype!r}") from exc
        rng = np.random.default_rng(0)
        if np_dtype.kind == "f":
            out[name] = rng.uniform(-1, 1, size=shape).astype(np_dtype)
        else:
            out[name] = rng.integers(0, 2, size=shape).astype(np_dtype)
    return out


def _parse_dynamic(specs: List[str]):
    from .torch_export import Axis

    axes: Dict[str, Dict[int, Axis]] = {}
    for spec in specs:
        match = re.fullmatch(r"([A-Za-z_][\w.]*):(\d+)=([A-Za-z_]\w*)(?::(\d+):(\d+))?", spec)
        if not match:
            raise ConfigError(f"convert torch: --dynamic {spec!r}: expected NAME:AXIS=SYMBOL[:MIN:MAX]")
        lo = int(match.group(4)) if match.group(4) else 1
        hi = int(match.group(5)) if match.group(5) else None
        axes.setdefault(match.group(1), {})[int(match.group(2))] = Axis(match.group(3), lo, hi)
    return axes


def _load_class(spec: str):
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"convert torch: --module {spec!r}: expected 'package.module:Class'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"convert torch: --module {spec!r} cannot be imported: {exc}") from exc


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen converter; print where the models and the report went."""
    kind = args.convert_kind
    if kind == "yolo":
        from .yolo_int8 import run_yolo_command

        return run_yolo_command(args)
    if kind == "torch":
        from .torch_export import export_torch
        from .verify import Bound

        inputs = _parse_inputs(args.input)
        result = export_torch((args.weights, _load_class(args.module)), tuple(inputs.values()), args.out,
                              input_names=list(inputs),
                              output_names=[n for n in args.output_names.split(",") if n] or None,
                              opset=args.opset, dynamic_axes=_parse_dynamic(args.dynamic),
                              bound=Bound(max_abs_err=args.max_abs_err), threads=args.threads)
        worst = max(m.max_abs_err for m in result.metrics)
        print(f"{result.path}: {result.size_bytes / 1e6:.2f} MB, max |err| vs PyTorch {worst:.3g} over "
              f"{len(result.checked_shapes)} inputs")
        return 0
    if kind == "transformer":
        from .transformer_export import convert_transformer

        report = convert_transformer(args.model_dir, args.out_dir, stem=args.stem, int8=not args.no_int8,
                                     q4=not args.no_q4, block_size=args.block_size, accuracy_level=args.accuracy_level,
                                     int8_target=args.int8_target, q4_target=args.q4_target,
                                     fallback_bits=args.fallback_bits, smooth=not args.no_smooth, opset=args.opset,
                                     threads=args.threads, quiet=args.quiet)
        stem = args.stem or Path(args.model_dir).name
    elif kind == "gguf":
        from .gguf_requant import convert_gguf

        done = convert_gguf(args.src, args.out, args.type, threads=args.threads,
                            tokenizer_pre=args.tokenizer_pre, allow_requantize=args.allow_requantize)
        print(f"{done['path']}: {done['type']}, {done['size_bytes'] / 1e6:.2f} MB ({done['route']})")
        return 0
    elif kind == "llm-onnx":
        from .llm_onnx import convert_llm_onnx

        report = convert_llm_onnx(args.src, args.out_dir, stem=args.stem, block_size=args.block_size,
                                  accuracy_level=args.accuracy_level, lm_head_bits=args.lm_head_bits,
                                  compare_gguf=args.compare_gguf, threads=args.threads)
        stem = args.stem or Path(args.src).stem.split(".")[0]
    elif kind == "mtcnn":
        from edge_runtime.assets import ensure

        from .mtcnn_convert import convert_mtcnn

        weights = args.weights_dir or ensure("mtcnn")
        photos = None if (args.calibration and args.eval) else ensure("skimage-photos")
        calibration = args.calibration or [photos / n for n in ("camera.png", "chelsea.png", "coffee.png")]
        evaluation = args.eval or [photos / "astronaut.png"]
        report = convert_mtcnn(weights, args.out_dir, calibration_images=calibration, eval_images=evaluation,
                               method=args.method, threads=args.threads, quiet=args.quiet)
        stem = "mtcnn"
    else:  # pragma: no cover - argparse restricts the choices
        raise ConfigError(f"convert: unknown kind {kind!r}")
    for entry in report.models:
        lat = f"{entry.latency.median_ms:.2f} ms" if entry.latency else "-"
        print(f"{entry.name:12s} {entry.scheme.value:18s} {entry.size_bytes / 1e6:8.2f} MB  {lat}")
    for warning in report.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report: {Path(args.out_dir) / (stem + '.report.md')}")
    return 0
