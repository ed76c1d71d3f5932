"""The one config file of a run: source, model, tracker, lines/zones, outputs, thread budget, chat.

TOML (preferred) or YAML. Validated completely at start-up; every error names the key, what was
expected and what was found, and unknown keys are errors (a typo must not silently fall back to a
default). Values prefixed ``builtin:`` name a verified asset (see ``edge-runtime assets list``).

Example (the built-in default, ``edge-runtime run`` with no argument)::

    [source]
    uri = "builtin:vtest-video"

    [model]
    path = "builtin:yolov8s-person"
    classes = [0]
    labels = ["person", "fallen person"]

    [[lines]]
    name = "walkway"          # facing from start to end, "in" = crossing from your left to your right:
    start = [400, 400]        # drawn upwards, so "in" is walking right on the image
    end = [400, 150]
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union, get_args, get_origin, get_type_hints

from ..errors import ConfigError

__all__ = [
    "Config", "SourceConfig", "ModelConfig", "TrackerConfig", "LineConfig", "ZoneConfig", "OutputConfig",
    "BudgetConfig", "ChatConfig", "DashboardConfig", "load_config", "read_config_file", "config_from_dict", "default_config",
]


def _range(lo: Optional[float] = None, hi: Optional[float] = None, **kw: Any) -> Any:
    return field(metadata={"lo": lo, "hi": hi}, **kw)


def _choice(*options: str, **kw: Any) -> Any:
    return field(metadata={"choices": options}, **kw)


@dataclass(frozen=True)
class SourceConfig:
    uri: str = "builtin:vtest-video"
    # "every": deliver every frame (files; reproducible). "latest": newest frame wins (live cameras).
    mode: str = _choice("auto", "every", "latest", default="auto")
    fps_cap: float = _range(0.0, 1000.0, default=0.0)  # 0 = uncapped
    # Files and folders: replay paced at this rate, as a camera would deliver them; in "every" mode no frame
    # is dropped and a job that falls behind shows it as frame age. 0 = "latest" at the file's own fps,
    # "every" as fast as the job reads. Frame timestamps stay the file's clock (index / file fps).
    replay_fps: float = _range(0.0, 1000.0, default=0.0)
    loop: bool = False  # files and folders: start over after the last frame, for ever (tracks reset there)
    read_timeout_s: float = _range(0.1, 600.0, default=5.0)
    reconnect: bool = True
    motion_gate: bool = False
    motion_threshold: float = _range(0.0, 1.0, default=0.002)  # fraction of changed pixels
    motion_max_skip: int = _range(1, 10_000, default=10)  # run inference at least every N frames
    # A processed frame whose 32x18 grey thumbnail differs from the previous one's by more than this
    # (mean grey levels) is a scene cut: tracks are reset. 0 = off.
    scene_cut_threshold: float = _range(0.0, 255.0, default=30.0)


@dataclass(frozen=True)
class ModelConfig:
    path: str = "builtin:yolov8s-person"
    conf: float = _range(0.0, 1.0, default=0.25)
    iou: float = _range(0.0, 1.0, default=0.45)
    max_det: int = _range(1, 10_000, default=300)
    classes: Optional[List[int]] = None
    labels: Optional[List[str]] = None  # display names replacing the model's class names, in class order
    threads: int = _range(0, 256, default=0)  # 0 = from the budget
    rect: bool = False  # letterbox to the frame's aspect (640x480 for 4:3): ~1/4 less inference, see Detector
    # onnxruntime's workers spin between the operators of a call ("on") or sleep ("off"); after a call they
    # sleep either way. "auto": spin unless a chat model shares the cores (see build.detector_spins)
    spin: str = _choice("auto", "on", "off", default="auto")


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTracker settings (see edge_runtime.vision.tracking); defaults suit the built-in detector."""

    high_score: float = _range(0.0, 1.0, default=0.3)
    low_score: float = _range(0.0, 1.0, default=0.1)  # boxes down to this only extend tracks
    new_track_score: float = _range(0.0, 1.0, default=0.4)
    match_iou: float = _range(0.0, 1.0, default=0.2)
    # a tentative track takes a box only above this IoU with its predicted box (last association)
    tentative_match_iou: float = _range(0.0, 1.0, default=0.3)
    min_hits: int = _range(1, 1000, default=3)
    lost_s: float = _range(0.0, 3600.0, default=3.0)
    buffer_rel: float = _range(0.0, 10.0, default=0.035)  # association boxes grow per frame unseen
    max_buffer_rel: float = _range(0.0, 10.0, default=1.0)  # and at most this much
    max_jump_rel: float = _range(0.0, 100.0, default=0.25)  # box heights per frame off the prediction; 0 = off
    # squared Mahalanobis distance from a track's predicted centre it never matches beyond (chi-square, 2 dof); 0 = off
    motion_gate: float = _range(0.0, 1000.0, default=4.61)
    appearance_gate: float = _range(0.0, 1.0, default=0.4)  # colour distance a track never matches beyond; 1 = off
    tentative_low: bool = True  # a track not yet confirmed may take a low-score box
    # a low-score box extends a track only if at most this many times as tall as its predicted box; 0 = off
    low_max_growth: float = _range(0.0, 100.0, default=1.2)
    # a track started at the picture's border starts moving inward at this many box heights per second; 0 = at rest
    entry_speed_rel: float = _range(0.0, 100.0, default=0.75)
    # a confirmed track leaves a confident box to others when a low-score box fits it by this much more IoU; 0 = off
    low_fit_margin: float = _range(0.0, 1.0, default=0.3)
    # a confirmed track seen last frame leaves a confident box to a tentative track fitting it by this much more IoU
    tentative_fit_margin: float = _range(0.0, 1.0, default=0.1)
    # a confirmed track leaves a confident box to others when a better-fitting low-score box looks this much more
    # like it (colour distance); 0 = off
    low_look_margin: float = _range(0.0, 1.0, default=0.1)


