"""Build a ready-to-run :class:`Pipeline` from a validated :class:`Config` (what ``edge-runtime run`` does).

Resuming: with a results database, line/zone totals continue from the stored totals (same names), and a
file source continues after the last committed frame, so a run killed with ``kill -9`` and started again
neither loses nor double-counts. Live sources resume their totals only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from ..assets import resolve
from ..errors import ConfigError, StoreError
from ..vision.counting import LOW_SCORE, LineCounter, ZoneCounter
from ..vision.detector import Detector
from ..vision.motion import MotionGate
from ..vision.scene import SceneCutDetector
from ..vision.sources import open_source
from ..vision.tracking import ByteTracker
from .config import Config, LineConfig, ZoneConfig
from .cpus import available_cores
from .pipeline import Counter, Pipeline, Sink
from .sinks import ConsoleSink, JsonlSink, StoreSink, VideoSink

__all__ = ["build_pipeline", "config_hash", "detector_spins", "make_counter", "make_counters", "seed_totals"]

log = logging.getLogger(__name__)


def config_hash(config: Config) -> str:
    """A short digest of the config, stored with each run."""
    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True, default=str).encode()).hexdigest()[:16]


def detector_spins(config: Config) -> bool:
    """Whether the detector's onnxruntime workers spin between the operators of a call (``model.spin``).

    Spinning keeps a worker awake between the many short operators of a model, where sleeping and waking
    it costs each of them a few microseconds; the workers sleep once the call returns. "auto" spins when
    detection has the cores to itself and sleeps when a chat model is configured.
    """
    if config.model.spin == "auto":
        return not config.chat.enabled
    return config.model.spin == "on"


def _source_key(uri: str) -> Tuple[str, bool]:
    """(key the checkpoints are stored under, whether the source is a file we can seek in)."""
    if uri.startswith("builtin:"):
        return uri, True
    path = Path(uri)
    if path.is_file():
        return str(path.resolve()), True
    return uri, False


def make_counter(item: Union[LineConfig, ZoneConfig], fps: float, low_score: float = LOW_SCORE) -> Counter:
    """The counter one ``[[lines]]`` or ``[[zones]]`` entry describes, for a source at ``fps``; ``low_score``: the
    tracker's ``high_score`` (boxes below it are held to ``max_shrink_low``)."""
    if isinstance(item, LineConfig):
        return LineCounter(item.name, item.start, item.end, trigger=item.trigger, anchor=item.anchor,
                           margin_rel=item.margin_rel, margin_px=item.margin_px, return_s=item.return_s,
                           hysteresis_frames=item.hysteresis_frames, classes=item.classes, nominal_fps=fps,
                           stitch_s=item.stitch_s, stitch_rel=item.stitch_rel,
                           stitch_appearance=item.stitch_appearance, commit_rel=item.commit_rel,
                           settle_ratio=item.settle_ratio, max_shrink=item.max_shrink,
                           keep_complete=item.keep_complete, max_shrink_low=item.max_shrink_low,
                           low_score=low_score, backtrack_s=item.backtrack_s)
    return ZoneCounter(item.name, item.polygon, anchor=item.anchor, margin_rel=item.margin_rel,
                       margin_px=item.margin_px, return_s=item.return_s, hysteresis_frames=item.hysteresis_frames,
                       classes=item.classes, nominal_fps=fps, stitch_s=item.stitch_s, stitch_rel=item.stitch_rel,
                       stitch_appearance=item.stitch_appearance, commit_rel=item.commit_rel,
                       settle_ratio=item.settle_ratio, max_shrink=item.max_shrink,
                       keep_complete=item.keep_complete, max_shrink_low=item.max_shrink_low,
                       low_score=low_score)


def make_counters(lines: Sequence[LineConfig], zones: Sequence[ZoneConfig], fps: float,
                  low_score: float = LOW_SCORE) -> List[Counter]:
    """Counters for the config's lines, then its zones, in config order (``low_score``: see make_counter)."""
    return [make_counter(item, fps, low_score) for item in (*lines, *zones)]


