"""Replay a live run's own frames on the frozen detections, to tell a bad stretch of gaps from a live-path fault.

A live 'latest' run of ``bench_counting --live`` processes whichever frames it keeps up with, so its misses may
come from its gaps (a long stall, a run of 5-frame gaps) or from a difference between the live pipeline and the
replays. ``bench_counting`` records every live run's processed frames (``live_frames`` in its JSON); this
replays exactly those frames on the fp32 frozen detections, ours and the peer stack, and prints per line and
zone the live run's events next to the replay's. The same events mean the live path counts as the replays do
and the gaps decide; different ones point at the live path.

Run: ``python -m benchmarks.replay_live [--json benchmarks/results/counting.json] [--run K ...] [--all-items]``
(K indexes ``live_frames``; default: every live run that missed a target).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.counting_eval import load_truth, replay, score
from benchmarks.frozen import frozen_for
from benchmarks.harness import RESULTS_DIR


def live_frames(payload: dict) -> List[dict]:
    """The ``live_frames`` records of a ``bench_counting`` result, each with ``frames`` as a list of ints."""
    out = []
    for record in payload.get("live_frames", []):
        frames = record["frames"]
        out.append({**record, "frames": [int(f) for f in frames.split()] if isinstance(frames, str) else list(frames)})
    return out


def rows_of(payload: dict, record: dict) -> Dict[str, dict]:
    """{item: row} of the live run a ``live_frames`` record belongs to (same model, run and replay rate)."""
    return {r["item"]: r for r in payload["rows"]
            if r["stack"] == "ours-live" and r["model"] == record["model"] and r.get("run", 0) == record.get("run", 0)
            and r["replay_fps"] == record["replay_fps"]}


def compare(payload: dict, index: int, all_items: bool = False) -> List[str]:
    """Lines of text: for live run ``index``, each item's live score next to the frozen replay of its frames."""
    record = live_frames(payload)[index]
    live = rows_of(payload, record)
    video = next(iter(live.values()))["video"]
    truth = load_truth(video)
    frames = record["frames"]
    gaps = [b - a for a, b in zip(frames, frames[1:])]
    stride = max(1, round(truth.frames / max(len(frames), 1)))
    rect = record["model"].startswith("fp32-rect")
    events = replay(frozen_for(video, None, rect=rect), truth.items, stride, stacks=("ours", "peer"), video=video,
                    frames=frames)
    out = [f"live run {index}: {record['model']} run {record.get('run', 0)} at {record['replay_fps']} fps, "
           f"every {record['stride']}th frame, {len(frames)} frames, longest gap {max(gaps, default=0)}"]
    for item in truth.items:
        row = live.get(item.name)
        ours = score(events["ours"][item.name], item.events, undecidable=item.undecidable)
        peer = score(events["peer"][item.name], item.events, undecidable=item.undecidable)
        if not all_items and row is not None and row["meets_target"] and ours["false_events"] == row["false_events"] \
                and ours["missed_events"] == row["missed_events"]:
            continue
        said = "same" if row is not None and ours["false_events"] == row["false_events"] \
            and ours["missed_events"] == row["missed_events"] else "DIFFERENT"
        out.append(f"  {item.name:16s} live: {'met' if row and row['meets_target'] else 'MISSED'} "
                   f"false {row['false_events'] if row else '?'} missed {row['missed_events'] if row else '?'}")
        out.append(f"  {'':16s} replay ({said}): false {ours['false_events']} missed {ours['missed_events']}; "
                   f"peer tp/fp/fn {peer['tp']}/{peer['fp']}/{peer['fn']}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "counting.json")
    parser.add_argument("--run", type=int, nargs="+", metavar="K", help="indexes into the JSON's live_frames")
    parser.add_argument("--all-items", action="store_true", help="print every item, not only the differing ones")
    args = parser.parse_args(argv)
    payload = json.loads(args.json.read_text())
    records = live_frames(payload)
    if not records:
        print(f"{args.json}: no live_frames (run bench_counting --live)", file=sys.stderr)
        return 2
    wanted = args.run if args.run else [k for k, r in enumerate(records)
                                        if not all(row["meets_target"] for row in rows_of(payload, r).values())]
    for k in wanted:
        if not 0 <= k < len(records):
            print(f"--run {k}: the JSON has live runs 0-{len(records) - 1}", file=sys.stderr)
            return 2
        print("\n".join(compare(payload, k, args.all_items)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
