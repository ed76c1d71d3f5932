"""GGUF block quantizers: edge-runtime's native Q8_0 / Q4_0 / Q4_1 vs gguf-py's NumPy quantizers.

Question: how much faster do we quantize (and dequantize) a real weight tensor than gguf-py, the
reference of llama.cpp's Python tools, while producing the same bytes?

Input: SmolLM2-135M's token embedding (Q8_0 in the shipped GGUF), dequantized once to float32 and cut
to ``--rows`` rows (default 16384 x 576 = 37.7 MB, well beyond the caches). Both sides get the same
C-contiguous float32 array; every timed pair is preceded by a byte-equality check (harness.compare).

Reported (benchmarks/results/quant.json), per type: the speed ratio gguf-py time / our time (median, p10,
p90) on 1 thread and on ``--threads`` threads, our and gguf-py's throughput in GB/s of float32 input,
and that throughput as a fraction of the machine's copy bandwidth measured in the same run (a float32
array copied with NumPy: what a pass that reads and writes every byte costs); the same for dequantization
(GB/s of float32 output).

Run: ``python -m benchmarks.bench_quant [--rows 16384] [--repeats 15] [--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Dict, List

import numpy as np

from benchmarks.harness import compare, write_result
from edge_runtime import reference
from edge_runtime.assets import ensure
from edge_runtime.llm.gguf_file import GGMLType, GGUFFile
from edge_runtime.llm.quant import QuantType, dequantize, quantize


def load_embedding(rows: int) -> np.ndarray:
    """(rows, 576) float32: the first rows of SmolLM2's token embedding, dequantized by gguf-py."""
    with GGUFFile.open(ensure("smollm2-135m")) as f:
        info = f.tensors["token_embd.weight"]
        if info.ggml_type != GGMLType.Q8_0:
            raise SystemExit(f"expected a Q8_0 token embedding, found {info.ggml_type.name}")
        stored = np.array(f.tensor("token_embd.weight")[:rows])
    return np.ascontiguousarray(reference.dequantize_blocks(stored, QuantType.Q8_0))


def copy_bandwidth_gbs(x: np.ndarray, repeats: int) -> float:
    """GB/s of float32 moved by a NumPy copy of x (bytes read; the same are written)."""
    out = np.empty_like(x)
    samples: List[float] = []
    for _ in range(repeats + 2):
        t0 = time.perf_counter()
        np.copyto(out, x)
        samples.append(time.perf_counter() - t0)
    return x.nbytes / statistics.median(samples[2:]) / 1e9


def assert_same(cand: np.ndarray, base: np.ndarray) -> None:
    if cand.shape != base.shape or cand.dtype != base.dtype or not np.array_equal(cand.view(np.uint8), base.view(np.uint8)):
        raise AssertionError("outputs differ: the benchmark would compare different work")


SAME_BYTES = "every output byte equal (quantized blocks), or every dequantized float equal: tolerance 0"


def main(argv: Any = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384, help="rows of the 576-wide embedding (max 49152)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2, help="thread count for the multi-threaded figures")
    args = parser.parse_args(argv)

    x = load_embedding(args.rows)
    copy_gbs = copy_bandwidth_gbs(x, args.repeats)
    print(f"input {x.shape} float32 ({x.nbytes / 1e6:.1f} MB); NumPy copy bandwidth {copy_gbs:.2f} GB/s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    results: Dict[str, Any] = {}
    for qtype in (QuantType.Q8_0, QuantType.Q4_0, QuantType.Q4_1):
        baseline = lambda: reference.quantize_blocks(x, qtype)  # noqa: E731
        one = compare(f"quantize {qtype.name}, 1 thread", lambda: quantize(x, qtype), baseline,
                      check=assert_same, compared=SAME_BYTES, repeats=args.repeats)
        many = compare(f"quantize {qtype.name}, {args.threads} threads", lambda: quantize(x, qtype, threads=args.threads),
                       baseline, check=assert_same, compared=SAME_BYTES, repeats=args.repeats)
        q = quantize(x, qtype)
        deq = compare(f"dequantize {qtype.name}, 1 thread", lambda: dequantize(q, qtype),
                      lambda: reference.dequantize_blocks(q, qtype), check=assert_same, compared=SAME_BYTES, repeats=args.repeats)
        for r in (one, many):
            r["candidate_gbs"] = x.nbytes / (r["candidate_ms_median"] / 1e3) / 1e9
            r["baseline_gbs"] = x.nbytes / (r["baseline_ms_median"] / 1e3) / 1e9
            r["candidate_fraction_of_copy_bandwidth"] = r["candidate_gbs"] / copy_gbs
        deq["candidate_gbs"] = x.nbytes / (deq["candidate_ms_median"] / 1e3) / 1e9
        deq["baseline_gbs"] = x.nbytes / (deq["baseline_ms_median"] / 1e3) / 1e9
        results[qtype.name] = {"quantize_1_thread": one, f"quantize_{args.threads}_threads": many, "dequantize_1_thread": deq}

    print("\n| type | quantize x (1 thr) p10-p90 | ours GB/s | gguf-py GB/s | of copy bw | "
          f"x ({args.threads} thr) | dequantize x |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        one, many, deq = r["quantize_1_thread"], r[f"quantize_{args.threads}_threads"], r["dequantize_1_thread"]
        print(f"| {name} | {one['speedup_median']:.1f} ({one['speedup_p10']:.1f}-{one['speedup_p90']:.1f}) | "
              f"{one['candidate_gbs']:.2f} | {one['baseline_gbs']:.2f} | "
              f"{100 * one['candidate_fraction_of_copy_bandwidth']:.0f}% | {many['speedup_median']:.1f} | "
              f"{deq['speedup_median']:.1f} |")
    # Other processes on the machine stretch short calls (ours) more than long ones (gguf-py's) when a
    # time slice lands inside them; the load average says how much to trust the ratios.
    payload = {"question": "native GGUF block quantizers vs gguf-py (same bytes), real SmolLM2 embedding",
               "input_shape": list(x.shape), "copy_bandwidth_gbs": copy_gbs,
               "load_average_1_5_15": list(os.getloadavg()), "results": results}
    path = write_result("quant", payload, threads=1)
    print(f"\nwritten {path}")
    return payload


if __name__ == "__main__":
    main()