@dataclass(frozen=True)
class LineConfig:
    """A counting line. Facing from start to end, "in" is a crossing from your left to your right."""

    name: str
    start: Tuple[float, float]
    end: Tuple[float, float]
    trigger: str = _choice("anchor", "box", default="anchor")  # the anchor point, or all four box corners
    anchor: str = _choice("bottom_center", "center", default="bottom_center")
    margin_rel: float = _range(0.0, 10.0, default=0.05)  # dead band half-width, fraction of the box height
    margin_px: float = _range(0.0, 10_000.0, default=0.0)  # ... and at least this many pixels
    return_s: float = _range(0.0, 3600.0, default=3.0)  # a crossing undone within this counts neither way
    # a crossing is complete once the point is this many box heights past the line or from where it crossed;
    # until then a return undoes it however late (a man standing just over the line counts nothing); 0 = off
    commit_rel: float = _range(0.0, 100.0, default=0.5)
    # a young track's side is taken again (no crossing) while its box height changes more than this per
    # observation: someone coming out from behind a van; >= 1, 0 = off
    settle_ratio: float = _range(0.0, 100.0, default=1.25)
    # a box more than this many times shorter than its track's previous one (a walker behind a post) is not used,
    # once in a row; >= 1, 0 = off
    max_shrink: float = _range(0.0, 100.0, default=1.6)
    # the same for a box scoring below tracker.high_score (the detector is unsure of it: most often someone half
    # hidden); >= 1, 0 = off
    max_shrink_low: float = _range(0.0, 100.0, default=1.45)
    # a crossing whose feet got commit_rel box heights past the line (not only along it) is kept when the track
    # comes back within return_s, and the return counts too; false: any return within return_s undoes it
    keep_complete: bool = True
    hysteresis_frames: int = _range(1, 1000, default=1)  # processed frames on the new side, in a row
    classes: Optional[List[int]] = None
    # A track lost mid-picture, continued by a new track first seen mid-picture on the other side within
    # stitch_s seconds (0 = off) and (0.5 + stitch_rel x seconds) box heights of where it was lost, colours
    # within stitch_appearance (1 = not compared): one crossing (see edge_runtime.vision.counting)
    stitch_s: float = _range(0.0, 60.0, default=3.0)
    stitch_rel: float = _range(0.0, 100.0, default=0.75)
    stitch_appearance: float = _range(0.0, 1.0, default=1.0)
    # A track first seen mid-picture, led back to the picture's left or right border within backtrack_s seconds by
    # confident boxes the tracker gave no track, came in through that border (0 = off)
    backtrack_s: float = _range(0.0, 60.0, default=1.5)


