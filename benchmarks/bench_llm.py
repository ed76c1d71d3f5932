"""Local LLM: decode speed of our Chat path vs llama.cpp's own llama-bench, and where the ceiling is.

Questions, all on SmolLM2-135M-Instruct (the shipped Q4_1 GGUF) and the same CPU:

1. Decode tokens/s of ``edge_runtime.llm.chat.Chat`` (our token loop over llama-cpp-python, sampling
   and detokenizing included) vs ``llama-bench -n N -d P`` (llama.cpp's C++ loop, no sampling), at 1
   and 2 threads, with flash attention on in both and llama-bench decoding at the KV depth P of our
   prompt (without ``-d`` it would decode into an empty cache, a shorter context than any answer
   has). llama-bench is built from the llama.cpp sources inside the llama-cpp-python sdist of the
   installed version (same code as the library we call), cached under ``build/llama-bench/VERSION/``.
   Runs are interleaved (ours, theirs, ours, ...) so a busy moment hits both; the ratio ours/theirs
   is reported per pair (median, p10, p90). Target: >= 0.97. Both our paths are measured: greedy
   (temperature 0, our own token loop) and sampled with the CLI's defaults (temperature 0.7, repeat
   penalty 1.1: llama.cpp's sampler chain on the candidates that can win, ``token_loop.CandidateSampler``),
   interleaved with the same llama-bench runs. llama-bench prints no text, so before timing both paths'
   text is checked identical to llama-cpp-python's own chat path (same prompt, settings and seed).
2. The memory-bandwidth bound: a read-only reduction over a 256 MiB array gives GB/s read (a copy's
   rate is recorded too, but it also writes); a decoded token reads every weight once (the tied
   embedding is the output matrix), so bound = read GB/s / GGUF tensor bytes.
3. Time to first token for a ~100-token prompt (our Chat stats), interleaved with llama-bench pp100
   runs (its prompt time plus one decoded token, for reference).
4. Peak RSS of this process (our Chat, the Python interpreter included) and of a llama-bench
   decode run (its VmHWM).
5. Optional (``--onnx``): the same weights as a 4-bit ONNX decoder (converters.llm_onnx, from the GGUF
   itself) - next-token logits against llama.cpp and greedy tokens/s on 1 thread.

Run: ``python -m benchmarks.bench_llm [--repeats 25] [--tokens 128] [--threads 1 2] [--onnx]``
Writes ``benchmarks/results/llm.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from benchmarks.harness import percentile, write_result
from edge_runtime.assets import ensure

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Write a long, detailed story about a lighthouse keeper who counts the ships that pass each night."


# ------------------------------------------------------------------------------------- llama-bench

def llama_cpp_version() -> str:
    from importlib import metadata

    return metadata.version("llama_cpp_python")


def build_llama_bench(version: str) -> Path:
    """llama-bench from the llama-cpp-python ``version`` sdist; built once, cached under build/."""
    cache = ROOT / "build" / "llama-bench" / version
    binary = cache / "llama-bench"
    if binary.is_file():
        return binary
    cmake = shutil.which("cmake")
    if cmake is None:
        raise SystemExit("bench_llm: cmake is needed to build llama-bench (apt-get install cmake)")
    with tempfile.TemporaryDirectory(prefix="llama-bench-") as tmp:
        work = Path(tmp)
        print(f"bench_llm: fetching the llama-cpp-python {version} sdist", file=sys.stderr)
        # --no-build-isolation: pip only reads the sdist's metadata with the venv's scikit-build-core,
        # instead of building cmake itself from source (which --no-binary :all: would otherwise do).
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation",
                        "--no-binary", ":all:", f"llama-cpp-python=={version}", "-d", str(work)], check=True)
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
            tar.extractall(work, members=members, filter="data")
        src = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        bdir = work / "build"
        print("bench_llm: building llama-bench (a few minutes)", file=sys.stderr)
        subprocess.run([cmake, "-S", str(src), "-B", str(bdir), "-DCMAKE_BUILD_TYPE=Release",
                        "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                        "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cmake, "--build", str(bdir), "--target", "llama-bench", "-j", str(os.cpu_count() or 1)],
                       check=True, stdout=subprocess.DEVNULL)
        built = next(p for p in bdir.rglob("llama-bench") if p.is_file())  # not the tools/llama-bench dir
        cache.mkdir(parents=True, exist_ok=True)
        tmp_bin = cache / ".llama-bench.tmp"
        shutil.copy2(built, tmp_bin)
        os.replace(tmp_bin, binary)
    return binary


def run_llama_bench(binary: Path, model: Path, *, threads: int, n_gen: int = 0, n_prompt: int = 0,
                    n_depth: int = 0) -> Dict[str, Any]:
    """One llama-bench test (``-r 1``, its own warm-up run first); returns its JSON record.

    ``n_depth`` tokens are put in the KV cache before the test (``-d``), so a decode test runs at the
    same context length as a chat answer that follows an ``n_depth``-token prompt. Flash attention is
    on, as in :class:`~edge_runtime.llm.chat.Chat`.
    """
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "-p", str(n_prompt), "-n", str(n_gen),
           "-d", str(n_depth), "-fa", "on", "-r", "1", "-o", "json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    records = json.loads(out)
    if len(records) != 1:
        raise SystemExit(f"bench_llm: llama-bench printed {len(records)} records, expected 1: {out[:300]}")
    return records[0]


def llama_bench_peak_rss_mb(binary: Path, model: Path, *, threads: int, n_gen: int, n_depth: int) -> float:
    """Peak RSS (MiB) of one llama-bench decode run: its VmHWM, polled from /proc until it exits.

    Not ``RUSAGE_CHILDREN``: Linux carries a process's peak RSS across ``exec``, so a child spawned
    from this process reports at least this process's own peak (the Python, NumPy and chat model).
    VmHWM belongs to the address space the exec created, so it is llama-bench's alone.
    """
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(n_gen),
           "-d", str(n_depth), "-fa", "on", "-r", "1", "-o", "json"]
    peak_kb = 0
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):  # exiting between poll() and the read
                pass
            time.sleep(0.01)
    if proc.returncode != 0 or peak_kb == 0:
        raise SystemExit(f"bench_llm: llama-bench exited with {proc.returncode} (peak RSS {peak_kb} kB read)")
    return peak_kb / 1024


# -------------------------------------------------------------------------------------- our path

#: The sampled path as the CLI and server use it by default (SamplingParams defaults).
SAMPLED = {"temperature": 0.7, "repeat_penalty": 1.1, "top_k": 40, "top_p": 0.95, "min_p": 0.05}


def chat_decode(chat, n_tokens: int, *, sampled: bool = False, seed: int = 0) -> Dict[str, float]:
    """One generation of up to n_tokens — greedy, or sampled with the CLI's defaults; decode tokens/s
    from the Chat's own statistics."""
    params = dict(SAMPLED, seed=seed) if sampled else {"temperature": 0.0, "repeat_penalty": 1.0}
    with chat.stream(PROMPT, max_tokens=n_tokens, **params) as pieces:
        text = "".join(pieces)
    st = pieces.stats
    if st.completion_tokens < n_tokens // 2:
        if sampled and seed < 20:  # a sample may end early: draw another
            return chat_decode(chat, n_tokens, sampled=True, seed=seed + 1)
        raise SystemExit(f"bench_llm: the model stopped after {st.completion_tokens} tokens: {text!r}")
    return {"tokens_per_s": st.tokens_per_s, "completion_tokens": st.completion_tokens, "ttft_s": st.ttft_s or 0.0,
            "prompt_tokens": st.prompt_tokens}


