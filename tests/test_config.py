"""Run configs: every error names the key, what was expected and what was found."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runtime import ConfigError
from edge_runtime.runtime.config import config_from_dict, default_config, load_config

GOOD_TOML = """
[source]
uri = "builtin:vtest-video"
fps_cap = 5

[model]
path = "builtin:yolov8s-person"
classes = [0]
conf = 0.3

[[lines]]
name = "door"
start = [10, 20]
end = [300, 20]
hysteresis_frames = 3

[[zones]]
name = "desk"
polygon = [[0, 0], [100, 0], [100, 100]]

[output]
db = "counts.db"
"""


def test_default_config_is_valid() -> None:
    config = default_config()
    assert config.source.uri == "builtin:vtest-video"
    assert [line.name for line in config.lines] == ["walkway"]


def test_toml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(GOOD_TOML)
    config = load_config(path)
    assert config.source.fps_cap == 5.0
    assert config.lines[0].start == (10.0, 20.0) and config.lines[0].hysteresis_frames == 3
    assert config.zones[0].polygon[2] == (100.0, 100.0)
    assert config.output.db == "counts.db"


def test_yaml_is_accepted(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML is optional; TOML needs nothing")
    path = tmp_path / "job.yaml"
    path.write_text("model:\n  conf: 0.4\nlines:\n  - name: gate\n    start: [0, 5]\n    end: [9, 5]\n")
    config = load_config(path)
    assert config.model.conf == 0.4 and config.lines[0].name == "gate"


@pytest.mark.parametrize("raw, fragments", [
    ({"source": {"urii": "x"}}, ["source.urii", "did you mean 'uri'"]),
    ({"model": {"conf": 1.5}}, ["model.conf", "[0.0, 1.0]", "1.5"]),
    ({"model": {"conf": "high"}}, ["model.conf", "a number", "'high'"]),
    ({"model": {"classes": 0}}, ["model.classes", "a list of integers", "0 (int)"]),
    ({"model": {"threads": True}}, ["model.threads", "an integer"]),
    ({"lines": [{"name": "a", "start": [0, 0]}]}, ["lines[0].end", "required"]),
    ({"lines": [{"name": "a", "start": [0, 0], "end": [0, 0]}]}, ["lines[0]", "same point"]),
    ({"lines": [{"name": "a", "start": [0, 0, 1], "end": [5, 5]}]}, ["lines[0].start", "a pair of numbers"]),
    ({"zones": [{"name": "z", "polygon": [[0, 0], [1, 1]]}]}, ["zones[0].polygon", "at least 3 points"]),
    ({"lines": [{"name": "a", "start": [0, 0], "end": [1, 1]}], "zones": [{"name": "a", "polygon": [[0, 0], [1, 0], [0, 1]]}]},
     ["'a'", "used twice"]),
    ({"budget": {"policy": "greedy"}}, ["budget.policy", "detection-first", "'greedy'"]),
    ({"model": {"spin": "yes"}}, ["model.spin", "one of auto, on, off", "'yes'"]),
    ({"tracker": {"low_score": 0.8, "high_score": 0.5}}, ["tracker.low_score", "0.5"]),
    ({"tracker": {"low_max_growth": 0.5}}, ["tracker.low_max_growth", "0 (off) or >= 1", "0.5"]),
    ({"tracker": {"tentative_match_iou": 1.2}}, ["tracker.tentative_match_iou", "[0.0, 1.0]", "1.2"]),
    ({"lines": [{"name": "a", "start": [0, 0], "end": [1, 1], "settle_ratio": 0.8}]},
     ["lines[0].settle_ratio", "0 (off) or >= 1", "0.8"]),
    ({"zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [0, 1]], "max_shrink": 0.5}]},
     ["zones[0].max_shrink", "0 (off) or >= 1", "0.5"]),
    ({"lines": [{"name": "a", "start": [0, 0], "end": [1, 1], "keep_complete": "yes"}]},
     ["lines[0].keep_complete", "'yes'"]),
    ({"zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [0, 1]], "max_shrink_low": 0.9}]},
     ["zones[0].max_shrink_low", "0 (off) or >= 1", "0.9"]),
    ({"source": {"fps_cap": float("nan")}}, ["source.fps_cap", "a number"]),
    ({"nonsense": {}}, ["nonsense", "not known"]),
    ({"lines": [{"name": "a", "start": [0, 0], "end": [1, 1], "stitch_s": -1}]}, ["lines[0].stitch_s", "[0.0, 60.0]"]),
    ({"lines": [{"name": "a", "start": [0, 0], "end": [1, 1], "backtrack_s": -0.5}]},
     ["lines[0].backtrack_s", "[0.0, 60.0]", "-0.5"]),
    ({"zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [0, 1]], "stitch_appearance": 2}]},
     ["zones[0].stitch_appearance", "[0.0, 1.0]"]),
    ([1, 2], ["top level"]),
])
def test_errors_name_key_expected_and_found(raw, fragments) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {info.value}"


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[source\nuri = 3")
    with pytest.raises(ConfigError, match="broken.toml.*TOML syntax"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.toml"):
        load_config(tmp_path / "absent.toml")


def test_error_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text("[model]\niou = -1\n")
    with pytest.raises(ConfigError, match=r"job.toml: config key 'model.iou'"):
        load_config(path)


def test_the_counters_stitching_settings_reach_the_counters_and_default_as_theirs() -> None:
    import inspect

    from edge_runtime.runtime.build import make_counter
    from edge_runtime.vision.counting import LineCounter, ZoneCounter

    config = config_from_dict({
        "lines": [{"name": "b", "start": [0, 0], "end": [100, 0], "stitch_s": 0, "stitch_rel": 1.5,
                   "stitch_appearance": 0.35, "settle_ratio": 1.5, "keep_complete": False, "max_shrink_low": 1.3,
                   "backtrack_s": 0.5}],
        "zones": [{"name": "z", "polygon": [[0, 0], [10, 0], [0, 10]], "stitch_s": 2, "settle_ratio": 0,
                   "keep_complete": True}]})
    plain = config_from_dict({"lines": [{"name": "a", "start": [0, 0], "end": [100, 0]}],
                              "zones": [{"name": "z", "polygon": [[0, 0], [10, 0], [0, 10]]}]})
    for item, cls in ((plain.lines[0], LineCounter), (plain.zones[0], ZoneCounter)):
        defaults = inspect.signature(cls).parameters
        for key in ("stitch_s", "stitch_rel", "stitch_appearance", "settle_ratio", "commit_rel", "max_shrink",
                    "keep_complete", "max_shrink_low"):
            assert getattr(item, key) == defaults[key].default, (cls.__name__, key)
    assert plain.lines[0].backtrack_s == inspect.signature(LineCounter).parameters["backtrack_s"].default
    line = make_counter(config.lines[0], 10.0)
    assert (line.stitch_s, line.stitch_rel, line.stitch_appearance, line.backtrack_s) == (0.0, 1.5, 0.35, 0.5)
    assert (line.settle_ratio, line.keep_complete, line.max_shrink_low, line.low_score) == (1.5, False, 1.3, 0.3)
    # boxes below the tracker's high_score are the ones the counters hold to max_shrink_low
    assert make_counter(config.lines[0], 10.0, low_score=0.45).low_score == 0.45
    from edge_runtime.vision.counting import LOW_SCORE
    from edge_runtime.vision.tracking import ByteTracker

    assert LOW_SCORE == inspect.signature(ByteTracker).parameters["high_score"].default
    zone = make_counter(config.zones[0], 10.0)
    assert (zone.stitch_s, zone.settle_ratio, zone.keep_complete) == (2.0, 0.0, True)


def test_the_tracker_section_defaults_to_the_trackers_own_defaults():
    import dataclasses
    import inspect

    from edge_runtime.runtime.config import TrackerConfig
    from edge_runtime.vision.tracking import ByteTracker

    own = inspect.signature(ByteTracker.__init__).parameters
    fields = {f.name: getattr(TrackerConfig(), f.name) for f in dataclasses.fields(TrackerConfig)}
    assert set(fields) <= set(own), set(fields) - set(own)
    assert {k: v for k, v in fields.items() if v != own[k].default} == {}


@pytest.mark.parametrize("spin, chat, spins", [
    ("auto", False, True), ("auto", True, False), ("on", True, True), ("off", False, False)])
def test_the_detector_spins_unless_chat_shares_the_cores(spin, chat, spins):
    from edge_runtime.assets import ensure
    from edge_runtime.runtime.build import detector_spins
    from edge_runtime.runtime.supervisor import clone_detector
    from edge_runtime.vision.detector import Detector

    config = config_from_dict({"model": {"spin": spin}, "chat": {"enabled": chat}})
    assert detector_spins(config) is spins
    detector = Detector(ensure("yolov8s-person"), threads=1, spin=detector_spins(config))
    assert detector.spin is spins and clone_detector(detector, 1).spin is spins  # a re-threaded session keeps it
    options = detector._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spins else "0")
    if spins:  # the workers spin within a call and sleep once it returns
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"


@pytest.mark.parametrize("spin", [True, False])
def test_verification_sessions_stop_spinning_at_the_end_of_each_call(spin):
    from edge_runtime.assets import ensure
    from edge_runtime.converters.verify import open_session

    options = open_session(ensure("yolov8s-person"), spin=spin).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spin else "0")
    if spin:  # two sessions timed in turns do not spin on the cores the other is about to use
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"
