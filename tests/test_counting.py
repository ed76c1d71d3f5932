"""Line and zone counting fed frame by frame, asserting in/out per frame (the bugs users hit in the peers)."""

from __future__ import annotations

import inspect
import sqlite3

import numpy as np
import pytest

from edge_runtime.errors import ConfigError, InputError
from edge_runtime.vision.appearance import DIM as APPEARANCE_DIM
from edge_runtime.vision.counting import CountEvent, Direction, LineCounter, ZoneCounter, count_by_class
from edge_runtime.vision.detections import Detections
from edge_runtime.vision.tracking import ByteTracker

# A horizontal counting segment from (100, 200) to (300, 200): walking down the image is "in".
START, END = (100.0, 200.0), (300.0, 200.0)
# No dead band and no touch-and-return delay: every side change of the anchor is a candidate crossing.
EXACT = {"margin_rel": 0.0, "return_s": 0.0, "commit_rel": 0.0}  # no band, no wait: every side change counts at once


def tracked(*objects) -> Detections:
    """One frame; each object is (track_id, x, y[, class]) with (x, y) the box's bottom centre."""
    if not objects:
        return Detections.empty(with_track_id=True)
    xyxy = [(x - 10, y - 40, x + 10, y) for _, x, y, *_ in objects]
    cls = [o[3] if len(o) > 3 else 0 for o in objects]
    return Detections(np.array(xyxy, np.float32), np.full(len(objects), 0.9, np.float32),
                      np.array(cls, np.int32), np.array([o[0] for o in objects], np.int32))


def run(counter, frames):
    """Per frame, the list of (track_id, direction, class_id) events."""
    return [[(e.track_id, e.direction.value, e.class_id) for e in counter.update(f)] for f in frames]


def test_two_objects_crossing_at_once_are_both_counted():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    frames = [tracked((1, 150, y), (2, 250, y)) for y in (180, 190, 210, 220)]
    assert run(line, frames) == [[], [], [(1, "in", 0), (2, "in", 0)], []]
    assert (line.in_total, line.out_total) == (2, 0)


def test_crossing_both_ways_and_back():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    frames = [
        tracked((1, 150, 180), (2, 250, 230)),
        tracked((1, 150, 210), (2, 250, 190)),  # 1 goes down (in), 2 goes up (out), same frame
        tracked((1, 150, 190), (2, 250, 180)),  # 1 comes back: one out
    ]
    assert run(line, frames) == [[], [(1, "in", 0), (2, "out", 0)], [(1, "out", 0)]]
    assert (line.in_total, line.out_total) == (1, 2)


def test_flicker_at_the_line_counts_once_with_hysteresis():
    line = LineCounter("gate", START, END, hysteresis_frames=3, **EXACT)
    ys = [180, 195, 203, 198, 204, 197, 205, 206, 207, 208, 209]
    got = run(line, [tracked((1, 200, y)) for y in ys])
    # Only at the third consecutive frame below the line (y = 205, 206, 207) does the crossing count.
    assert got == [[]] * 8 + [[(1, "in", 0)]] + [[]] * 2
    assert (line.in_total, line.out_total) == (1, 0)


def test_flicker_without_hysteresis_nets_out():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    run(line, [tracked((1, 200, y)) for y in (190, 210, 190, 210)])
    assert (line.in_total, line.out_total) == (2, 1)  # in - out = 1: the net flow is still right


def test_passing_beside_the_segment_is_not_counted():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    # Crosses y = 200 at x = 350, beyond the segment's end at x = 300 (the infinite line would count it).
    assert run(line, [tracked((1, 350, y)) for y in (150, 190, 210, 250)]) == [[]] * 4
    # A diagonal path whose crossing point (x = 305) is outside even though it starts above the segment.
    assert run(line, [tracked((2, 295, 190)), tracked((2, 335, 230))]) == [[], []]
    assert (line.in_total, line.out_total) == (0, 0)
    # Coming back up through the segment itself is a real crossing.
    assert run(line, [tracked((1, 250, 180))]) == [[(1, "out", 0)]]


def test_crossing_point_decides_not_the_endpoints():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    # From (320, 190), beyond the segment's end, to (280, 210): the path meets y = 200 at x = 300, the
    # segment's end point, so it is a crossing (inclusive ends).
    assert run(line, [tracked((1, 320, 190)), tracked((1, 280, 210))]) == [[], [(1, "in", 0)]]


def test_unconfirmed_tracks_never_count():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    # Many tentative detections (id -1) walking across: the inflation users saw with shared -1 ids.
    frames = [tracked(*[(-1, 110 + 20 * k, y) for k in range(9)]) for y in (180, 220, 180, 220)]
    assert run(line, frames) == [[]] * 4
    assert (line.in_total, line.out_total) == (0, 0)


def test_a_track_lost_and_found_again_is_not_counted_twice():
    line = LineCounter("gate", START, END, hysteresis_frames=2, **EXACT)
    frames = [tracked((4, 200, 170)), tracked((4, 200, 185)), tracked(), tracked(),  # occluded at the line
              tracked((4, 200, 215)), tracked((4, 200, 225)), tracked(), tracked((4, 200, 240))]
    assert run(line, frames) == [[], [], [], [], [], [(4, "in", 0)], [], []]
    assert line.in_total == 1


def test_tracker_and_counter_together_on_a_walk_with_an_occlusion():
    tracker = ByteTracker(min_hits=2, lost_s=1.0)
    line = LineCounter("gate", START, END, hysteresis_frames=2, **EXACT)
    events = []
    for t in range(40):
        y = 120 + 5 * t  # walks down across the line at t = 16
        visible = not (14 <= t <= 19)  # hidden around the line for 6 frames
        det = Detections(np.array([[190, y - 40, 210, y]], np.float32), np.array([0.9], np.float32),
                         np.array([0], np.int32)) if visible else Detections.empty()
        events += line.update(tracker.update(det))
    assert [(e.track_id, e.direction) for e in events] == [(0, Direction.IN)]
    assert tracker.ids_issued == 1


def test_a_crowd_crossing_both_ways_at_once_through_the_tracker():
    # Six people in adjacent lanes, three walking down and three up, all on the line at the same frame.
    tracker = ByteTracker(min_hits=2)
    line = LineCounter("gate", (0, 200), (600, 200), hysteresis_frames=2, **EXACT)
    per_frame = []
    for t in range(30):
        boxes = []
        for lane in range(6):
            down = lane % 2 == 0
            y = (84 + 8 * t) if down else (316 - 8 * t)  # feet cross y = 200 between t = 14 and 15
            x = 40 + 30 * lane  # 35 px wide: neighbours overlap as they pass each other
            boxes.append((x, y - 80, x + 35, y))
        det = Detections(np.array(boxes, np.float32), np.full(6, 0.85, np.float32), np.zeros(6, np.int32))
        per_frame.append(sorted(e.direction.value for e in line.update(tracker.update(det))))
    assert per_frame[16] == ["in", "in", "in", "out", "out", "out"]  # second frame past the line
    assert all(not events for k, events in enumerate(per_frame) if k != 16)
    assert (line.in_total, line.out_total, tracker.ids_issued) == (3, 3, 6)


def test_class_is_the_tracks_majority_class():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    # Mostly class 2 ("bicycle"); the detector says 0 on the very frame it crosses.
    frames = [tracked((1, 200, y, c)) for y, c in ((150, 2), (160, 2), (170, 0), (180, 2), (210, 0), (220, 2))]
    assert run(line, frames) == [[], [], [], [], [(1, "in", 2)], []]
    assert line.in_counts == {2: 1}