@dataclass(frozen=True)
class ZoneConfig:
    name: str
    polygon: List[Tuple[float, float]]
    anchor: str = _choice("bottom_center", "center", default="bottom_center")
    margin_rel: float = _range(0.0, 10.0, default=0.05)
    margin_px: float = _range(0.0, 10_000.0, default=0.0)
    return_s: float = _range(0.0, 3600.0, default=1.0)
    commit_rel: float = _range(0.0, 100.0, default=0.5)  # as for lines; at most half the zone's depth
    settle_ratio: float = _range(0.0, 100.0, default=1.25)  # as for lines
    max_shrink: float = _range(0.0, 100.0, default=1.6)  # as for lines
    max_shrink_low: float = _range(0.0, 100.0, default=1.45)  # as for lines
    keep_complete: bool = False  # as for lines; off: in a small zone a corner cut gets that deep
    hysteresis_frames: int = _range(1, 1000, default=1)
    classes: Optional[List[int]] = None
    # As for lines: a track lost outside (inside), continued by a new one first seen inside (outside) = entry (exit)
    stitch_s: float = _range(0.0, 60.0, default=3.0)
    stitch_rel: float = _range(0.0, 100.0, default=0.5)  # less than a line's (see vision.counting)
    stitch_appearance: float = _range(0.0, 1.0, default=1.0)


@dataclass(frozen=True)
class OutputConfig:
    db: str = "edge-runtime.db"  # SQLite results; "" disables persistence
    video: str = ""  # annotated video path; "" = none
    jsonl: bool = False  # JSON-lines events on stdout
    print_every_s: float = _range(0.0, 3600.0, default=2.0)  # live counts on stderr; 0 = off
    interval_s: float = _range(1.0, 86_400.0, default=10.0)  # per-interval count buckets
    max_frames: int = _range(0, 10**9, default=0)  # stop after N frames; 0 = until the source ends


@dataclass(frozen=True)
class BudgetConfig:
    cores: int = _range(0, 256, default=0)  # 0 = detect (affinity and cgroup quota aware)
    # "auto": measured at start-up (see Supervisor): detection-first when frames at the target leave chat at
    # least 0.8 of the machine, else fair when the detector's share of the cores holds the target, else
    # detection-first
    policy: str = _choice("auto", "detection-first", "chat-first", "fair", default="auto")
    min_fps: float = _range(0.0, 240.0, default=3.0)
    max_frame_age_s: float = _range(0.0, 3600.0, default=0.0)  # 0 = not used
    # Memory this job may use, MiB (0 = what the machine and its cgroup have available): a job whose estimate
    # (see edge_runtime.runtime.memory) exceeds it is refused at start-up, saying what to change.
    memory_mib: int = _range(0, 1 << 24, default=0)


@dataclass(frozen=True)
class ChatConfig:
    enabled: bool = False
    model: str = "builtin:smollm2-135m"
    ctx: int = _range(256, 131_072, default=2048)
    host: str = "127.0.0.1"
    port: int = _range(0, 65535, default=8080)
    token: str = ""
    phrase: bool = True  # the model words count answers (every number checked against the facts)
    timezone: str = ""  # IANA name for "since 8 am" / "today"; "" = the machine's zone


@dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``: publish counts, events, availability and stats to a broker (see edge_runtime.gateway)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = _range(1, 65535, default=1883)
    client_id: str = ""  # "" = edge-runtime-<device_id>
    device_id: str = ""  # "" = from the host name; names the topics and the Home Assistant device
    username: str = ""
    password_file: str = ""  # the password is read from this file ...
    password_env: str = ""  # ... or this environment variable; never from the config itself
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    qos: int = _range(0, 2, default=1)
    topic_prefix: str = ""  # "" = edge-runtime/<device_id>
    keepalive_s: int = _range(5, 3600, default=30)
    stats_every_s: float = _range(0.0, 3600.0, default=10.0)  # 0 = no stats messages
    discovery: bool = True  # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class LinkConfig:
    """``[[links]]``: a serial port to an RT-Thread node speaking edge-link (native/rtlink/PROTOCOL.md)."""

    device: str  # /dev/ttyUSB0, /dev/ttyAMA0, or any pyserial URL (socket://host:port, rfc2217://...)
    baud: int = _range(1200, 4_000_000, default=115200)
    name: str = ""  # how logs name the link ("" = the device)