def outputs_match_llama_cpp(chat, model: Path, threads: int, n_tokens: int, seeds=(0, 1, 2)) -> Dict[str, Any]:
    """Before timing: our greedy and sampled paths give exactly the text llama-cpp-python's own chat path
    gives (its generate loop and whole-vocabulary sampler chain), for the same prompt, settings and seed.
    llama-bench prints no text, so this is the output check of the speed comparison."""
    import llama_cpp

    ref = llama_cpp.Llama(model_path=str(model), n_ctx=chat.n_ctx, n_threads=threads, flash_attn=True, verbose=False)
    cases = [("greedy", 0, {"temperature": 0.0, "repeat_penalty": 1.0})]
    cases += [("sampled", seed, dict(SAMPLED)) for seed in seeds]
    results = []
    try:
        for path, seed, params in cases:
            messages = [{"role": "user", "content": PROMPT}]
            theirs = ref.create_chat_completion(messages, max_tokens=n_tokens, seed=seed, **params)
            ours = chat.ask(messages, max_tokens=n_tokens, seed=seed, **params)
            results.append({"path": path, "seed": seed, "identical": ours == theirs["choices"][0]["message"]["content"],
                            "chars": len(ours)})
    finally:
        ref.close()
    return {"how": "text of Chat.ask vs llama_cpp.Llama.create_chat_completion, same prompt, settings and seed, "
                   f"{n_tokens} tokens at most; tolerance: identical", "cases": results,
            "all_identical": all(r["identical"] for r in results)}


