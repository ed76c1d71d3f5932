"""The web dashboard: live view, live counts, charts, events timeline, line & zone editor, chat, system.

Served by the runtime's own chat server (same process, port and token) when the config has
``[dashboard] enabled = true``; open ``http://HOST:PORT/dashboard``. Plain HTML/CSS/JS shipped in
``static/`` (no build step, nothing loaded from the internet); charts are drawn on a canvas by hand.

Modules: :mod:`.app` (the state), :mod:`.routes` (the endpoints), :mod:`.auth` (token, cookie, CSRF),
:mod:`.live` (MJPEG frames, encoded only while watched), :mod:`.snapshots` (event thumbnails under a
size cap), :mod:`.history` (charts and timeline from SQLite), :mod:`.editor` (validate, save, apply
line and zone edits), :mod:`.answers` (the facts behind chat answers), :mod:`.streams` (long responses).
"""

from .app import Dashboard

__all__ = ["Dashboard"]
