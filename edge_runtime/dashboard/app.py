"""The dashboard's state: what the routes read and change (live view, counts, charts, editor, chat facts).

:class:`Dashboard` is made by the runtime supervisor when ``[dashboard] enabled = true``; its
:meth:`~Dashboard.sinks` join the pipeline's sinks and its :meth:`~Dashboard.routes` are mounted in the
chat server's app, so the page is served by the same process, on the same port, behind the same token.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ConfigError
from ..runtime.config import Config, DashboardConfig, read_config_file
from .answers import AnswerLog
from .auth import Guard
from .editor import EditResult, apply_places, parse_edit, place_tables
from .live import LiveView
from .snapshots import Snapshots

__all__ = ["Dashboard"]

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png", ".txt": "text/plain"}


def load_static() -> Dict[str, Tuple[bytes, str]]:
    """{file name: (bytes, content type)} of the files shipped in ``edge_runtime/dashboard/static``.

    Requests are answered from this table only, so no path in a request can name another file.
    """
    out = {}
    for entry in (resources.files(__package__) / "static").iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return out


class Dashboard:
    """The state behind the dashboard's routes.

    Args:
        settings: the ``[dashboard]`` section.
        pipeline: the running pipeline (its counters are read live and swapped by the editor).
        config: the job's config as loaded.
        config_path: the config file the editor saves to (None: the built-in job; edits are refused).
        token: the chat server's token (None: loopback only).
        class_names: {class_id: label}.
        status: returns the system panel's figures (the ``/metrics`` snapshot plus policy and budget).
        on_places_changed: called with the new config after an edit was applied.

    Raises:
        OSError: the snapshot folder cannot be created.
    """

    def __init__(self, settings: DashboardConfig, *, pipeline: Any, config: Config, config_path: Optional[Path],
                 token: Optional[str], class_names: Dict[int, str], status: Callable[[], Dict[str, Any]],
                 on_places_changed: Optional[Callable[[Config], None]] = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.config = config
        self.config_path = Path(config_path) if config_path is not None else None
        self.class_names = dict(class_names)
        self.guard = Guard(token)
        self.live = LiveView(self.class_names, fps=settings.mjpeg_fps, width=settings.live_width,
                             quality=settings.jpeg_quality)
        self.snapshots: Optional[Snapshots] = None
        folder = settings.snapshot_dir or (f"{config.output.db}.snapshots" if config.output.db else "")
        if folder:
            self.snapshots = Snapshots(Path(folder), max_bytes=int(settings.snapshot_max_mb * 1e6),
                                       width=settings.snapshot_width, quality=settings.jpeg_quality)
        self.answers = AnswerLog()
        #: The chat server's ASGI app (set by the supervisor); the chat panel's requests are passed to it.
        self.chat_app: Any = None
        self.static = load_static()
        self._status = status
        self._status_cache: Tuple[float, Dict[str, Any]] = (0.0, {})
        self._status_lock = threading.Lock()
        self._edit_lock = threading.Lock()
        self._on_places_changed = on_places_changed

    @property
    def store(self) -> Any:
        return getattr(self.pipeline, "store", None)

    def sinks(self) -> List[Any]:
        """The pipeline sinks the dashboard needs (the live view; the thumbnails when kept)."""
        return [self.live] + ([self.snapshots] if self.snapshots is not None else [])

    def routes(self) -> List[Any]:
        from .routes import make_routes

        return make_routes(self)

    # ----------------------------------------------------------------------------------- reading

    def counts(self) -> Dict[str, Any]:
        """Live totals per line / zone, direction and class label, from the counters themselves."""
        names = self.class_names

        def by_label(counts: Dict[int, int]) -> Dict[str, int]:
            return {names.get(c, str(c)): int(n) for c, n in sorted(dict(counts).items())}

        lines, zones = [], []
        for c in list(self.pipeline.counters):
            if hasattr(c, "polygon"):
                zones.append({"name": c.name, "enter": by_label(c.entries), "exit": by_label(c.exits),
                              "inside": by_label(c.occupancy), "enter_total": sum(dict(c.entries).values()),
                              "exit_total": sum(dict(c.exits).values()), "inside_total": c.occupancy_total})
            else:
                lines.append({"name": c.name, "in": by_label(c.in_counts), "out": by_label(c.out_counts),
                              "in_total": c.in_total, "out_total": c.out_total})
        return {"lines": lines, "zones": zones}

    def state(self) -> Dict[str, Any]:
        """What the page needs once: frame size, classes, lines and zones, what is available."""
        return {"frame_size": self.live.frame_size, "class_names": {str(k): v for k, v in self.class_names.items()},
                "places": place_tables(self.config), "mjpeg_fps": self.settings.mjpeg_fps,
                "editor": self.settings.editor and self.config_path is not None,
                "editor_note": None if self.config_path is not None else
                "the job runs the built-in config; start it with a config file to edit lines and zones",
                "history": self.store is not None, "snapshots": self.snapshots is not None,
                "chat": self.chat_app is not None, "login": self.guard.login_required}

    def status(self) -> Dict[str, Any]:
        """The system panel's figures, measured at most once a second whoever asks (CPU% is measured
        between two snapshots, so many viewers must not shorten each other's window)."""
        with self._status_lock:
            at, cached = self._status_cache
            if time.monotonic() - at >= 1.0 or not cached:
                cached = self._status()
                self._status_cache = (time.monotonic(), cached)
            return cached

    # ---------------------------------------------------------------------------------- changing

    def apply_edit(self, edit: Any) -> EditResult:
        """Validate, save and apply an edit of the lines and zones (see :mod:`.editor`).

        Raises:
            ConfigError: the edit is invalid or cannot be saved; nothing changed.
        """
        if not self.settings.editor:
            raise ConfigError("config key 'dashboard.editor': the editor is switched off (false)")
        if self.config_path is None:
            raise ConfigError("editor: the job runs the built-in config; start it with a config file to edit "
                              "lines and zones")
        with self._edit_lock:
            raw = read_config_file(self.config_path)
            new_raw, checked = parse_edit(raw, edit)
            new = dataclasses.replace(self.config, lines=checked.lines, zones=checked.zones)
            fps = next((c.nominal_fps for c in self.pipeline.counters), None) or \
                getattr(self.pipeline.source, "fps", None) or 10.0
            result = apply_places(self.pipeline, self.config, new, fps=fps, config_path=self.config_path,
                                  raw=new_raw, store=self.store)
            self.config = new
        if self._on_places_changed is not None:
            self._on_places_changed(new)
        return result

    def close(self) -> None:
        if self.snapshots is not None:
            self.snapshots.close()
