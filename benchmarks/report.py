"""Write README's results table and grounding table from ``benchmarks/results/*.json``, and print them.

Nothing in those README sections is typed by hand: each row is rendered from one result file, with the
commit it was measured at, whether that tree was clean, and whether the CPU had an int8 dot product
(AVX-512 VNNI / AVX-VNNI; Arm ``asimddp``). ``make bench`` ends with this script, so the summary it prints
is the table README shows. ``--check`` exits 1 if README is out of date (a test runs it).

Run: ``python -m benchmarks.report [--check] [--print]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from benchmarks.harness import RESULTS_DIR

README = Path(__file__).resolve().parent.parent / "README.md"
SECTIONS = {"results-table": ("<!-- results-table:", "<!-- /results-table -->"),
            "grounding-table": ("<!-- grounding-table:", "<!-- /grounding-table -->")}


def _load(name: str) -> Optional[Dict[str, Any]]:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _cpu(doc: Dict[str, Any]) -> str:
    m = doc.get("machine", {})
    flags = set(m.get("flags", []) or m.get("isa_flags", []) or [])
    dot = "VNNI" if flags & {"avx512_vnni", "avx_vnni"} else "dotprod" if "asimddp" in flags else "no int8 dot"
    sha = str(m.get("git_sha") or "?")
    return f"{sha[:7]}{'' if not sha.endswith('dirty') else ' (dirty)'}, {dot}"


def _has_int8_dot(doc: Dict[str, Any]) -> bool:
    return not _cpu(doc).endswith("no int8 dot")


def _dot_mark(doc: Dict[str, Any], ok: bool) -> str:
    """The mark for a target that holds only on a CPU with an int8 dot product: not judged without one."""
    return _mark(ok) if _has_int8_dot(doc) else "(not judged: this CPU has no int8 dot product)"


def _x(v: float) -> str:
    return f"×{v:.2f}"


def _spread(d: Dict[str, Any], key: str = "speedup") -> str:
    return f"{_x(d[f'{key}_median'])} (p10–p90 {d[f'{key}_p10']:.2f}–{d[f'{key}_p90']:.2f})"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def row_kernels(doc: Dict[str, Any]) -> List[List[str]]:
    r = doc["results"]
    rows = []
    peers = [(r[k], what) for k, what in (("letterbox_768x576_to_640", "cv2 resize + copyMakeBorder + cvtColor + NumPy"),
                                          ("letterbox_vs_blobfromimage", "cv2 resize + copyMakeBorder + "
                                                                         "`cv2.dnn.blobFromImage`")) if k in r]
    if peers:
        lb, what = min(peers, key=lambda p: p[0]["speedup_median"])  # the stronger peer headlines
        others = "; ".join(f"×{p['speedup_median']:.1f} vs {w}" for p, w in peers if p is not lb)
        rows.append([f"letterbox 768×576 → 640×640 float CHW vs {what} (`bench_kernels`)",
                     f"{lb['candidate_ms_median']:.2f} ms", f"{lb['baseline_ms_median']:.2f} ms",
                     _spread(lb) + (f"; {others}" if others else ""), f"≥ ×3 {_mark(lb['speedup_median'] >= 3)}"])
    cv = r.get("decode_nms_vs_cv2")
    ref = r.get("decode_nms_vs_numpy_reference")
    if cv:
        extra = f"; ×{ref['speedup_median']:.1f} vs the NumPy reference" if ref else ""
        rows.append(["YOLOv8 decode + NMS (1, 6, 8400) vs NumPy decode + `cv2.dnn.NMSBoxes` (`bench_kernels`)",
                     f"{cv['candidate_ms_median'] * 1e3:.0f} µs", f"{cv['baseline_ms_median'] * 1e3:.0f} µs",
                     _spread(cv) + extra, (f"≥ ×10, set against the NumPy reference "
                                           f"{_mark(bool(ref) and ref['speedup_median'] >= 10)}; vs cv2 reported")])
    ov = r.get("detector_overhead")
    if ov:
        share = ov.get("overhead_share_median", (ov["preprocess_ms_median"] + ov["postprocess_ms_median"])
                       / max(ov.get("inference_ms_median", 1e9), 1e-9))
        rows.append(["pre + post vs inference per frame, real detector (`bench_kernels`)",
                     f"{ov['preprocess_ms_median'] + ov['postprocess_ms_median']:.2f} ms", "—",
                     f"{share * 100:.2f} %", f"≤ 1 % {_mark(share <= 0.01)}"])
    return rows


def row_pipeline(doc: Dict[str, Any]) -> List[List[str]]:
    o, p = doc["ours"], doc["peer"]
    rounds = doc.get("rounds", 1)
    spread = doc.get("fps_ratio_per_round", [])
    rng = f" (rounds {min(spread):.2f}–{max(spread):.2f})" if len(spread) > 1 else ""
    err = doc.get("count_error_vs_truth", {})

    def counts(side: str) -> str:
        e = err.get(side)
        return "" if e is None else f"; walkway in/out vs by-eye truth {e['in']:+d} / {e['out']:+d}"

    rows = [[f"whole job, {doc['frames']} frames of vtest.avi, fp32, {doc['threads']} threads, {rounds} rounds "
             f"(`bench_pipeline`)", f"{o['fps_median']:.2f} fps, non-inference {o['non_inference_share_p50'] * 100:.2f} %"
             + counts("ours"), f"{p['fps_median']:.2f} fps, {p['non_inference_share_p50'] * 100:.2f} %" + counts("peer"),
             _x(doc["fps_ratio_median"]) + rng,
             f"≥ ×1.0 {_mark(doc['fps_ratio_median'] >= 1.0)}, non-inference ≤ 1 % "
             f"{_mark(o['non_inference_share_p50'] <= 0.01)}"]]
    q8 = doc.get("int8")
    if q8:
        r8 = q8["fps_ratio_vs_peer_fp32_per_round"]
        e = err.get("ours-int8", {"in": 99, "out": 99})
        rows.append([f"whole job, int8 detector (ours) vs the peer's fp32, same threads (`bench_pipeline --int8`)",
                     f"{q8['summary']['fps_median']:.2f} fps" + counts("ours-int8"), f"{p['fps_median']:.2f} fps",
                     f"{_x(q8['fps_ratio_vs_peer_fp32_median'])} (rounds {min(r8):.2f}–{max(r8):.2f})",
                     f"≥ ×2.5 with an int8 dot product {_dot_mark(doc, q8['fps_ratio_vs_peer_fp32_median'] >= 2.5)}, counts "
                     f"±1 {_mark(abs(e['in']) <= 1 and abs(e['out']) <= 1)}"])
    return rows


def row_pipeline_rect(doc: Dict[str, Any]) -> List[List[str]]:
    """The whole job with rectangular inference (ours at 640x480, the peer at its square 640x640)."""
    p, err = doc["peer"], doc.get("count_error_vs_truth", {})
    sides = [("fp32", doc["ours"], doc["fps_ratio_per_round"], err.get("ours"))]
    if doc.get("int8"):
        q8 = doc["int8"]
        sides.append(("int8", q8["summary"], q8["fps_ratio_vs_peer_fp32_per_round"], err.get("ours-int8")))
    rows = []
    for model, o, ratios, e in sides:
        counts = "" if e is None else f"; walkway in/out vs by-eye truth {e['in']:+d} / {e['out']:+d}"
        rows.append([f"whole job, {model}, `model.rect = true` (ours 640×480, the peer 640×640), "
                     f"{doc['rounds']} rounds (`bench_pipeline --rect`)",
                     f"{o['fps_median']:.2f} fps, inference p50 {o['inference_ms_p50']:.0f} ms" + counts,
                     f"{p['fps_median']:.2f} fps, inference p50 {p['inference_ms_p50']:.0f} ms",
                     f"{_x(statistics.median(ratios))} (rounds {min(ratios):.2f}–{max(ratios):.2f})",
                     "less work per frame, so reported, not judged; counts ±1 "
                     + (_mark(abs(e["in"]) <= 1 and abs(e["out"]) <= 1) if e else "—")])
    return rows


def row_tracker(doc: Dict[str, Any]) -> List[List[str]]:
    w, f = doc["whole_video"], doc["per_frame"]
    rows = [["tracker with its appearance gate (colour histograms from the frame), same detections, vs `trackers` "
             "ByteTrack (`bench_tracker`)",
             f"{w['ours_ms_per_frame'] * 1e3:.0f} µs/frame", f"{w['theirs_ms_per_frame'] * 1e3:.0f} µs/frame",
             f"{_spread(w)} whole video; ×{f['speedup_per_frame_median']:.2f} per-frame median",
             f"≥ ×3 {_mark(w['speedup_median'] >= 3)}"]]
    m = doc.get("whole_video_motion_only")
    if m:
        rows.append(["tracker, motion only (`appearance_gate = 1`), same detections, vs `trackers` ByteTrack "
                     "(`bench_tracker`)", f"{m['ours_ms_per_frame'] * 1e3:.0f} µs/frame",
                     f"{m['theirs_ms_per_frame'] * 1e3:.0f} µs/frame", f"{_spread(m)} whole video",
                     f"≥ ×3 {_mark(m['speedup_median'] >= 3)}"])
    return rows


def row_quant(doc: Dict[str, Any]) -> List[List[str]]:
    r = doc["results"]
    parts = {k: v["quantize_1_thread"] for k, v in r.items()}
    ratios = " / ".join(f"{_x(v['speedup_median'])}" for v in parts.values())
    return [[f"GGUF block quantizers {' / '.join(parts)}, 1 thread, vs gguf-py (`bench_quant`)",
             " / ".join(f"{v.get('candidate_gb_s', v.get('candidate_gbs', 0)):.1f} GB/s" if 'candidate_gb_s' in v
                        or 'candidate_gbs' in v else f"{v['candidate_ms_median']:.1f} ms" for v in parts.values()),
             " / ".join(f"{v['baseline_ms_median']:.0f} ms" for v in parts.values()), ratios,
             f"≥ ×10 {_mark(min(v['speedup_median'] for v in parts.values()) >= 10)}"]]


def row_int8(doc: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for r in doc["results"]:
        fr = r["frame"]
        ok = fr["speedup_median"] >= 2.5 and r["count_agreement_heldout"] >= 0.95
        rows.append([f"YOLOv8s int8 (our converter) vs fp32, frame → detections, {r['threads']} thread(s) "
                     f"(`bench_int8`)", f"{fr['candidate_ms_median']:.0f} ms", f"{fr['baseline_ms_median']:.0f} ms",
                     f"{_spread(fr)}; counts equal on {r['count_agreement_heldout'] * 100:.0f} % of held-out frames",
                     f"≥ ×2.5 and 95 % with an int8 dot product {_dot_mark(doc, ok)}"])
    return rows


def row_llm(doc: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for key, d in doc["decode"].items():
        if not key.startswith("threads_"):
            continue
        path = d.get("path", "greedy")
        rows.append([f"SmolLM2-135M Q4_1 decode, {d['threads']} thread(s), {path} path, vs `llama-bench` (`bench_llm`)",
                     f"{d['ours_tokens_per_s_median']:.1f} tok/s", f"{d['llama_bench_tokens_per_s_median']:.1f} tok/s",
                     f"{_x(d['ratio_median'])} (p10–p90 {d['ratio_p10']:.2f}–{d['ratio_p90']:.2f})",
                     f"≥ ×0.97 {_mark(d['ratio_median'] >= 0.97)}"])
    return rows


def row_cosched(doc: Dict[str, Any], label: str) -> List[List[str]]:
    runs = doc["runs"]
    target = doc["target_fps"]
    cells = []
    ok = False
    for policy in ("managed-auto", "managed-fair", "managed-detection-first", "unmanaged"):
        r = runs.get(policy)
        if not r:
            continue
        good = r["fps_at_p95"] >= target and r.get("chat_vs_solo", 0) >= 0.8
        ok |= good and policy != "unmanaged"
        name = policy.removeprefix("managed-")
        if policy == "managed-auto" and isinstance(r.get("budget"), dict):
            name += f" (chose {r['budget'].get('policy')})"
        rounds = f", {r['rounds_meeting_both']}/{len(r['rounds'])} rounds meet both" if "rounds" in r else ""
        cells.append(f"{name}: {r['fps_at_p95']:.2f} fps at p95, chat {r.get('chat_vs_solo', 0):.2f}× solo{rounds}")
    verdict = f"target at p95 and chat ≥ 0.8× solo {_mark(ok)}"
    auto = doc.get("auto") or {}
    if auto:
        verdict += (f"; auto meets both wherever fair or detection-first does {_mark(auto['auto_ok'])}"
                    + ("" if auto["meets_both_possible"] else " (neither can here)"))
    cores = f"{doc['cores']} core" + ("" if doc["cores"] == 1 else "s")
    return [[f"detection + chat on {cores}, {label}, target {target:.2f} fps (`bench_cosched`)",
             cells[0] if cells else "—", "; ".join(cells[1:]), "—", verdict]]


def row_grounding(doc: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for mode, r in doc["results"].items():
        s = r["summary"]
        rows.append([f"answers about the counts, {mode} (`bench_grounding`, {doc['questions']} questions)",
                     f"held-out {s['held_out']['exact_rate'] * 100:.1f} %, fresh {s['fresh']['exact_rate'] * 100:.1f} % exact",
                     f"{s['all']['wrong_numbers']} wrong numbers", f"p95 {s['all']['latency_p95_s'] * 1e3:.0f} ms",
                     f"≥ 95 %, 0 wrong, p95 ≤ 1.5 s {_mark(min(s['held_out']['exact_rate'], s['fresh']['exact_rate']) >= 0.95 and s['all']['wrong_numbers'] == 0 and s['all']['latency_p95_s'] <= 1.5)}"])
    return rows


def row_mqtt(doc: Dict[str, Any]) -> List[List[str]]:
    f, b, a = doc["per_frame"], doc["burst"], doc["broker_away_one_hour"]
    return [["MQTT publishing next to the frame loop, real mosquitto (`bench_mqtt`)",
             f"+{f['added_ms_per_frame_median'] * 1e3:.0f} µs per frame; 1000-event burst acknowledged in "
             f"{b['drained_s']:.1f} s (worst frame {b['worst_record_frame_ms_while_draining']:.1f} ms); "
             f"{a['events']} events with the broker away: RSS +{a['rss_growth_mb_while_away']:.1f} MB, all delivered "
             f"{a['delivered_after_return_s']:.0f} s after it returned",
             f"without MQTT: {f['record_frame_ms_without_mqtt_median'] * 1e3:.0f} µs per frame", "—",
             f"≤ 0.5 ms per frame {_mark(f['added_ms_per_frame_median'] <= 0.5)}, nothing lost "
             f"{_mark(b['all_acknowledged'] and a['all_acknowledged'])}"]]


def row_link(doc: Dict[str, Any]) -> List[List[str]]:
    c, n = doc["clean"], doc["noisy"]
    return [[f"edge-link at {c['baud']} baud, {c['payload_bytes']}-byte messages, each acknowledged (`bench_link`)",
             f"clean: {c['messages_per_s']:.0f} msg/s ({c['share_of_line_rate'] * 100:.0f} % of the line); noisy "
             f"(2 % of writes lost, bit flips, duplicated bytes): {n['messages_per_s']:.0f} msg/s",
             "—", "—", f"nothing delivered twice {_mark(c['duplicates_delivered'] == 0 and n['duplicates_delivered'] == 0)}"
             f", nothing lost {_mark(c['failed'] == 0 and n['failed'] == 0)}"]]


def row_dashboard(doc: Dict[str, Any]) -> List[List[str]]:
    j, p = doc["job"], doc["in_process"]
    return [["the dashboard's live view: the job's CPU with one MJPEG viewer vs none, interleaved (`bench_dashboard`)",
             f"+{j['added_cpu_percent_of_one_core_median']:.1f} % of one core (p90 {j['added_cpu_percent_p90']:.1f}) at "
             f"{j['viewer_fps_median']:.1f} fps delivered ({j['added_cpu_percent_scaled_to_5fps']:.1f} % scaled to 5 fps); "
             f"in process {p['viewer_ms_per_frame_median']:.1f} ms per viewer frame, "
             f"{p['no_viewer_us_per_frame_median']:.2f} µs per frame with no viewer",
             f"no viewer: {j['cpu_percent_no_viewer_median']:.1f} % of one core", "—",
             f"≤ 5 % of one core at 5 fps {_mark(j['added_cpu_percent_scaled_to_5fps'] <= 5.0)}, ~0 with no viewer "
             f"{_mark(p['no_viewer_us_per_frame_median'] < 10)}"]]


def row_soak(doc: Dict[str, Any]) -> List[List[str]]:
    s, c = doc["setup"], doc["criteria"]
    rss, age, counts, chat = c["rss"], c["frame_age"], c["counts"], c["chat"]
    return [[f"soak: the job + chat server, {s['minutes']:g} min under {s['chat_rate_per_s']:g} chat requests/s, vtest.avi "
             f"looped at {s['replay_fps']:g} fps, every frame (`bench_soak`)",
             f"RSS after {rss.get('settled_after', 'the warm-up')} ({rss.get('settle_s', s['warmup_s']):.0f} s) "
             f"{rss['growth_fit_mb']:+.1f} MB (fit) / {rss['growth_peak_mb']:+.1f} MB (peak)"
             + (f", after {s['warmup_s']:.0f} s {rss['after_warmup_only']['growth_fit_mb']:+.1f} / "
                f"{rss['after_warmup_only']['growth_peak_mb']:+.1f} MB" if "after_warmup_only" in rss else "")
             + f"; fds {c['fds']['start']:.0f}→{c['fds']['end']:.0f}, threads {c['threads']['start']:.0f}→"
             f"{c['threads']['end']:.0f}; frame age p95 {age['load_worst_window_p95_s']:.2f} s; {chat['completed']} "
             f"answers, {chat['failed']} failed",
             f"without load: frame age p95 {age['reference_worst_window_p95_s']:.2f} s; counts {counts['compared']}", "—",
             f"RSS ≤ 5 MB {_mark(rss['pass'])}, no fd/thread growth {_mark(c['fds']['pass'] and c['threads']['pass'])}, "
             f"counts equal {_mark(counts['pass'])}, frame age held {_mark(age['pass'])}"]]


ROWS: List[tuple] = [
    ("kernels", row_kernels), ("pipeline", row_pipeline), ("pipeline_rect", row_pipeline_rect),
    ("tracker", row_tracker), ("quant", row_quant),
    ("int8", row_int8), ("llm", row_llm), ("cosched", lambda d: row_cosched(d, "fp32 detector")),
    ("cosched-int8", lambda d: row_cosched(d, "int8 detector")),
    ("cosched-cpus1", lambda d: row_cosched(d, "fp32 detector, pinned to 1 CPU")),
    ("cosched-quota1.5", lambda d: row_cosched(d, "fp32 detector, 1.5-core cgroup quota")),
    ("cosched-rect", lambda d: row_cosched(d, "fp32 detector, rectangular inference (640x480)")),
    ("cosched-int8-rect", lambda d: row_cosched(d, "int8 detector, rectangular inference (640x480)")),
    ("grounding", row_grounding),
    ("mqtt", row_mqtt), ("link", row_link), ("dashboard", row_dashboard), ("soak", row_soak),
]


def results_table() -> List[str]:
    lines = ["| question (script) | ours | baseline | ratio, median (spread) | target | commit, CPU |",
             "|---|---|---|---|---|---|"]
    for name, render in ROWS:
        doc = _load(name)
        if doc is None:
            continue
        try:
            rows = render(doc)
        except (KeyError, TypeError, ValueError) as exc:  # a result file of an older layout
            rows = [[f"`{name}.json`", "—", "—", "—", f"not readable by this report ({exc.__class__.__name__})"]]
        for r in rows:
            lines.append("| " + " | ".join(r + [_cpu(doc)]) + " |")
    return lines


def grounding_table() -> List[str]:
    doc = _load("grounding")
    if doc is None:
        return ["(no grounding result yet: run `python -m benchmarks.bench_grounding`)"]
    lines = [f"{doc['questions']} questions ({doc['held_out']} held out, {doc['fresh']} written after the rules were "
             f"settled), expected answers by SQL on `benchmarks/grounding/{doc['db']['file']}`; measured at "
             f"{_cpu(doc)}.", "",
             "| mode | split | questions | intent accuracy | exact answers | wrong numbers | refusals | "
             "latency p50 / p95 |", "|---|---|---|---|---|---|---|---|"]
    for mode, r in doc["results"].items():
        for split in ("tune", "held_out", "fresh"):
            s = r["summary"][split]
            lines.append(f"| {mode} | {split} | {s['questions']} | {s['intent_accuracy'] * 100:.1f} % | "
                         f"{s['exact_rate'] * 100:.1f} % | {s['wrong_numbers']} | {s['refusal_rate'] * 100:.1f} % | "
                         f"{s['latency_p50_s'] * 1e3:.1f} / {s['latency_p95_s'] * 1e3:.0f} ms |")
    return lines


RENDER: Dict[str, Callable[[], List[str]]] = {"results-table": results_table, "grounding-table": grounding_table}


def render_readme(text: str) -> str:
    for key, (start, end) in SECTIONS.items():
        i = text.find(start)
        j = text.find(end)
        if i < 0 or j < i:
            continue
        head_end = text.index("\n", i) + 1
        text = text[:head_end] + "\n".join(RENDER[key]()) + "\n" + text[j:]
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README is out of date")
    parser.add_argument("--print", action="store_true", help="only print the tables")
    args = parser.parse_args(argv)
    old = README.read_text(encoding="utf-8")
    new = render_readme(old)
    if args.print or not args.check:
        print("\n".join(results_table()))
        print()
        print("\n".join(grounding_table()))
    if args.check:
        if new != old:
            print("README's generated tables are out of date: run python -m benchmarks.report", file=sys.stderr)
            return 1
        return 0
    if not args.print and new != old:
        README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
