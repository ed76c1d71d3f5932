"""edge-runtime: camera detection, tracking, counting and local chat on one CPU board.

Importing this package touches no hardware, reads no model and starts no thread; heavy modules are
loaded on first use of the names below.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AssetError,
    BackendUnavailableError,
    ConfigError,
    EdgeRuntimeError,
    InputError,
    ModelFormatError,
    SourceError,
    StoreError,
)

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily so `import edge_runtime` stays cheap.
_LAZY = {
    "Detections": "edge_runtime.vision.detections",
    "Detector": "edge_runtime.vision.detector",
    "ByteTracker": "edge_runtime.vision.tracking",
    "LineCounter": "edge_runtime.vision.counting",
    "ZoneCounter": "edge_runtime.vision.counting",
    "open_source": "edge_runtime.vision.sources",
    "Pipeline": "edge_runtime.runtime.pipeline",
    "build_pipeline": "edge_runtime.runtime.build",
    "load_config": "edge_runtime.runtime.config",
    "Store": "edge_runtime.runtime.store",
    "Chat": "edge_runtime.llm.chat",
}

__all__ = [
    "__version__",
    "AssetError",
    "BackendUnavailableError",
    "ConfigError",
    "EdgeRuntimeError",
    "InputError",
    "ModelFormatError",
    "SourceError",
    "StoreError",
    *_LAZY,
]

if TYPE_CHECKING:  # pragma: no cover
    from .llm.chat import Chat
    from .runtime.build import build_pipeline
    from .runtime.config import load_config
    from .runtime.pipeline import Pipeline
    from .runtime.store import Store
    from .vision.counting import LineCounter, ZoneCounter
    from .vision.detections import Detections
    from .vision.detector import Detector
    from .vision.sources import open_source
    from .vision.tracking import ByteTracker


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_runtime' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
