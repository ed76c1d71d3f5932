"""replay_live: a live run's recorded frames, replayed on the frozen detections, against the run's own rows."""

from __future__ import annotations

from benchmarks import replay_live
from benchmarks.counting_eval import load_truth, replay, score
from benchmarks.frozen import frozen_for


def _payload(frames, events_of):
    """A bench_counting result with one live run over ``frames`` whose events per item are ``events_of``."""
    truth = load_truth("vtest-video")
    rows = []
    for item in truth.items:
        s = score(events_of[item.name], item.events, undecidable=item.undecidable)
        rows.append({"video": "vtest-video", "model": "fp32-live", "item": item.name, "stack": "ours-live",
                     "run": 0, "replay_fps": 31.5, "stride": 3.0, **s, "meets_target": s["fn"] == 0})
    return {"live_frames": [{"model": "fp32-live", "run": 0, "replay_fps": 31.5, "stride": 3.0,
                             "frames": " ".join(map(str, frames))}], "rows": rows}


def test_a_live_run_that_counted_as_the_replay_of_its_frames_is_reported_the_same():
    truth = load_truth("vtest-video")
    frames = list(range(1, truth.frames, 3))
    events = replay(frozen_for("vtest-video"), truth.items, 3, stacks=("ours",), video="vtest-video", frames=frames)
    payload = _payload(frames, events["ours"])
    assert replay_live.live_frames(payload)[0]["frames"] == frames  # the JSON's string read back
    text = "\n".join(replay_live.compare(payload, 0, all_items=True))
    assert "DIFFERENT" not in text and text.count("(same)") == len(truth.items)
    # a live run that counted one event fewer than the replay is told apart, on that item only
    item = next(i for i in truth.items if events["ours"][i.name])
    lost = {**events["ours"], item.name: events["ours"][item.name][1:]}
    differing = [line for line in replay_live.compare(_payload(frames, lost), 0, all_items=True) if "DIFFERENT" in line]
    assert len(differing) == 1
