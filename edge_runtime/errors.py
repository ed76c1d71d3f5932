"""The one exception hierarchy of edge-runtime.

Every error raised on purpose by this package derives from :class:`EdgeRuntimeError`, and each also
derives from the built-in it refines, so ``except ValueError`` keeps working for callers who don't
know ours. Messages say what, where, what was expected and what was found.
"""

from __future__ import annotations

__all__ = [
    "EdgeRuntimeError",
    "ConfigError",
    "InputError",
    "ModelFormatError",
    "AssetError",
    "BackendUnavailableError",
    "SourceError",
    "StoreError",
    "StoreCorruptError",
]


class EdgeRuntimeError(Exception):
    """Base of every error edge-runtime raises on purpose."""


class ConfigError(EdgeRuntimeError, ValueError):
    """A configuration file or value is wrong; raised at start-up, naming the key."""


class InputError(EdgeRuntimeError, ValueError):
    """A bad array or argument was given to a public call (dtype, shape, range, NaN)."""


class ModelFormatError(EdgeRuntimeError, ValueError):
    """A model file is missing, corrupt, hostile or not of the kind expected."""


class AssetError(EdgeRuntimeError, RuntimeError):
    """A built-in asset could not be fetched, verified or cached; the message says what to do."""


class BackendUnavailableError(EdgeRuntimeError, ImportError):
    """An optional backend (llama-cpp-python, torch, picamera2, ...) is not installed."""


class SourceError(EdgeRuntimeError, RuntimeError):
    """A camera, stream or file source failed while running."""


class StoreError(EdgeRuntimeError, RuntimeError):
    """The results database could not be opened or written (full disk, locked, corrupt)."""


class StoreCorruptError(StoreError):
    """The results database is damaged (malformed pages, failed integrity check, missing tables)."""