def test_per_class_totals():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    frames = [tracked((1, 120, 190, 0), (2, 160, 190, 0), (3, 200, 210, 1), (4, 240, 190, 3)),
              tracked((1, 120, 210, 0), (2, 160, 210, 0), (3, 200, 190, 1), (4, 240, 210, 3))]
    run(line, frames)
    assert line.in_counts == {0: 2, 3: 1}
    assert line.out_counts == {1: 1}


def test_anchor_point_is_configurable():
    feet = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT)
    centre = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT, anchor="center")
    frames = [tracked((1, 200, y)) for y in (190, 210, 230, 250)]  # box centre is 20 px above the feet
    assert run(feet, frames) == [[], [(1, "in", 0)], [], []]
    assert run(centre, frames) == [[], [], [(1, "in", 0)], []]


def test_events_carry_frame_time_and_persist_as_plain_rows():
    line = LineCounter("north gate", START, END, hysteresis_frames=1, **EXACT)
    line.update(tracked((9, 200, 190, 1)), frame_index=10, timestamp_s=1.0)
    (event,) = line.update(tracked((9, 200, 210, 1)), frame_index=12, timestamp_s=1.2)
    assert event == CountEvent(12, 1.2, 9, 1, Direction.IN, "north gate", 11, 1.1)
    db = sqlite3.connect(":memory:")
    db.execute("create table events (frame, ts, track, cls, direction, name)")
    db.execute("insert into events values (?, ?, ?, ?, ?, ?)", event.as_row())
    assert db.execute("select * from events").fetchall() == [(12, 1.2, 9, 1, "in", "north gate")]


def test_zone_entries_exits_and_occupancy_with_hysteresis():
    zone = ZoneCounter("bench", [(100, 100), (300, 100), (300, 300), (100, 300)], hysteresis_frames=2, margin_rel=0.0, return_s=0.0, commit_rel=0.0)
    xs = [50, 150, 60, 150, 160, 170, 350, 180, 360, 370]  # in, out (flicker), in in, out, in, out out
    occupancy, events = [], []
    for x in xs:
        events.append([(e.track_id, e.direction.value) for e in zone.update(tracked((5, x, 200)))])
        occupancy.append(zone.occupancy_total)
    assert events == [[], [], [], [], [(5, "enter")], [], [], [], [], [(5, "exit")]]
    assert occupancy == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
    assert (zone.entries, zone.exits) == ({0: 1}, {0: 1})


def test_zone_occupancy_per_class_and_first_seen_inside():
    zone = ZoneCounter("room", [(0, 0), (400, 0), (400, 400), (0, 400)], hysteresis_frames=1, margin_rel=0.0, return_s=0.0, commit_rel=0.0)
    assert zone.update(tracked((1, 50, 50, 0), (2, 100, 100, 1), (3, 600, 100, 1), (-1, 200, 200, 1))) == []
    assert zone.occupancy == {0: 1, 1: 1}  # 3 is outside, -1 is not a track
    assert zone.entries == {}  # present from the first frame: occupancy, not an entry
    events = zone.update(tracked((1, 50, 500, 0), (2, 100, 100, 1), (3, 300, 100, 1)))
    assert [(e.track_id, e.direction) for e in events] == [(1, Direction.EXIT), (3, Direction.ENTER)]
    assert zone.occupancy == {1: 2}


def test_concave_zone():
    # An L-shaped zone; (300, 100) is in its notch, i.e. outside.
    zone = ZoneCounter("L", [(0, 0), (200, 0), (200, 200), (400, 200), (400, 400), (0, 400)], hysteresis_frames=1, margin_rel=0.0, return_s=0.0, commit_rel=0.0)
    zone.update(tracked((1, 300, 100), (2, 100, 100), (3, 300, 300)))
    assert zone.occupancy_total == 2


def test_count_by_class():
    det = tracked((1, 0, 10, 0), (-1, 0, 10, 0), (2, 0, 10, 3), (3, 0, 10, 3))
    assert count_by_class(det) == {0: 1, 3: 2}
    assert count_by_class(det, confirmed_only=False) == {0: 2, 3: 2}
    with pytest.raises(InputError, match="track_id is None"):
        count_by_class(Detections.empty())


def test_stale_tracks_are_forgotten():
    line = LineCounter("gate", START, END, forget_s=0.5)
    line.update(tracked((1, 200, 150)))
    for _ in range(70):
        line.update(tracked())
    assert line.num_tracks == 0


def test_bad_input_and_config_are_reported():
    line = LineCounter("gate", START, END)
    with pytest.raises(InputError, match="not tracked"):
        line.update(Detections.empty())
    with pytest.raises(InputError, match="twice"):
        line.update(tracked((1, 0, 0), (1, 5, 5)))
    line.update(tracked(), frame_index=5)
    with pytest.raises(InputError, match="must increase"):
        line.update(tracked(), frame_index=5)
    with pytest.raises(ConfigError, match="same point"):
        LineCounter("gate", (1, 1), (1, 1))
    with pytest.raises(ConfigError, match="anchor"):
        LineCounter("gate", START, END, anchor="top")
    with pytest.raises(ConfigError, match="hysteresis_frames"):
        LineCounter("gate", START, END, hysteresis_frames=0, **EXACT)
    with pytest.raises(ConfigError, match="finite"):
        LineCounter("gate", (0, float("nan")), END)
    with pytest.raises(ConfigError, match="V >= 3"):
        ZoneCounter("z", [(0, 0), (1, 1)])
    with pytest.raises(ConfigError, match="zero area"):
        ZoneCounter("z", [(0, 0), (1, 1), (2, 2)])


def test_class_filter_counts_only_the_chosen_classes():
    line = LineCounter("gate", START, END, hysteresis_frames=1, **EXACT, classes=[2])
    zone = ZoneCounter("below", [(0, 200), (600, 200), (600, 600), (0, 600)], hysteresis_frames=1, margin_rel=0.0, return_s=0.0, commit_rel=0.0, classes=[2])
    frames = [tracked((1, 150, 190, 0), (2, 250, 190, 2)), tracked((1, 150, 210, 0), (2, 250, 210, 2))]
    assert run(line, frames) == [[], [(2, "in", 2)]]
    assert [[e.track_id for e in zone.update(f)] for f in frames] == [[], [2]]
    assert (line.in_counts, zone.entries, zone.occupancy) == ({2: 1}, {2: 1}, {2: 1})
    with pytest.raises(ConfigError, match="classes"):
        LineCounter("gate", START, END, classes=["person"])


# ------------------------------------------------------------------ a crossing means the object passed


def box_at(tid, x, y, h=100.0, w=40.0):
    """One tracked detection whose bottom centre is (x, y), box h px tall."""
    return Detections(np.array([[x - w / 2, y - h, x + w / 2, y]], np.float32), np.array([0.9], np.float32),
                      np.array([0], np.int32), np.array([tid], np.int32))


def feed(counter, positions, tid=1, fps=10.0, **kw):
    """Feed (x, y) bottom centres one per frame (None = not seen); returns all events incl. the flush."""
    events = []
    for f, p in enumerate(positions):
        det = Detections.empty(with_track_id=True) if p is None else box_at(tid, *p, **kw)
        events += counter.update(det, frame_index=f, timestamp_s=f / fps)
    return events + counter.flush()


def test_standing_on_the_line_with_wandering_feet_never_counts():
    # Line y = 200, boxes 100 px tall: the dead band is 10 px each side. Feet wander 8 px to and fro.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=1.0)
    ys = [150, 180] + [192, 207, 194, 208, 199, 203, 192, 207] * 10
    assert feed(line, [(200, y) for y in ys]) == []
    # The same with no band counts every wander: what users see from the common counters.
    naive = LineCounter("gate", START, END, margin_rel=0.0, return_s=0.0, commit_rel=0.0)
    assert len(feed(naive, [(200, y) for y in ys])) > 10