@dataclass(frozen=True)
class DashboardConfig:
    """``[dashboard]``: the web page served next to the chat API, on its port and token (edge_runtime.dashboard)."""

    enabled: bool = False
    mjpeg_fps: float = _range(0.2, 30.0, default=5.0)  # live view: most frames per second sent to a viewer
    live_width: int = _range(0, 4096, default=640)  # live frames scaled down to this width; 0 = the source's
    jpeg_quality: int = _range(10, 100, default=70)
    snapshot_dir: str = ""  # event thumbnails; "" = beside the database (DB.snapshots/), none without one
    snapshot_max_mb: float = _range(0.1, 100_000.0, default=50.0)  # oldest thumbnails deleted beyond this
    snapshot_width: int = _range(32, 1920, default=240)
    editor: bool = True  # the line & zone editor may save to the config file and apply the change


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    lines: List[LineConfig] = field(default_factory=list)
    zones: List[ZoneConfig] = field(default_factory=list)
    output: OutputConfig = field(default_factory=OutputConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    links: List[LinkConfig] = field(default_factory=list)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)


def _plural(tp: Any) -> str:
    simple = {float: "numbers", int: "integers", str: "strings", bool: "booleans"}
    return simple.get(tp) or ("[x, y] pairs" if get_origin(tp) in (tuple, Tuple) else "tables")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Union:
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None)) + " (optional)"
    if origin in (list, List):
        return f"a list of {_plural(get_args(tp)[0])}"
    if origin in (tuple, Tuple):
        return f"a pair of {_plural(get_args(tp)[0])}"
    if is_dataclass(tp):
        return "a table"
    return {float: "a number", int: "an integer", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(key: str, tp: Any, value: Any) -> Any:
    def bad() -> ConfigError:
        shown = repr(value) if len(repr(value)) <= 200 else repr(value)[:200] + "..."
        return ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {shown} ({type(value).__name__})")

    origin = get_origin(tp)
    if origin is Union:
        inner = [a for a in get_args(tp) if a is not type(None)][0]
        return None if value is None else _convert(key, inner, value)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return _build(tp, value, key)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise bad()
        return [_convert(f"{key}[{i}]", get_args(tp)[0], v) for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        args = get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad()
        return tuple(_convert(f"{key}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        try:
            value_f = float(value)  # an integer beyond float's range raises OverflowError
        except OverflowError:
            raise bad() from None
        if not math.isfinite(value_f):
            raise bad()
        return value_f
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    raise bad()


def _build(cls: type, raw: Dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"config key '{prefix}.{key}' is not known{hint}".replace("'.", "'"))
    values: Dict[str, Any] = {}
    for name, f in known.items():
        key = f"{prefix}.{name}".lstrip(".")
        if name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:  # type: ignore[misc]
                raise ConfigError(f"config key '{key}' is required ({_type_name(hints[name])})")
            continue
        value = _convert(key, hints[name], raw[name])
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if value is not None and lo is not None and not lo <= value <= hi:
            raise ConfigError(f"config key '{key}': expected a value in [{lo}, {hi}], got {value}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"config key '{key}': expected one of {', '.join(choices)}, got {value!r}")
        values[name] = value
    return cls(**values)


def _check_semantics(config: Config) -> None:
    if 0.0 < config.tracker.low_max_growth < 1.0:
        raise ConfigError(f"config key 'tracker.low_max_growth': must be 0 (off) or >= 1 (times the track's "
                          f"height), got {config.tracker.low_max_growth}")
    if config.tracker.low_score > config.tracker.high_score:
        raise ConfigError(f"config key 'tracker.low_score': must be <= tracker.high_score "
                          f"({config.tracker.high_score}), got {config.tracker.low_score}")
    if config.dashboard.enabled and not config.chat.enabled:
        raise ConfigError("config key 'dashboard.enabled': the dashboard is served by the chat server (same "
                          "host, port and token); expected chat.enabled = true, got false")
    names = [item.name for item in (*config.lines, *config.zones)]
    for name in names:
        if not name:
            raise ConfigError("config key 'lines[].name' / 'zones[].name': expected a non-empty string")
        if names.count(name) > 1:
            raise ConfigError(f"config: line/zone name {name!r} is used twice; names key the stored totals")
    for i, line in enumerate(config.lines):
        if line.start == line.end:
            raise ConfigError(f"config key 'lines[{i}]' ({line.name}): start and end are the same point {line.start}")
    for key, items in (("lines", config.lines), ("zones", config.zones)):
        for i, item in enumerate(items):
            for option in ("settle_ratio", "max_shrink", "max_shrink_low"):
                if 0.0 < getattr(item, option) < 1.0:
                    raise ConfigError(f"config key '{key}[{i}].{option}' ({item.name}): must be 0 (off) or >= 1 "
                                      f"(a ratio of box heights), got {getattr(item, option)}")
    for i, zone in enumerate(config.zones):
        if len(zone.polygon) < 3:
            raise ConfigError(f"config key 'zones[{i}].polygon' ({zone.name}): expected at least 3 points, "
                              f"got {len(zone.polygon)}")
    # The counters' own checks (self-intersecting zones, ...) at load time, under the config's key names.
    from ..vision.counting import ZoneCounter

    for i, zone in enumerate(config.zones):
        try:
            ZoneCounter(zone.name, zone.polygon, margin_rel=zone.margin_rel, margin_px=zone.margin_px)
        except ConfigError as exc:
            raise ConfigError(f"config key 'zones[{i}].polygon': {exc}") from None


def config_from_dict(raw: Dict[str, Any]) -> Config:
    """Validate a parsed config mapping.

    Raises:
        ConfigError: naming the key, the expected value and what was found.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a table at the top level, got {type(raw).__name__}")
    config = _build(Config, raw, "")
    _check_semantics(config)
    return config


def read_config_file(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The parsed, not yet validated mapping of a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file.

    Raises:
        ConfigError: unreadable file or syntax error (with line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml), or use TOML") from exc
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: YAML syntax error: {exc}") from exc
        # PyYAML builds some scalars with Python's constructors and lets their errors out (2026-02-31 is a
        # ValueError from datetime); deep nesting exhausts the stack.
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise ConfigError(f"{path}: YAML value error: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
    else:
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: TOML syntax error: {exc}") from exc
        except ValueError as exc:  # an integer of more than 4300 digits (int()'s limit), raised as is
            raise ConfigError(f"{path}: TOML value error: {str(exc)[:200]}") from exc
        except RecursionError as exc:  # arrays / inline tables nested past the stack
            raise ConfigError(f"{path}: TOML nested too deeply") from exc
    return raw if raw is not None else {}


def load_config(path: Union[str, os.PathLike]) -> Config:
    """Read and validate a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config file.

    Raises:
        ConfigError: unreadable file, syntax error (with line), or an invalid value.
    """
    raw = read_config_file(path)
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def default_config() -> Config:
    """The built-in job: the real person detector on the real pedestrian video, a line across the walkway.

    The line is vertical at x = 400 px of the 768x576 frame, spanning the paved walkway (y 150..400)
    just left of the lamp post. It is drawn upwards (start below end), so walking right is "in" and
    walking left is "out".
    """
    return config_from_dict({
        "source": {"uri": "builtin:vtest-video"},
        # The model calls its classes "Normal" and "Fall": an upright and a fallen person.
        "model": {"path": "builtin:yolov8s-person", "classes": [0], "labels": ["person", "fallen person"]},
        "lines": [{"name": "walkway", "start": [400, 400], "end": [400, 150]}],
        "output": {"db": "", "print_every_s": 2.0},
    })