def cold_prompt(chat, n_tokens: int, run: int) -> list:
    """Messages whose rendered prompt is about ``n_tokens`` tokens (real prose); the system message is
    different for every ``run`` so llama-cpp-python's prefix reuse cannot skip the prompt (cold TTFT)."""
    words = ("The camera on the walkway counted people crossing the line in both directions while the "
             "evening light faded over the grass and the river beyond it").split()
    system = {"role": "system", "content": f"Run {run}: answer briefly."}
    text, i = "", 0
    while chat.count_tokens([system, {"role": "user", "content": f"{text} {words[i % len(words)]}"}]) <= n_tokens:
        text += " " + words[i % len(words)]
        i += 1
    return [system, {"role": "user", "content": text.strip()}]


# ------------------------------------------------------------------------------------- bandwidth

def copy_bandwidth_gbs(n_bytes: int = 256 << 20, repeats: int = 9) -> float:
    """GB/s read by a NumPy copy of an n_bytes float32 array (the same bytes are written)."""
    x = np.ones(n_bytes // 4, dtype=np.float32)
    out = np.empty_like(x)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(out, x)
        samples.append(time.perf_counter() - t0)
    return n_bytes / statistics.median(samples) / 1e9


def read_bandwidth_gbs(n_bytes: int = 256 << 20, repeats: int = 9) -> float:
    """GB/s read by a reduction over an n_bytes array (nothing written back): what decoding does."""
    x = np.ones(n_bytes // 8, dtype=np.uint64)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.bitwise_or.reduce(x)
        samples.append(time.perf_counter() - t0)
    return n_bytes / statistics.median(samples) / 1e9


def gguf_tensor_bytes(path: Path) -> int:
    from edge_runtime.llm.gguf_file import GGUFFile

    with GGUFFile.open(path) as f:
        return sum(t.n_bytes for t in f.tensors.values())


# ------------------------------------------------------------------------------------------ ONNX

def onnx_section(model: Path, threads: int) -> Dict[str, Any]:
    from edge_runtime.converters.llm_onnx import compare_with_gguf, export_llm_onnx, quantize_llm_onnx

    from edge_runtime.converters._io import file_size

    cache = ROOT / "build" / "llm-onnx"
    cache.mkdir(parents=True, exist_ok=True)
    fp32, q4 = cache / "smollm2-fp32.onnx", cache / "smollm2-q4.onnx"
    if not q4.is_file():
        if not fp32.is_file():
            export_llm_onnx(model, fp32)
        quantize_llm_onnx(fp32, q4, block_size=32)
    import llama_cpp

    llm = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False)
    llm.close()
    res = compare_with_gguf(q4, model, prompt, n_new=32, threads=threads)
    res.update({"onnx_q4_bytes": file_size(q4), "gguf_bytes": model.stat().st_size, "threads": threads,
                "speed_ratio_onnx_over_gguf": res["onnx_tokens_per_s"] / res["gguf_tokens_per_s"]})
    return res


# ------------------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--onnx", action="store_true", help="also export + compare the 4-bit ONNX decoder")
    args = ap.parse_args()

    from edge_runtime.llm.chat import Chat

    model = ensure("smollm2-135m")
    version = llama_cpp_version()
    bench = build_llama_bench(version)
    decode: Dict[str, Any] = {}
    for t in args.threads:
        chat = Chat(model, n_threads=t, n_ctx=512, temperature=0.0)
        depth = chat_decode(chat, 8)["prompt_tokens"]  # warm-up; llama-bench decodes at this KV depth too
        check = outputs_match_llama_cpp(chat, model, t, args.tokens)
        if not check["all_identical"]:
            raise SystemExit(f"bench_llm: our output differs from llama-cpp-python's: {check['cases']}")
        ours: List[float] = []
        sampled: List[float] = []
        theirs: List[float] = []
        for i in range(args.repeats):
            # Rotate the order so each side runs first, second and third equally often.
            order = [("ours", "theirs", "sampled"), ("theirs", "sampled", "ours"), ("sampled", "ours", "theirs")][i % 3]
            for who in order:
                if who == "ours":
                    ours.append(chat_decode(chat, args.tokens)["tokens_per_s"])
                elif who == "sampled":
                    sampled.append(chat_decode(chat, args.tokens, sampled=True, seed=i)["tokens_per_s"])
                else:
                    theirs.append(float(run_llama_bench(bench, model, threads=t, n_gen=args.tokens,
                                                        n_depth=depth)["avg_ts"]))
        ratios = [a / b for a, b in zip(ours, theirs)]
        s_ratios = [a / b for a, b in zip(sampled, theirs)]
        decode[f"threads_{t}_sampled"] = {
            "threads": t, "tokens": args.tokens, "repeats": args.repeats, "kv_depth_tokens": depth,
            "path": "sampled", "sampling": SAMPLED,
            "ours_tokens_per_s_median": statistics.median(sampled),
            "llama_bench_tokens_per_s_median": statistics.median(theirs),
            "ratio_median": statistics.median(s_ratios), "ratio_p10": percentile(s_ratios, 10),
            "ratio_p90": percentile(s_ratios, 90), "ours_samples": sampled, "llama_bench_samples": theirs,
            "outputs_compared": check}
        print(f"decode sampled, {t} thread(s): ours {statistics.median(sampled):.1f} tok/s, ratio "
              f"{statistics.median(s_ratios):.3f} (p10 {percentile(s_ratios, 10):.3f}, p90 {percentile(s_ratios, 90):.3f})")
        decode[f"threads_{t}"] = {
            "threads": t, "tokens": args.tokens, "repeats": args.repeats, "kv_depth_tokens": depth,
            "ours_tokens_per_s_median": statistics.median(ours),
            "llama_bench_tokens_per_s_median": statistics.median(theirs),
            "ratio_median": statistics.median(ratios), "ratio_p10": percentile(ratios, 10),
            "ratio_p90": percentile(ratios, 90), "ours_samples": ours, "llama_bench_samples": theirs,
            "path": "greedy",
            "outputs_compared": check}
        print(f"decode, {t} thread(s): ours {statistics.median(ours):.1f} tok/s, llama-bench "
              f"{statistics.median(theirs):.1f} tok/s, ratio {statistics.median(ratios):.3f} "
              f"(p10 {percentile(ratios, 10):.3f}, p90 {percentile(ratios, 90):.3f})")
        if t == args.threads[0]:
            # Interleaved with llama-bench pp100 runs, like the decode pairs; the first prompt is a warm-up.
            ttft, pp_s = [], []
            for run in range(8):
                with chat.stream(cold_prompt(chat, 100, run), temperature=0.0, max_tokens=1) as s:
                    "".join(s)
                pp = run_llama_bench(bench, model, threads=t, n_prompt=100)
                if run:
                    ttft.append(s.stats.ttft_s)
                    pp_s.append(100 / float(pp["avg_ts"]))
            theirs_s = statistics.median(pp_s) + 1 / decode[f"threads_{t}"]["llama_bench_tokens_per_s_median"]
            decode["ttft"] = {"threads": t, "prompt_tokens": s.stats.prompt_tokens,
                              "ttft_s_median": statistics.median(ttft), "ttft_samples_s": ttft,
                              "llama_bench_pp100_s_median": statistics.median(pp_s),
                              "llama_bench_pp100_plus_one_token_s": theirs_s}
            print(f"time to first token, {s.stats.prompt_tokens}-token prompt: {statistics.median(ttft) * 1e3:.0f} ms "
                  f"(llama-bench pp100 + one token: {theirs_s * 1e3:.0f} ms)")
        chat.close()
    # Peak RSS now, before the bandwidth test's two 256 MiB arrays would dominate it.
    rss = {"ours_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "llama_bench_peak_rss_mb": llama_bench_peak_rss_mb(bench, model, threads=max(args.threads),
                                                              n_gen=args.tokens, n_depth=depth)}
    copy_bw = copy_bandwidth_gbs()
    bw = read_bandwidth_gbs()  # decoding reads the weights and writes almost nothing: the bound uses reads
    weight_bytes = gguf_tensor_bytes(model)
    best = max(v["ours_tokens_per_s_median"] for k, v in decode.items() if k.startswith("threads_"))
    bound = {"read_bandwidth_gb_s": bw, "copy_bandwidth_gb_s": copy_bw, "gguf_tensor_bytes": weight_bytes,
             "bound_tokens_per_s": bw * 1e9 / weight_bytes, "ours_best_tokens_per_s": best,
             "fraction_of_bound": best / (bw * 1e9 / weight_bytes),
             "note": "L3 is 32 MiB here, the weights ~100 MB: most of each token's reads come from DRAM"}
    print(f"read bandwidth {bw:.1f} GB/s (copy {copy_bw:.1f}), {weight_bytes / 1e6:.1f} MB of weights per token -> bound "
          f"{bound['bound_tokens_per_s']:.0f} tok/s; ours reaches {bound['fraction_of_bound']:.2f} of it")
    import llama_cpp

    from edge_runtime.llm.ggml_build import cpu_flags, missing_features

    system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    # llama-bench is built with cmake's defaults (GGML_NATIVE on); the library we call must match it.
    build = {"llama_cpp_python_system_info": system_info.strip(),
             "cpu_features_unused_by_llama_cpp_python": missing_features(system_info, cpu_flags())}
    payload: Dict[str, Any] = {"model": str(model.name), "llama_cpp_python": version, "build": build,
                               "llama_bench": str(bench.relative_to(ROOT)), "decode": decode,
                               "bandwidth": bound, "peak_rss": rss}
    if args.onnx:
        payload["onnx_q4_vs_gguf"] = onnx_section(model, args.threads[0])
        o = payload["onnx_q4_vs_gguf"]
        print(f"ONNX 4-bit vs GGUF Q4_1: {o['onnx_tokens_per_s']:.1f} vs {o['gguf_tokens_per_s']:.1f} tok/s, "
              f"argmax agreement {o['argmax_agreement']:.2f}, max |logit err| {o['max_abs_logit_err']:.2f}")
    path = write_result("llm", payload, threads=max(args.threads))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