def build_pipeline(config: Config, *, restart_source: bool = False, quiet: bool = False,
                   extra_sinks: Optional[List[Sink]] = None) -> Pipeline:
    """Make the source, detector, tracker, counters and sinks a config describes.

    Args:
        config: a validated config (see :func:`~edge_runtime.runtime.config.load_config`).
        restart_source: read a file source from its first frame even if the database has a checkpoint
            (totals still continue).
        quiet: no live console output.
        extra_sinks: appended after the configured sinks.

    Raises:
        ConfigError: as the parts do, and when the job's memory budget exceeds what the machine gives
            (:func:`~edge_runtime.runtime.memory.check_memory`; the message says what to change).
        ModelFormatError, SourceError, StoreError, AssetError: as the parts do.
    """
    from .memory import check_memory

    log.info("%s", check_memory(config).summary())  # refuses (ConfigError) a job that cannot fit
    threads = config.model.threads or config.budget.cores or available_cores()
    model_path = resolve(config.model.path)
    # The detector also returns boxes down to the tracker's low-score floor, for its second association;
    # the pipeline reports those only where they extend a confirmed track (min_score below).
    detector = Detector(model_path, threads=threads, conf_threshold=min(config.model.conf, config.tracker.low_score),
                        iou_threshold=config.model.iou, max_det=config.model.max_det, classes=config.model.classes,
                        labels=config.model.labels, rect=config.model.rect, cache_rewrite=True,
                        spin=detector_spins(config))

    store = run_id = None
    start_index = 0
    key, seekable = _source_key(config.source.uri)
    if config.output.db:
        from .store import Store  # sqlite3 only when persistence is asked for

        store = Store.open_or_heal(config.output.db, interval_s=config.output.interval_s)
        checkpoint = store.checkpoint(key)
        if checkpoint is not None and seekable and not restart_source:
            start_index = checkpoint.frame_index + 1
            log.info("resuming %s after frame %d (from %s)", key, checkpoint.frame_index, config.output.db)
        places = {**{line.name: "line" for line in config.lines}, **{zone.name: "zone" for zone in config.zones}}

        def begin() -> int:
            return store.begin_run(source=key, config_hash=config_hash(config), class_names=detector.class_names,
                                   places=places)
        try:
            run_id = begin()
        except StoreError as exc:  # a full disk must not keep the job from counting (StoreSink keeps frames)
            log.error("%s; counting starts anyway and is stored once the database takes writes", exc)

    source = open_source(config.source.uri, mode=config.source.mode, fps_cap=config.source.fps_cap or None,
                         reconnect=config.source.reconnect, read_timeout_s=config.source.read_timeout_s,
                         start_index=start_index, replay_fps=config.source.replay_fps or None,
                         loop=config.source.loop)
    fps = getattr(source, "fps", None) or 10.0
    # Every key of the tracker section is a ByteTracker setting of the same name (tests/test_config.py).
    tracker = ByteTracker.for_video(fps, **asdict(config.tracker))
    counters = make_counters(config.lines, config.zones, fps, config.tracker.high_score)
    if store is not None:
        seed_totals(store, counters)

    sinks: List[Sink] = []
    if store is not None:
        sinks.append(StoreSink(store, run_id, begin_run=begin))
    if config.output.jsonl:
        sinks.append(JsonlSink())
    if config.output.video:
        sinks.append(VideoSink(config.output.video, fps=fps))
    if not quiet and config.output.print_every_s > 0:
        sinks.append(ConsoleSink(config.output.print_every_s))
    sinks.extend(extra_sinks or [])
    from .sdnotify import Notifier, WatchdogSink

    notifier = Notifier()
    if notifier.enabled:  # under systemd (Type=notify): readiness and watchdog pings from the frame loop
        sinks.append(WatchdogSink(notifier))

    gate = None
    if config.source.motion_gate:
        gate = MotionGate(config.source.motion_threshold, config.source.motion_max_skip)
    cut = SceneCutDetector(config.source.scene_cut_threshold) if config.source.scene_cut_threshold > 0 else None
    pipeline = Pipeline(source, detector, tracker=tracker, counters=counters, sinks=sinks, motion_gate=gate,
                        scene_cut=cut, min_score=config.model.conf)
    pipeline.store = store  # type: ignore[attr-defined]  # for the caller's queries (chat grounding)
    return pipeline


def seed_totals(store, counters: List[Counter]) -> None:
    """Continue each line's/zone's totals from the database (same name, same kind)."""
    by_name = {c.name: c for c in counters}
    for total in store.totals():
        counter = by_name.get(total.name)
        if counter is None:
            continue
        if isinstance(counter, LineCounter) and total.direction in ("in", "out"):
            target = counter.in_counts if total.direction == "in" else counter.out_counts
        elif isinstance(counter, ZoneCounter) and total.direction in ("enter", "exit"):
            target = counter.entries if total.direction == "enter" else counter.exits
        else:
            raise ConfigError(f"config: {total.name!r} was a {total.kind} in {store.path} but is now a "
                              f"{'line' if isinstance(counter, LineCounter) else 'zone'}; rename it or use a "
                              f"new database")
        target[total.class_id] = target.get(total.class_id, 0) + int(total.count)
