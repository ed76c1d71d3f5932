"""Attach the MQTT publisher to a running job (``[mqtt] enabled = true``)."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ..errors import ConfigError

__all__ = ["start_mqtt"]


def start_mqtt(config: Any, pipeline: Any, *, snapshot: Optional[Callable[[], Dict[str, Any]]] = None,
               asker: Any = None) -> Any:
    """Start publishing the job's database when ``[mqtt]`` is enabled; returns the publisher or None.

    Args:
        config: the job's config.
        pipeline: the running :class:`~edge_runtime.runtime.pipeline.Pipeline` (its store, zones,
            pause/resume).
        snapshot: the runtime's metrics (fps, frame age, CPU, RSS, chat tokens/s); default: from the
            pipeline's own summary.
        asker: answers ``<prefix>/ask`` questions (default: one over the pipeline, template answers).

    Raises:
        ConfigError: MQTT enabled without a results database, or a bad ``[mqtt]`` value.
        BackendUnavailableError: paho-mqtt is not installed.
    """
    if not config.mqtt.enabled:
        return None
    store = getattr(pipeline, "store", None)
    if store is None:
        raise ConfigError("config key 'mqtt.enabled': MQTT publishes from the results database; set output.db")
    from ..ask.answer import asker_for_pipeline
    from .mqtt import MqttPublisher

    started = time.monotonic()

    def stats() -> Dict[str, Any]:
        if snapshot is not None:
            s = snapshot()
            return {"fps": round(s.get("detection_fps", 0.0), 2), "frame_age_s": round(s.get("frame_age_p50_s", 0.0), 3),
                    "cpu_percent": s.get("cpu_percent"), "rss_bytes": s.get("rss_bytes"),
                    "chat_tokens_per_s": round(s.get("chat_tokens_per_s", 0.0), 1), "paused": pipeline.paused}
        summary = pipeline.summary
        elapsed = max(time.monotonic() - started, 1e-9)
        return {"fps": round(summary.frames / elapsed, 2), "frames": summary.frames, "paused": pipeline.paused}

    answerer = asker or asker_for_pipeline(pipeline)

    def ask(question: str) -> Dict[str, Any]:
        result = answerer.ask(question)
        body = result.as_dict()
        return {"answer": result.text or answerer.help_text(), "facts": body["facts"], "query": body["query"]}

    places = {c.name: ("zone" if hasattr(c, "polygon") else "line") for c in pipeline.counters}
    publisher = MqttPublisher(config.mqtt, store, places, pipeline.detector.class_names, stats=stats,
                              occupancy=lambda: {z.name: dict(z.occupancy) for z in pipeline.zones},
                              on_command=lambda cmd: pipeline.pause() if cmd == "pause" else pipeline.resume(),
                              ask=ask)
    publisher.start()
    return publisher
