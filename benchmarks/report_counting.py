"""Write README's counting section from ``benchmarks/results/counting.json``, ``identity.json`` and
``counting_rect.json``.

Nothing in the section is typed by hand: run ``python -m benchmarks.report_counting`` after
``bench_counting`` and ``identity`` to refresh it (``--check`` exits 1 if README is out of date).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence

from benchmarks.harness import RESULTS_DIR

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- counting-table:"
END = "<!-- /counting-table -->"


def _pr(s: dict) -> str:
    return f"P {s['precision']:.2f} / R {s['recall']:.2f}"


def _undecidable_note(summary: dict) -> str:
    """How the passes the truth marks undecidable were scored, with the strict stride-1 figure beside it."""
    all1 = summary.get("fp32/stride1/ours/all")
    if not all1 or "ignored" not in all1:
        return ""
    peer = summary.get("fp32/stride1/peer/all", {})
    return (f" Six passes the truth marks undecidable (someone walking exactly over a segment's end, or lost "
            f"from view at the line) count neither way: an event there that matches no true event is left out, "
            f"for both stacks. Counted as false instead, fp32 every frame, all truths: ours P "
            f"{all1['precision_strict']:.3f} (else {all1['precision']:.3f}, {all1['ignored']} events left out), "
            f"peer P {peer.get('precision_strict', float('nan')):.3f} (else {peer.get('precision', float('nan')):.3f}).")


def _isa(machine: dict) -> str:
    """The CPU features the int8 detector's output and the live runs' rates depend on, as a phrase."""
    flags = set(machine.get("isa_flags") or ())
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI"
    return "AVX2, no AVX-512 VNNI" if "avx2" in flags else "no AVX2"


def section(counting: dict, identity: Optional[dict], rect: Optional[dict] = None) -> List[str]:
    summary = counting["summary"]
    machine = counting["machine"]
    lines = [
        f"Measured by `python -m benchmarks.bench_counting --int8 --live` at {str(machine.get('git_sha', '?'))[:10]} "
        f"({machine.get('cpu_model', '?')}, {_isa(machine)}); events match one-to-one when the direction is the "
        f"same and the frame within ±5, pairing as many as can be paired. \"Lines meeting target\": per-direction "
        f"count within ±1 of the truth at strides 1-2, ±2 at stride 3, recall ≥ 0.8 with precision ≥ 0.95 at "
        f"stride 4. Peer: `trackers` ByteTrack + supervision `LineZone` / `PolygonZone` as their docs show "
        f"them." + _undecidable_note(summary),
        "",
        "| detector, every n-th frame | half | ours: events | ours: lines meeting target | peer: events | "
        "peer: lines meeting target |",
        "|---|---|---|---|---|---|",
    ]
    for model in ("fp32", "int8"):
        for stride in (1, 2, 3, 4):
            for half in ("tune", "report"):
                ours = summary.get(f"{model}/stride{stride}/ours/{half}")
                peer = summary.get(f"{model}/stride{stride}/peer/{half}")
                if not ours or not peer:
                    continue
                lines.append(f"| {model}, {stride} | {half} | {_pr(ours)} | {ours['items_meeting_target']}/"
                             f"{ours['items']} | {_pr(peer)} | {peer['items_meeting_target']}/{peer['items']} |")
    irregular = [r for r in counting["rows"] if r["model"].endswith("-irregular")]
    if irregular:
        seeds = sorted({r["seed"] for r in irregular})
        lines += ["", f"The same frozen detections replayed at the irregular gaps of a live run (`--irregular "
                      f"{len(seeds)}`: each gap is stride - 1, stride or stride + 1 frames, {len(seeds)} seeds), "
                      "judged by the stride's target: the repeatable version of the live runs below.", "",
                  "| detector, every n-th frame on average | ours: events | ours: lines meeting target, per seed "
                  "| peer: events | peer: lines meeting target, per seed |",
                  "|---|---|---|---|---|"]
        for model in sorted({r["model"] for r in irregular}):
            for stride in sorted({r["stride"] for r in irregular if r["model"] == model}):
                cells = []
                for stack in ("ours", "peer"):
                    s = summary.get(f"{model}/stride{stride}/{stack}/all")
                    per_seed = [sum(r["meets_target"] for r in irregular if r["model"] == model and
                                    r["stride"] == stride and r["stack"] == stack and r["seed"] == seed)
                                for seed in seeds]
                    n = len([r for r in irregular if r["model"] == model and r["stride"] == stride and
                             r["stack"] == stack and r["seed"] == seeds[0]])
                    cells += [_pr(s) if s else "-", ", ".join(str(k) for k in per_seed) + f" of {n}"]
                lines.append(f"| {model.replace('-irregular', '')}, {stride} | " + " | ".join(cells) + " |")
    live = [r for r in counting["rows"] if r["stack"] == "ours-live"]
    if live:
        from benchmarks.bench_counting import judged_stride

        runs = sorted({r.get("run", 0) for r in live})
        lines += ["", "Live, `mode = \"latest\"` with one detector thread: the video replayed at its own rate, "
                      "then at the rates that make the detector keep up with about every frame, every 2nd, 3rd and "
                      "4th frame (faster than the video for a slower board, slower than it for a faster one; frame "
                      "times stay the video's clock). Each run is judged by the target of the "
                      "stride it reached (the nearest; the stricter one at a tie). Which frames a live run processes "
                      "depends on timing, so one run's figures vary from the next run's, most at every 4th frame, "
                      "where an item with three events misses its target on a single lost event; "
                      + (f"here {len(runs)} runs at each rate, taken in turn" if len(runs) > 1 else
                         "here one run at each rate") + "; the replays above are the repeatable measure.", "",
                  "| replay (fps) | processed one frame in, per run | judged at stride | events P / R, all runs | "
                  "lines and zones meeting it, per run | missing it (runs) |",
                  "|---|---|---|---|---|---|"]
        for replay_fps in sorted({r.get("replay_fps", 10.0) for r in live}):
            at = [r for r in live if r.get("replay_fps", 10.0) == replay_fps]
            per_run = [[r for r in at if r.get("run", 0) == k] for k in runs]
            per_run = [rs for rs in per_run if rs]
            tp, fp, fn = (sum(r[k] for r in at) for k in ("tp", "fp", "fn"))
            strides = ", ".join(f"{rs[0]['stride']:.2f}" for rs in per_run)
            judged = ", ".join(str(j) for j in sorted({judged_stride(rs[0]["stride"]) for rs in per_run}))
            met = ", ".join(f"{sum(r['meets_target'] for r in rs)}/{len(rs)}" for rs in per_run)
            short = Counter(r["item"] for r in at if not r["meets_target"])
            missing = ", ".join(f"`{name}` ×{k}" for name, k in sorted(short.items(), key=lambda x: (-x[1], x[0])))
            lines.append(f"| {replay_fps:g} | {strides} | {judged} | "
                         f"{tp / max(tp + fp, 1):.2f} / {tp / max(tp + fn, 1):.2f} | {met} | {missing or 'none'} |")
    if rect:
        sr = rect["summary"]

        def pr3(x: dict) -> str:
            return f"P {x['precision']:.3f} / R {x['recall']:.3f}, {x['items_meeting_target']}/{x['items']}"

        fixed = "; ".join(f"every {k}: {pr3(sr[f'fp32-rect/stride{k}/ours/all'])} "
                          f"(square {pr3(summary[f'fp32/stride{k}/ours/all'])})"
                          for k in (1, 2, 3, 4)
                          if f"fp32-rect/stride{k}/ours/all" in sr and f"fp32/stride{k}/ours/all" in summary)
        text = (f"Rectangular inference (`model.rect = true`; `python -m benchmarks.bench_counting --rect --live "
                f"--name counting_rect` at {str(rect['machine'].get('git_sha', '?'))[:10]}), fp32, all truths, "
                f"events and lines meeting target: {fixed}.")
        rlive = [r for r in rect["rows"] if r["stack"] == "ours-live"]
        if rlive:
            from benchmarks.bench_counting import judged_stride

            tp, fp, fn = (sum(r[k] for r in rlive) for k in ("tp", "fp", "fn"))
            text += (f" Live as above, the detector now keeping up with every {rlive[0]['stride']:.2f}th frame: "
                     f"events P {tp / max(tp + fp, 1):.2f} / R {tp / max(tp + fn, 1):.2f}, "
                     f"{sum(r['meets_target'] for r in rlive)}/{len(rlive)} lines and zones meeting the target of "
                     f"stride {judged_stride(rlive[0]['stride'])}.")
        lines += ["", text]
    losses = counting.get("worse_than_peer", [])
    lines += ["", f"Lines and strides where our count error is larger than the peer's: {len(losses)}"
                  + (" (" + "; ".join(f"{x['item']} at stride {x['stride']} ({x['model']}): {x['ours_err']} vs "
                                    f"{x['peer_err']}" for x in losses) + ")" if losses else "") + "."]
    if identity:
        lines += ["", "Identity on the hand-checked clip (vtest frames 200-399, 8 people; `python -m "
                      "benchmarks.identity`), same detections, peers with our score thresholds (their defaults "
                      "start tracks at 0.7 and lose most people of this detector):", "",
                  "| every n-th frame | ours IDF1 / ID switches | best peer IDF1 (tracker) | fewest peer ID switches |",
                  "|---|---|---|---|"]
        for stride in sorted({r["stride"] for r in identity["rows"]}):
            rows = [r for r in identity["rows"] if r["stride"] == stride]
            ours = next(r for r in rows if r["tracker"] == "ours")
            # Peers at their own defaults barely track this detector's people (few ids, few switches,
            # IDF1 < 0.3): compare with the ones given our thresholds.
            peers = [r for r in rows if r["tracker"].endswith("@ours")]
            best = max(peers, key=lambda r: r["IDF1"])
            fewest = min(peers, key=lambda r: r["IDSW"])
            lines.append(f"| {stride} | {ours['IDF1']:.3f} / {ours['IDSW']} | {best['IDF1']:.3f} ({best['tracker']}) | "
                         f"{fewest['IDSW']} ({fewest['tracker']}) |")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    counting = json.loads((RESULTS_DIR / "counting.json").read_text())
    identity_path = RESULTS_DIR / "identity.json"
    identity = json.loads(identity_path.read_text()) if identity_path.exists() else None
    rect_path = RESULTS_DIR / "counting_rect.json"
    rect = json.loads(rect_path.read_text()) if rect_path.exists() else None
    text = README.read_text()
    a = text.index(START)
    a = text.index("\n", a) + 1
    b = text.index(END)
    new = text[:a] + "\n".join(section(counting, identity, rect)) + "\n" + text[b:]
    if args.check:
        return 0 if new == text else 1
    README.write_text(new)
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