def test_touch_and_return_within_return_s_counts_neither_way():
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=2.0)
    # Steps 20 px over the line, stands 1 s, and goes back: undone within 2 s.
    ys = [150, 180, 220] + [220] * 10 + [180, 150] + [150] * 30
    assert feed(line, [(200, y) for y in ys]) == []
    assert (line.in_total, line.out_total) == (0, 0)
    # Walking on a box height past the line and coming back only after 3 s is two real crossings, each
    # reported once its window has passed.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=2.0)
    ys = [150, 180, 220] + [300] * 30 + [220, 180, 150] + [150] * 30
    events = feed(line, [(200, y) for y in ys])
    assert [(e.direction.value, e.crossed_frame) for e in events] == [("in", 2), ("out", 34)]
    assert [e.frame_index - e.crossed_frame for e in events] == [20, 20]  # reported return_s later


@pytest.mark.parametrize("keep_complete, directions", [(True, ["in", "out"]), (False, [])])
def test_a_walk_half_a_body_past_the_line_and_back_within_return_s_is_two_crossings(keep_complete, directions):
    # Line y = 200, boxes 100 px tall: band 10 px, complete at 50 px past the line. Walks 70 px past it and
    # comes back 1.5 s later, inside return_s (3 s): he passed it twice; a lines' default.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=3.0, keep_complete=keep_complete)
    ys = [150, 180, 220, 250, 270] + [270] * 10 + [250, 220, 180, 150] + [150] * 40
    events = feed(line, [(200, y) for y in ys])
    assert [e.direction.value for e in events] == directions
    if keep_complete:  # each at its own crossing, the first reported when the return is made
        assert [(e.crossed_frame, e.frame_index) for e in events] == [(2, 17), (17, 47)]
    # A step 30 px over (not complete) and back within return_s counts nothing either way.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=3.0, keep_complete=keep_complete)
    assert feed(line, [(200, y) for y in [150, 180, 230, 230, 230, 180, 150] + [150] * 40]) == []


def test_walking_along_a_line_feet_either_side_counts_nothing_even_with_keep_complete():
    # Line y = 200, boxes 100 px tall: band 5 px, a crossing complete 50 px past the line or 50 px along it.
    # Walking right along the line, feet 15 px below it for 0.8 s, then 15 px above, and so on: each side change
    # is complete by the walk along it, but none got 50 px past the line, so each return undoes the last.
    line = LineCounter("kerb", (0, 200), (1000, 200), return_s=3.0, keep_complete=True)
    ys = ([215] * 8 + [185] * 8) * 2
    walk = [(100, 185)] + [(108 + 8 * k, y) for k, y in enumerate(ys)] + [(400, 150), (400, 120)] + [None] * 40
    assert feed(line, walk) == []


def test_zones_undo_an_entry_left_within_return_s_by_default():
    # A 200 x 120 px zone, boxes 100 px tall: an entry is complete 30 px inside (half its 60 px depth). Someone
    # cutting its corner 35 px deep and out again within return_s counts nothing by default; with keep_complete,
    # an entry and an exit.
    polygon = [(100, 100), (300, 100), (300, 220), (100, 220)]
    cut = [(80 + 11 * k, 240 - 11 * k) for k in range(6)] + [(146 + 11 * k, 196 + 11 * k) for k in range(5)]
    assert feed(ZoneCounter("mat", polygon, return_s=1.0), cut + [(200, 300)] * 20) == []
    events = feed(ZoneCounter("mat", polygon, return_s=1.0, keep_complete=True), cut + [(200, 300)] * 20)
    assert [e.direction.value for e in events] == ["enter", "exit"]
    with pytest.raises(ConfigError, match="keep_complete must be true or false"):
        ZoneCounter("mat", polygon, keep_complete="yes")


def test_standing_just_past_the_line_and_stepping_back_however_late_counts_nothing():
    # Line y = 200, boxes 100 px tall: band 10 px, complete at 50 px past the line (commit_rel 0.5).
    # Steps 30 px over and stands there talking for 20 s, feet shuffling, then steps back.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=2.0, commit_rel=0.5)
    ys = [150, 180, 220] + [225, 232, 228, 236] * 50 + [180, 150] + [150] * 30
    assert feed(line, [(200, y) for y in ys]) == []
    # The same man walking away along the line once past it (60 px from where he crossed): complete, counted.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=2.0, commit_rel=0.5)
    pts = [(200, 150), (200, 180), (200, 220)] + [(200 + 6 * k, 225) for k in range(1, 40)]
    assert [e.direction.value for e in feed(line, pts)] == ["in"]
    # Gone from view just past the line (behind a van): counted once unseen for return_s, at the crossing.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=2.0, commit_rel=0.5)
    events = feed(line, [(200, 150), (200, 180), (200, 220), (200, 228)] + [None] * 30)
    assert [(e.direction.value, e.crossed_frame, e.frame_index) for e in events] == [("in", 2, 23)]


def test_a_zone_counts_a_walk_through_its_corner_but_not_a_man_standing_just_inside_its_edge():
    # A 200 x 200 px zone, boxes 100 px tall: band 5 px; complete 50 px inside (at most half its 100 px depth)
    # or 50 px from where the point crossed.
    zone = lambda: ZoneCounter("yard", [(100, 100), (300, 100), (300, 300), (100, 300)], return_s=1.0,
                               commit_rel=0.5)
    # Cuts across the top strip, never more than 20 px inside: one entry, one exit.
    z = zone()
    events = feed(z, [(60 + 10 * k, 120) for k in range(30)])
    assert [e.direction.value for e in events] == ["enter", "exit"]
    # Stands 10-20 px inside the left edge for 10 s, then steps back out: nothing.
    z = zone()
    events = feed(z, [(80, 200)] * 3 + [(110, 200), (118, 204), (114, 198), (120, 202)] * 25 + [(80, 200)] * 20)
    assert events == [] and z.entries == {} and z.exits == {}
    # commit_rel 0: complete as soon as it is over the band, so the stand-and-step-back is two crossings.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=2.0, commit_rel=0.0)
    events = feed(line, [(200, y) for y in [150, 180, 220] + [228] * 50 + [180, 150] + [150] * 30])
    assert [e.direction.value for e in events] == ["in", "out"]


def test_a_jump_over_the_band_between_low_rate_frames_counts_once_at_the_interpolated_frame():
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=0.0)
    events = []
    # One frame in 8 processed (1.25 fps of a 10 fps camera): y 120 -> 280 in one step, 20 px/frame.
    for f, y in ((0, 120), (8, 280), (16, 440)):
        events += line.update(box_at(1, 200, y), frame_index=f, timestamp_s=f / 10)
    assert [(e.direction.value, e.crossed_frame) for e in events] == [("in", 4)]  # y = 210 at frame 4.5
    assert events[0].crossed_s == pytest.approx(0.45)


def test_box_trigger_needs_every_corner_past_the_band():
    line = LineCounter("gate", START, END, trigger="box", margin_rel=0.0, return_s=0.0, commit_rel=0.0)
    # Feet cross at y = 200 but the box (100 px tall) only clears the line once its top passes it.
    events = [e.crossed_frame for e in feed(line, [(200, y) for y in (150, 190, 210, 250, 290, 310)])]
    assert len(events) == 1 and events[0] >= 4
    anchor = LineCounter("gate", START, END, margin_rel=0.0, return_s=0.0, commit_rel=0.0)
    assert [e.crossed_frame for e in feed(anchor, [(200, y) for y in (150, 190, 210, 250, 290, 310)])] == [2]


def test_a_tentative_track_crossing_before_confirmation_counts_once_confirmed():
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=0.0)
    events = []
    for f, (tid, y) in enumerate([(-2 - 7, 150), (-2 - 7, 230), (7, 260), (7, 280)]):  # confirmed as 7
        events += line.update(box_at(tid, 200, y), frame_index=f)
    assert [(e.track_id, e.direction.value, e.crossed_frame, e.frame_index) for e in events] == [(7, "in", 1, 2)]
    # A tentative track that is never confirmed never counts.
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=0.0)
    assert feed(line, [(200, 150), (200, 230), (200, 260)], tid=-2 - 3) == []


def test_objects_walking_in_and_out_of_the_picture_count_on_a_line_by_its_edge():
    # A 768 px wide picture and a vertical line 28 px from its right edge, drawn upwards: in = walking right.
    line = LineCounter("edge", (740, 480), (740, 230), margin_rel=0.1, return_s=0.0)
    events = []
    # Walks in from beyond the right edge: first box clipped at the border, anchor never right of 748.
    for f, (x0, x1) in enumerate([(735, 768), (726, 766), (700, 740), (680, 720), (660, 700)]):
        det = Detections(np.array([[x0, 300, x1, 400]], np.float32), np.array([0.9], np.float32),
                         np.array([0], np.int32), np.array([4], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
    assert [e.direction.value for e in events] == ["out"]
    # Walks out: the anchor of the clipped box stalls at 748 (in the band) and the track is gone.
    events += line.update(Detections.empty(with_track_id=True), frame_index=9, timestamp_s=0.9,
                          frame_size=(768, 576))
    for f, (x0, x1) in enumerate([(700, 740), (716, 756), (728, 768)], start=10):
        det = Detections(np.array([[x0, 300, x1, 400]], np.float32), np.array([0.9], np.float32),
                         np.array([0], np.int32), np.array([5], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
    events += line.update(Detections.empty(with_track_id=True), frame_index=13, timestamp_s=1.3,
                          frame_size=(768, 576))
    assert [(e.track_id, e.direction.value) for e in events] == [(4, "out"), (5, "in")]
    # Without the picture's size the clipped boxes never pass the band: nothing counts.
    blind = LineCounter("edge", (740, 480), (740, 230), margin_rel=0.1, return_s=0.0)
    for f, (x0, x1) in enumerate([(700, 740), (716, 756), (728, 768)]):
        det = Detections(np.array([[x0, 300, x1, 400]], np.float32), np.array([0.9], np.float32),
                         np.array([0], np.int32), np.array([5], np.int32))
        assert blind.update(det, frame_index=f) == []


def _step_in(line, boxes, start=0):
    """Feed one box per frame; each box is (x0, x1, score, track_id) with y from 300 to 400. Returns the events."""
    events = []
    for f, (x0, x1, score, tid) in enumerate(boxes, start=start):
        det = Detections(np.array([[x0, 300, x1, 400]], np.float32), np.array([score], np.float32),
                         np.array([0], np.int32), np.array([tid], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
    return events + line.flush()


@pytest.mark.parametrize("backtrack_s, score, height_scale, expected", [
    (1.5, 0.35, 1.0, [("out", 2)]),   # led back to the border: the crossing among the untracked boxes counts
    (0.0, 0.35, 1.0, []),             # off
    (0.25, 0.35, 1.0, []),            # the box at the border is 0.3 s before the track: out of reach
    (1.5, 0.2, 1.0, []),              # boxes the detector is unsure of (below low_score) lead nowhere
    (1.5, 0.35, 1.6, []),             # boxes of another size are someone (or something) else
])
def test_a_track_started_past_a_line_near_the_border_is_led_back_to_it_by_untracked_boxes(backtrack_s, score,
                                                                                          height_scale, expected):
    # A vertical line 28 px from the right edge, drawn upwards: in = walking right. Someone steps in from the
    # right; the tracker leaves their first three boxes without a track (-1) and starts one 20 px past the line.
    line = LineCounter("edge", (740, 480), (740, 230), margin_rel=0.1, return_s=0.0, backtrack_s=backtrack_s)
    h = 100 * height_scale
    loose = [(730, 768), (722, 762), (712, 752)]
    events = []
    for f, (x0, x1) in enumerate(loose):
        det = Detections(np.array([[x0, 400 - h, x1, 400]], np.float32), np.array([score], np.float32),
                         np.array([0], np.int32), np.array([-1], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
    events += _step_in(line, [(700, 740, 0.9, 4), (690, 730, 0.9, 4), (670, 710, 0.9, 4)], start=len(loose))
    assert [(e.direction.value, e.crossed_frame) for e in events] == expected


@pytest.mark.parametrize("ids, alive, expected", [
    ((-2, -3, -4), False, [("out", 2)]),  # a new tentative track on each step, each dropped: they lead back
    ((-2, -2, -2), True, []),             # one tentative track still seen now: someone else's, not led through
])
def test_backtracking_leads_through_tentative_tracks_the_tracker_dropped(ids, alive, expected):
    # As above, but the tracker gave each of the walker's first boxes a tentative track (a track with no velocity
    # yet loses a walker at a few frames a second) and dropped it on the next frame.
    line = LineCounter("edge", (740, 480), (740, 230), margin_rel=0.1, return_s=0.0, backtrack_s=1.5)
    events = []
    for f, ((x0, x1), tid) in enumerate(zip([(730, 768), (722, 762), (712, 752)], ids)):
        det = Detections(np.array([[x0, 300, x1, 400]], np.float32), np.array([0.5], np.float32),
                         np.array([0], np.int32), np.array([tid], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
    walker = [[700, 300, 740, 400], [690, 300, 730, 400], [670, 300, 710, 400]]
    for f, box in enumerate(walker, start=3):
        boxes, tids = [box], [4]
        if alive:  # the tentative track is still seen, by the border
            boxes, tids = boxes + [[730, 300, 768, 400]], tids + [-2]
        det = Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.9, np.float32),
                         np.zeros(len(boxes), np.int32), np.array(tids, np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
    events += line.flush()
    assert [(e.direction.value, e.crossed_frame) for e in events] == expected


def test_backtracking_is_refused_out_of_range_and_zones_have_none():
    with pytest.raises(ConfigError, match="backtrack_s"):
        LineCounter("edge", (740, 480), (740, 230), backtrack_s=-1.0)
    assert "backtrack_s" not in inspect.signature(ZoneCounter).parameters  # a zone has no border entry


def test_at_a_low_frame_rate_the_border_reaches_as_far_as_a_walk_between_processed_frames():
    # Every 4th frame of a 10 fps camera: the walker is first seen 30 px inside the picture, past the line
    # 28 px from its right edge, never touching the border.
    def walk(edge_rel):
        line = LineCounter("edge", (740, 480), (740, 230), margin_rel=0.1, return_s=0.0, edge_rel=edge_rel)
        events = line.update(Detections.empty(with_track_id=True), frame_index=0, timestamp_s=0.0,
                             frame_size=(768, 576))
        for f, x0 in ((4, 698), (8, 668), (12, 638)):
            det = Detections(np.array([[x0, 300, x0 + 40, 400]], np.float32), np.array([0.9], np.float32),
                             np.array([0], np.int32), np.array([4], np.int32))
            events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
        return [(e.direction.value, e.crossed_frame) for e in events]

    # 4 + 0.2 x 100 px x 3 skipped frames = 64 px of reach. He stepped in since the frame before (f0): from the
    # border (x = 768) at f0 to x = 718 at f4, he left the band (x = 730) behind at f3.
    assert walk(0.2) == [("out", 3)]
    assert walk(0.0) == []
    # Every frame processed: no extra reach, someone appearing 30 px inside (from behind a pillar) is not
    # counted as having come in through the border.
    line = LineCounter("edge", (740, 480), (740, 230), margin_rel=0.1, return_s=0.0, edge_rel=0.2)
    events = []
    for f, x0 in enumerate((698, 694, 690)):
        det = Detections(np.array([[x0, 300, x0 + 40, 400]], np.float32), np.array([0.9], np.float32),
                         np.array([0], np.int32), np.array([4], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10, frame_size=(768, 576))
    assert events == []


def test_the_border_reaches_as_far_as_a_walk_in_seconds_not_in_frames():
    # Someone behind a cyclist at a kerb, whose unsure boxes stretch down over the cyclist's legs: over the
    # line (y = 200, "in" = down) at the third processed frame, short of complete (half a box height past
    # it) at the fourth, his box's bottom 13 px above the picture's, then gone. Every 2nd frame of a 25 fps camera is
    # 0.08 s: nobody walks 13 px out of the picture in that time, so he did not leave through the border, and
    # the crossing, never complete, is dropped at the end of the stream. Every 2nd frame of a 10 fps camera
    # is 0.2 s: the border reaches 4 + 0.2 x 218 px, so he left through it, past the line.
    def crossings(fps):
        line = LineCounter("kerb", (300, 200), (640, 200), return_s=3.0, nominal_fps=fps)
        events = []
        for f, box in enumerate(([441, 58, 492, 157], [440, 56, 491, 174], [437, 48, 497, 209], [435, 41, 495, 259],
                                  None, None)):
            det = Detections.empty(with_track_id=True) if box is None else Detections(
                np.array([box], np.float32), np.array([0.5], np.float32), np.array([0], np.int32),
                np.array([7], np.int32))
            events += line.update(det, frame_index=2 * f, timestamp_s=2 * f / fps, frame_size=(640, 272))
        events += line.flush()
        return [(e.direction.value, e.crossed_frame) for e in events]

    assert crossings(25.0) == []
    assert crossings(10.0) == [("in", 4)]


def test_crossings_waiting_out_return_s_are_reported_by_flush():
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=5.0)
    events = []
    for f, y in enumerate((150, 180, 230, 260)):
        events += line.update(box_at(1, 200, y), frame_index=f)
    assert events == [] and line.num_pending == 1
    (event,) = line.flush()
    assert (event.direction, event.frame_index, event.crossed_frame) == (Direction.IN, 3, 2)
    assert line.flush() == [] and line.in_total == 1


def test_crossings_not_complete_when_the_stream_ends_or_the_scene_cuts_are_dropped():
    # Line y = 200, boxes 100 px tall: complete at 50 px past it. One walker is 60 px past at the end,
    # the other only 20 px (a box whose bottom a passing car cut short, or someone caught mid-step).
    line = LineCounter("gate", START, END, margin_rel=0.1, return_s=5.0)
    for f, (y1, y2) in enumerate(((150, 150), (180, 180), (230, 205), (260, 220))):
        line.update(Detections(np.array([[130, y1 - 100, 170, y1], [230, y2 - 100, 270, y2]], np.float32),
                               np.full(2, 0.9, np.float32), np.zeros(2, np.int32), np.array([1, 2], np.int32)),
                    frame_index=f)
    assert line.num_pending == 2
    assert [(e.track_id, e.direction) for e in line.reset_tracks()] == [(1, Direction.IN)]
    assert line.num_pending == 0 and line.in_total == 1 and line.flush() == []


def test_the_first_frame_after_a_scene_cut_has_no_gap_to_walk_from():
    """A close-up cyclist (a box the picture's height) first seen just after a cut, 4 frames after the last
    frame processed before it, riding right across x = 400. The border's reach grows with the gap between
    processed frames (someone could have walked in from it meanwhile), but a new scene has no frame before it:
    his box 110 px from the right border is not taken as having come in there (which would count him out and
    at once back in, i.e. nothing). He crosses in once."""
    line = LineCounter("shot", (400, 272), (400, 0), margin_rel=0.05, return_s=1.0)
    size = (640, 272)

    def box(f, x1, x2):
        return line.update(Detections(np.array([[x1, 72, x2, 272]], np.float32), np.array([0.6], np.float32),
                                      np.array([0], np.int32), np.array([3], np.int32)),
                           frame_index=f, timestamp_s=f / 10, frame_size=size)

    assert line.update(Detections.empty(with_track_id=True), frame_index=0, timestamp_s=0.0, frame_size=size) == []
    events = line.reset_tracks(4, 0.4)
    for f, x1 in zip(range(4, 8), (200, 260, 320, 380)):
        events += box(f, x1, min(x1 + 330, 640))
    events += line.flush()
    assert [(e.direction, e.crossed_frame) for e in events] == [(Direction.IN, 5)]


def test_dithering_over_a_zone_edge_is_one_entry_at_the_first_moment():
    zone = ZoneCounter("mat", [(100, 100), (300, 100), (300, 300), (100, 300)], margin_rel=0.05, return_s=1.0)
    xs = [50, 80, 120, 90, 125, 150, 180, 200] + [200] * 20
    events = feed(zone, [(x, 200) for x in xs])
    assert [(e.direction.value, e.crossed_frame) for e in events] == [("enter", 2)]


def test_self_intersecting_zone_and_bad_counter_options_are_refused():
    with pytest.raises(ConfigError, match=r"edges 0 .* and 2 .* cross"):
        ZoneCounter("bow", [(0, 0), (100, 100), (100, 0), (0, 60)])
    with pytest.raises(ConfigError, match="margin_rel"):
        LineCounter("gate", START, END, margin_rel=-0.1)
    with pytest.raises(ConfigError, match="trigger"):
        LineCounter("gate", START, END, trigger="corner")
    with pytest.raises(ConfigError, match="return_s"):
        LineCounter("gate", START, END, return_s=float("nan"))


def test_a_dead_band_wider_than_the_picture_is_a_config_error():
    line = LineCounter("gate", START, END, margin_px=900)
    with pytest.raises(ConfigError, match=r"margin_px 900 .* 768x576 picture"):
        line.update(box_at(1, 200, 150), frame_index=0, frame_size=(768, 576))
    zone = ZoneCounter("mat", [(0, 0), (10, 0), (10, 10)], margin_px=5)
    assert zone.update(box_at(1, 200, 150), frame_index=0, frame_size=(768, 576)) == []


# --- stitching: a walker's track lost behind someone on the line and a new one born on the other side ------

SIZE = (768, 576)
STITCH = {"margin_rel": 0.05, "return_s": 0.0, "stitch_s": 2.0, "stitch_rel": 0.5}


def stitch_feed(counter, frames, looks=None, fps=10.0):
    """Feed frames of (track_id, x, y[, class]) bottom centres (boxes 100 px tall) at ``fps``, with the
    picture's size; ``looks`` maps track id -> appearance vector. Returns every event incl. the flush as
    (track_id, direction, class_id, crossed_frame)."""
    events = []
    for f, objects in enumerate(frames):
        objects = [o if len(o) > 3 else (*o, 0) for o in objects]
        if objects:
            det = Detections(np.array([(x - 20, y - 100, x + 20, y) for _, x, y, _ in objects], np.float32),
                             np.full(len(objects), 0.9, np.float32), np.array([o[3] for o in objects], np.int32),
                             np.array([o[0] for o in objects], np.int32))
        else:
            det = Detections.empty(with_track_id=True)
        look = None if looks is None else np.stack([looks[o[0] if o[0] >= 0 else -2 - o[0]] for o in objects]) \
            if objects else np.zeros((0, APPEARANCE_DIM), np.float32)
        events += counter.update(det, frame_index=f, timestamp_s=f / fps, frame_size=SIZE, appearance=look)
    events += counter.flush()
    return [(e.track_id, e.direction.value, e.class_id, e.crossed_frame) for e in events]


def hidden_walk(new_at, new_frame=9, new_id=2, old=(200, 170), step=10):
    """Track 1 walks down towards the line y = 200 and is last seen at ``old`` (frame 3, above the line);
    track ``new_id`` is first seen at ``new_at`` on ``new_frame`` and walks on ``step`` px a frame down."""
    frames = [[(1, old[0], old[1] - 30 + 10 * f)] for f in range(4)] + [[] for _ in range(4, new_frame)]
    frames += [[(new_id, new_at[0], new_at[1] + step * i)] for i in range(4)]
    return frames


def test_a_walker_lost_behind_someone_and_found_as_a_new_track_on_the_other_side_counts_once():
    line = LineCounter("gate", START, END, **STITCH)
    # Gone 30 px above the line at frame 3, a new track 35 px below it at frame 9: 0.6 s later, 65 px away
    # (reach (0.5 + 0.5 x 0.6) x 100 px = 80 px). One crossing, the new track's, interpolated between the two.
    assert stitch_feed(line, hidden_walk((200, 235))) == [(2, "in", 0, 6)]
    assert (line.in_total, line.out_total) == (1, 0)
    # The other way: gone below, found above: out.
    line = LineCounter("gate", START, END, **STITCH)
    frames = [[(1, 200, 240 - 10 * f)] for f in range(4)] + [[]] * 4 + [[(2, 200, 160 - 10 * i)] for i in range(4)]
    assert [e[:2] for e in stitch_feed(line, frames)] == [(2, "out")]
    # Off: the new track has no known origin, nothing counts.
    off = LineCounter("gate", START, END, **{**STITCH, "stitch_s": 0.0})
    assert stitch_feed(off, hidden_walk((200, 235))) == []
    # On by default.
    default = LineCounter("gate", START, END, margin_rel=0.05, return_s=0.0)
    assert len(stitch_feed(default, hidden_walk((200, 235)))) == 1


@pytest.mark.parametrize("settle_ratio, counted", [(1.25, False), (0.0, True)])
def test_a_track_first_seen_with_its_legs_hidden_does_not_cross_as_they_appear(settle_ratio, counted):
    # A cyclist waiting at the kerb, legs hidden by a van when his track starts: the box's top stays where his
    # head is while its bottom comes down past the line (y = 200) over the next frames as the van clears him.
    # His feet never moved: while the track is young and its box height still jumps, its side is taken
    # again. The box then holds its height: a later walk across the line counts as usual.
    line = LineCounter("kerb", START, END, margin_rel=0.05, return_s=0.0, commit_rel=0.0, settle_ratio=settle_ratio)
    events = []
    for f, (bottom, h) in enumerate([(180, 80), (230, 130), (262, 162), (263, 162), (264, 163)]):
        events += line.update(box_at(7, 200, bottom, h=h), frame_index=f, timestamp_s=f / 10)
    events += line.flush()
    assert [e.direction.value for e in events] == (["in"] if counted else [])
    # Settled, he rides back up across the line: that counts.
    line = LineCounter("kerb", START, END, margin_rel=0.05, return_s=0.0, commit_rel=0.0, settle_ratio=settle_ratio)
    steps = [(180, 80), (230, 130), (262, 162), (263, 162)] + [(263 - 30 * i, 162) for i in range(1, 5)]
    events = [e for f, (bottom, h) in enumerate(steps)
              for e in line.update(box_at(7, 200, bottom, h=h), frame_index=f, timestamp_s=f / 10)] + line.flush()
    assert [e.direction.value for e in events] == (["in", "out"] if counted else ["out"])
    # A walker seen mid-picture with a steady box who walks across: counted either way.
    line = LineCounter("gate", START, END, margin_rel=0.05, return_s=0.0, commit_rel=0.0,
                       settle_ratio=settle_ratio)
    events = [e for f in range(8) for e in line.update(box_at(8, 200, 150 + 15 * f), frame_index=f,
                                                         timestamp_s=f / 10)] + line.flush()
    assert [e.direction.value for e in events] == ["in"]
    with pytest.raises(ConfigError, match="settle_ratio"):
        LineCounter("gate", START, END, settle_ratio=0.5)


def _zone_walk(zone, steps, tids=None):
    """Feed (bottom y, box height) at x = 50, 0.4 s apart (a board's rate), of track 5 or tids[k]; all events
    incl. the flush."""
    events = []
    for f, (bottom, h) in enumerate(steps):
        events += zone.update(box_at(5 if tids is None else tids[f], 50, bottom, h=h), frame_index=f,
                              timestamp_s=0.4 * f)
    return [e.direction.value for e in events + zone.flush()]


@pytest.mark.parametrize("max_shrink, entries", [(1.6, ["enter"]), (0.0, [])])
def test_a_box_that_loses_the_legs_for_a_frame_does_not_undo_an_entry(max_shrink, entries):
    # A woman walks into a zone just past its top edge (y = 0), then behind a post: for one frame her box
    # is her head and chest only (25 px instead of 60), its bottom 35 px above her feet and outside the zone.
    # Used, that box takes her out again within return_s, which undoes the entry; not used, she stays in.
    # The tracker then loses her, and a new track (6) first seen inside the zone is no entry.
    zone = ZoneCounter("post", [(0, 0), (100, 0), (100, 100), (0, 100)], margin_rel=0.05, return_s=1.0,
                       commit_rel=0.0, max_shrink=max_shrink)
    steps = [(-40, 60), (20, 60), (-15, 25), (25, 60), (30, 60), (35, 60), (40, 60)]
    assert _zone_walk(zone, steps, tids=[5, 5, 5, 6, 6, 6, 6]) == entries


@pytest.mark.parametrize("score, max_shrink_low, directions", [(0.15, 1.45, []), (0.5, 1.45, ["in"]),
                                                                (0.15, 0.0, ["in"])])
def test_a_half_hidden_box_the_detector_is_unsure_of_is_held_to_max_shrink_low(score, max_shrink_low, directions):
    # A short segment x = 250 from y = 240 up to y = 195; a man walks right 1-6 px below its end. For one frame
    # someone in front hides his legs: his box is 50 px tall instead of 75, its bottom at y = 217, beside the
    # segment. Used, it makes his path cut the segment (an "in" nobody made). A box scoring below low_score
    # (0.3) that is more than max_shrink_low (1.45) times shorter is not used; a confident one only beyond
    # max_shrink (1.6), so that same box from a confident detection is used.
    line = LineCounter("short", (250, 240), (250, 195), return_s=0.0, commit_rel=0.0,
                       max_shrink_low=max_shrink_low)
    steps = [(218, 240, 75, 0.6), (226, 241, 75, 0.6), (233, 217, 50, score), (248, 245, 74, 0.6),
             (261, 246, 71, 0.6), (275, 250, 75, 0.6)]
    events = []
    for f, (x, y, h, s) in enumerate(steps):
        det = Detections(np.array([[x - 15, y - h, x + 15, y]], np.float32), np.array([s], np.float32),
                         np.array([0], np.int32), np.array([3], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 10)
    assert [e.direction.value for e in events + line.flush()] == directions
    with pytest.raises(ConfigError, match="max_shrink_low"):
        LineCounter("short", (250, 240), (250, 195), max_shrink_low=0.5)
    with pytest.raises(ConfigError, match="low_score"):
        LineCounter("short", (250, 240), (250, 195), low_score=1.5)


def test_a_shrunken_box_is_left_out_once_in_a_row_only():
    # Someone who sits down, or stays half hidden, is followed again from the next frame on: here she walks
    # out of the zone half hidden after one left-out box, and her exit counts.
    zone = ZoneCounter("post", [(0, 0), (100, 0), (100, 100), (0, 100)], margin_rel=0.05, return_s=0.0,
                       commit_rel=0.0)
    steps = [(-40, 60), (20, 60), (30, 60), (15, 25), (-10, 25), (-30, 25), (-50, 25)]
    assert _zone_walk(zone, steps) == ["enter", "exit"]
    with pytest.raises(ConfigError, match="max_shrink"):
        ZoneCounter("post", [(0, 0), (100, 0), (100, 100), (0, 100)], max_shrink=0.9)


def test_a_new_track_first_seen_in_the_band_is_stitched_when_it_leaves_the_band():
    # Track 1 is gone 30 px above the line (frame 3). A tentative track (id -2 - 2) is first seen on the line
    # itself, in the band, at frame 9, leaves the band below it at frame 10, and is confirmed as track 2 at
    # frame 11. Its birth is where it left the band: the walk counts once, as track 2's crossing, at the frame
    # interpolated between track 1's last sighting (frame 3, 30 px above) and frame 10 (10 px below): 9.
    frames = [[(1, 200, 140 + 10 * f)] for f in range(4)] + [[] for _ in range(4, 9)]
    frames += [[(-4, 200, 200)], [(-4, 200, 210)]] + [[(2, 200, 225 + 15 * i)] for i in range(4)]
    assert stitch_feed(LineCounter("gate", START, END, **STITCH), frames) == [(2, "in", 0, 9)]
    # Confirmed while still in the band: no birth to stitch (as for a track confirmed on first sight there).
    confirmed_on_line = [[(1, 200, 140 + 10 * f)] for f in range(4)] + [[] for _ in range(4, 9)]
    confirmed_on_line += [[(2, 200, 200)], [(2, 200, 201)]] + [[(2, 200, 225 + 15 * i)] for i in range(4)]
    assert stitch_feed(LineCounter("gate", START, END, **STITCH), confirmed_on_line) == []
    # Leaving the band back on the gone track's side: nothing to stitch, nothing counts.
    back = [[(1, 200, 140 + 10 * f)] for f in range(4)] + [[] for _ in range(4, 9)]
    back += [[(-4, 200, 200)], [(-4, 200, 190)]] + [[(2, 200, 175 - 15 * i)] for i in range(4)]
    assert stitch_feed(LineCounter("gate", START, END, **STITCH), back) == []


@pytest.mark.parametrize("case, frames", [
    ("too late", hidden_walk((200, 235), new_frame=25)),  # 2.2 s > stitch_s
    ("too far", hidden_walk((290, 235))),  # 120 px > 80 px of reach
    ("same side", hidden_walk((200, 185), step=-10)),  # found above the line again, walking back: no crossing
    ("beside the segment", hidden_walk((330, 235), old=(330, 170))),  # the path passes the segment's end
])
def test_a_new_track_is_not_stitched_when_too_late_too_far_or_on_the_same_side(case, frames):
    line = LineCounter("gate", START, END, **STITCH)
    assert stitch_feed(line, frames) == [], case


def test_a_track_gone_or_new_at_the_picture_border_is_not_stitched():
    across = ((0.0, 200.0), (768.0, 200.0))  # the whole picture's width
    # Boxes 40 px wide: a bottom centre at x = 21 puts the box 1 px from the left border.
    new_at_border = hidden_walk((21, 235), old=(60, 170))
    gone_at_border = hidden_walk((60, 235), old=(21, 170))
    mid_picture = hidden_walk((61, 235), old=(100, 170))  # the same walk 40 px further in
    assert stitch_feed(LineCounter("gate", *across, **STITCH), new_at_border) == []
    assert stitch_feed(LineCounter("gate", *across, **STITCH), gone_at_border) == []
    assert [e[:2] for e in stitch_feed(LineCounter("gate", *across, **STITCH), mid_picture)] == [(2, "in")]


def test_stitching_needs_the_picture_size():
    line = LineCounter("gate", START, END, **STITCH)
    events = [e for f, objects in enumerate(hidden_walk((200, 235)))
              for e in line.update(tracked(*objects), frame_index=f, timestamp_s=f / 10)]
    assert events + line.flush() == []


def _look(bin_index: int) -> np.ndarray:
    """An appearance vector with every band's histogram all in one bin (0 = same colours, 1 = disjoint)."""
    from edge_runtime.vision.appearance import BANDS

    v = np.zeros(APPEARANCE_DIM, np.float32)
    band = APPEARANCE_DIM // len(BANDS)
    v[[b * band + bin_index for b in range(len(BANDS))]] = 1.0
    return v


def test_a_new_track_of_other_colours_is_not_stitched_with_the_appearance_gate():
    options = {**STITCH, "stitch_appearance": 0.4}
    same = {1: _look(0), 2: _look(0)}
    other = {1: _look(0), 2: _look(5)}
    assert [e[:2] for e in stitch_feed(LineCounter("gate", START, END, **options), hidden_walk((200, 235)), same)] \
        == [(2, "in")]
    assert stitch_feed(LineCounter("gate", START, END, **options), hidden_walk((200, 235)), other) == []
    # The gate off (1): colours are not compared.
    assert len(stitch_feed(LineCounter("gate", START, END, **STITCH), hidden_walk((200, 235)), other)) == 1
    with pytest.raises(InputError, match="appearance"):
        LineCounter("gate", START, END, **options).update(
            box_at(1, 200, 150), frame_index=0, frame_size=SIZE, appearance=np.zeros((2, APPEARANCE_DIM), np.float32))


def test_of_two_gone_tracks_the_nearest_is_stitched_one_to_one():
    line = LineCounter("gate", START, END, **{**STITCH, "stitch_rel": 2.0})  # both gone tracks within reach
    # Track 1 (class 0) gone at (150, 170), track 3 (class 1) gone at (250, 170); a new track (class 5) found
    # at (235, 230) continues track 3, the nearer: its crossing carries track 3's class.
    frames = [[(1, 150, 140 + 10 * f, 0), (3, 250, 140 + 10 * f, 1)] for f in range(4)] + [[]] * 2
    frames += [[(2, 235, 230 + 10 * i, 5)] for i in range(3)]
    assert [e[:3] for e in stitch_feed(line, frames)] == [(2, "in", 1)]
    # Two new tracks, each nearer one of the gone ones: each continues its own.
    line = LineCounter("gate", START, END, **{**STITCH, "stitch_rel": 2.0})
    frames = [[(1, 150, 140 + 10 * f, 0), (3, 250, 140 + 10 * f, 1)] for f in range(4)] + [[]] * 2
    frames += [[(2, 235, 230 + 10 * i, 5), (4, 160, 232 + 10 * i, 5)] for i in range(3)]
    assert sorted(e[:3] for e in stitch_feed(line, frames)) == [(2, "in", 1), (4, "in", 0)]
    # One gone track, two new ones: one crossing, the nearer one's (70 px away, the other 82 px).
    line = LineCounter("gate", START, END, **{**STITCH, "stitch_rel": 2.0})
    frames = [[(1, 200, 140 + 10 * f)] for f in range(4)] + [[]] * 2
    frames += [[(4, 150, 235 + 10 * i), (2, 235, 230 + 10 * i)] for i in range(3)]
    assert [e[:2] for e in stitch_feed(line, frames)] == [(2, "in")]


def test_of_two_gone_tracks_the_likelier_continuation_in_the_time_between_is_stitched():
    # Track 1 (class 0) is last seen at (150, 170) on frame 3, track 3 (class 1) at (250, 170) on frame 12; a new
    # track (class 5) is first seen at (185, 235) on frame 21. Track 1 is nearer (74 px against 92 px), but it had
    # 1.8 s to walk there (a reach of 185 px), track 3 only 0.9 s (118 px): 74 px is a small part of what 1.8 s
    # allows, and a walker seen 0.9 s ago being 92 px on is likelier than one seen 1.8 s ago being 74 px on.
    line = LineCounter("gate", START, END, **{**STITCH, "stitch_s": 3.0, "stitch_rel": 0.75})
    frames = [[(1, 150, 140 + 10 * f, 0), (3, 250, 170, 1)] for f in range(4)]
    frames += [[(3, 250, 170, 1)] for _ in range(4, 13)] + [[]] * 8
    frames += [[(2, 185, 235 + 10 * i, 5)] for i in range(3)]
    assert [e[:3] for e in stitch_feed(line, frames)] == [(2, "in", 1)]


@pytest.mark.parametrize("deepest_y, events", [(210, []), (250, [(1, "in"), (2, "out")])])
def test_a_stitched_track_takes_over_the_gone_tracks_crossing_not_yet_complete(deepest_y, events):
    # A man walks down over the line y = 200 and stands at deepest_y; his track is lost there (frame 16) and a new
    # track takes him walking back up, first seen 20 px above the line (frame 20). 10 px over the line (half a box
    # height is needed to complete a crossing) he never passed it: the new track carries his crossing on, and
    # walking back undoes it, as it would have undone it on his own track. 50 px over, he had passed it: that
    # crossing stays his, and the walk back is the new track's own crossing.
    line = LineCounter("gate", START, END, **{**STITCH, "return_s": 3.0})
    frames = [[(1, 200, y)] for y in (150, 165, 180, 195)] + [[(1, 200, deepest_y)] for _ in range(4, 16)]
    frames += [[]] * 4 + [[(2, 200, 180 - 10 * i)] for i in range(4)] + [[]] * 40
    assert [e[:2] for e in stitch_feed(line, frames)] == events


def test_a_gone_track_that_comes_back_is_never_counted_twice():
    # It comes back before the new track is confirmed: no stitch; it crosses itself and counts once.
    line = LineCounter("gate", START, END, **STITCH)
    frames = [[(1, 200, 140 + 10 * f)] for f in range(4)] + [[]] * 2
    frames += [[(-2 - 2, 200, 235)], [(-2 - 2, 200, 240), (1, 150, 190)], [(2, 200, 245), (1, 150, 215)],
               [(2, 200, 250), (1, 150, 240)], [(2, 200, 255), (1, 150, 265)]]
    assert [e[:2] for e in stitch_feed(line, frames)] == [(1, "in")]
    # It comes back after the stitch, on the new side: the crossing was counted once, by the new track.
    line = LineCounter("gate", START, END, **STITCH)
    frames = hidden_walk((200, 235)) + [[(1, 150, 240 + 10 * i)] for i in range(4)]
    assert [e[:2] for e in stitch_feed(line, frames)] == [(2, "in")]
    # It comes back after the stitch on its old side and then crosses: that is its own, second walk.
    line = LineCounter("gate", START, END, **STITCH)
    frames = hidden_walk((200, 235)) + [[(1, 150, 160 + 20 * i)] for i in range(6)]
    assert [e[:2] for e in stitch_feed(line, frames)] == [(2, "in"), (1, "in")]


def test_a_stitched_crossing_undone_within_return_s_counts_neither_way():
    line = LineCounter("gate", START, END, **{**STITCH, "return_s": 3.0})
    frames = hidden_walk((200, 235))[:10] + [[(2, 200, 230 - 20 * i)] for i in range(5)] + [[]] * 40
    assert stitch_feed(line, frames) == []
    # Not undone: reported return_s after the crossing.
    line = LineCounter("gate", START, END, **{**STITCH, "return_s": 3.0})
    assert [e[:2] for e in stitch_feed(line, hidden_walk((200, 235)) + [[]] * 40)] == [(2, "in")]


def test_a_tentative_new_track_that_is_never_confirmed_does_not_use_up_the_gone_one():
    line = LineCounter("gate", START, END, **STITCH)
    frames = [[(1, 200, 140 + 10 * f)] for f in range(4)] + [[]] * 2
    frames += [[(-2 - 5, 200, 232)], []]  # a false box for one frame
    frames += [[(-2 - 6, 200, 235)], [(-2 - 6, 200, 240)], [(6, 200, 245)], [(6, 200, 250)]]
    assert [e[:2] for e in stitch_feed(line, frames)] == [(6, "in")]


def test_a_zone_counts_an_entry_when_a_new_track_inside_continues_one_gone_outside():
    square = [(100, 100), (300, 100), (300, 300), (100, 300)]
    zone = ZoneCounter("mat", square, margin_rel=0.05, return_s=0.0, stitch_s=2.0, stitch_rel=0.5)
    frames = [[(1, 40 + 10 * f, 200)] for f in range(4)] + [[]] * 4 + [[(2, 130 + 5 * i, 200)] for i in range(5)]
    assert [e[:2] for e in stitch_feed(zone, frames)] == [(2, "enter")]
    assert zone.occupancy == {0: 1}
    off = ZoneCounter("mat", square, margin_rel=0.05, return_s=0.0, stitch_s=0.0)
    assert stitch_feed(off, frames) == []


def test_stitching_options_are_checked():
    with pytest.raises(ConfigError, match="stitch_s"):
        LineCounter("gate", START, END, stitch_s=-1)
    with pytest.raises(ConfigError, match="stitch_appearance"):
        ZoneCounter("mat", [(0, 0), (10, 0), (10, 10)], stitch_appearance=1.5)


def test_the_tracker_hands_its_appearance_vectors_to_the_counters():
    tracker = ByteTracker(min_hits=1)
    det = Detections(np.array([[10, 10, 50, 110]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
    frame = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    tracker.update(det, frame=frame)
    assert tracker.last_appearance is not None and tracker.last_appearance.shape == (1, APPEARANCE_DIM)
    tracker.update(det)  # no frame: none used
    assert tracker.last_appearance is None
    assert ByteTracker(appearance_gate=1.0).update(det, frame=frame) is not None


def test_a_box_touching_the_top_of_the_picture_did_not_come_or_go_through_it():
    # A horizontal line at y = 200 on a 640 x 272 picture, the feet below it. A van hides the legs: the box
    # (head at the top of the picture) is cut to end above the line for one frame, and the track is lost.
    # Its feet never went up the picture, so nothing counts; nor does a new track whose box first appears
    # with its head at the top and its feet below the line.
    # The stream ends (or the scene cuts) before return_s has passed: a crossing that never completed is
    # dropped, unless the track is taken to have left through a border.
    line = LineCounter("kerb", (300, 200), (640, 200), margin_rel=0.05, return_s=3.0, nominal_fps=25.0)
    events = []
    boxes = [(370, 30, 530, 266), (370, 32, 530, 208), (367, 32, 521, 183)]  # every 2nd frame of 25 fps
    for k, box in enumerate(boxes):
        det = Detections(np.array([box], np.float32), np.array([0.5], np.float32), np.array([0], np.int32),
                         np.array([1], np.int32))
        events += line.update(det, frame_index=2 * k, timestamp_s=2 * k / 25, frame_size=(640, 272))
    for f in range(6, 40, 2):
        events += line.update(Detections.empty(with_track_id=True), frame_index=f, timestamp_s=f / 25,
                              frame_size=(640, 272))
    for f, box in ((40, (344, 2, 500, 230)), (42, (343, 1, 503, 236)), (44, (343, 1, 503, 240))):
        det = Detections(np.array([box], np.float32), np.array([0.5], np.float32), np.array([0], np.int32),
                         np.array([2], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 25, frame_size=(640, 272))
    events += line.flush()
    assert events == []
    # The bottom border still is one: someone walking down out of the picture counts.
    line = LineCounter("kerb", (300, 200), (640, 200), margin_rel=0.05, return_s=0.0)
    for f, (y0, y1) in enumerate(((100, 190), (150, 250), (190, 272))):
        det = Detections(np.array([[400, y0, 440, y1]], np.float32), np.array([0.9], np.float32),
                         np.array([0], np.int32), np.array([3], np.int32))
        events += line.update(det, frame_index=f, timestamp_s=f / 25, frame_size=(640, 272))
    events += line.update(Detections.empty(with_track_id=True), frame_index=3, timestamp_s=3 / 25,
                          frame_size=(640, 272))
    assert [e.direction.value for e in events] == ["in"]
