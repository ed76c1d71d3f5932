"""The detector's rewritten model kept on disk, so that later sessions load it as a file.

Rewriting a model's DFL head (:mod:`.dfl_rewrite`) parses and re-serialises the whole model in the process,
and the allocator keeps those copies: the built-in job's peak RSS is about 80 MiB higher with the rewrite
done in memory than with the rewritten file loaded by onnxruntime itself. So the rewritten model is written
once under the cache directory (``cache_dir()/rewritten``), named by the source file's sha256, the
rewrite's version and its own sha256, and every later session of the same model loads that file. A model
the rewrite leaves as it is gets an empty marker, so later starts skip the parse as well.

Every failure is a logged recovery, never an error: a cache directory that cannot be created or written
(read-only, full), or a cached file that does not hash to its name, is skipped or deleted and the model is
rewritten in memory as before. A model with external data is never cached (its tensors' paths are relative
to its own folder).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Tuple

__all__ = ["MAX_ENTRIES", "REWRITE_VERSION", "discard", "has_entry", "lookup", "store"]

log = logging.getLogger(__name__)

#: Part of every cached file's name: bump it whenever the rewrite's output changes.
REWRITE_VERSION = "dfl1"
#: Entries kept (rewritten models and as-is markers); the oldest written go first.
MAX_ENTRIES = 8
_AS_IS = ".as-is"


def _sha256(path: Path) -> str:
    from ..assets import sha256_file

    return sha256_file(path)


@functools.lru_cache(maxsize=32)
def _source_key(path: str, size: int, mtime_ns: int) -> str:
    return f"{_sha256(Path(path))[:24]}-{REWRITE_VERSION}"


@functools.lru_cache(maxsize=32)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    """A cached file's sha256, once per process for the same file (each detector session looks it up)."""
    return _sha256(Path(path))


def _prefix(source: Path) -> Optional[Path]:
    """``<cache>/rewritten/<stem>.<source sha256>-<version>``, or None when the source cannot be read."""
    from ..assets import cache_dir

    try:
        st = source.stat()
        key = _source_key(str(source.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        return None
    return cache_dir() / "rewritten" / f"{source.stem}.{key}"


def _candidates(prefix: Path):
    try:
        return sorted(prefix.parent.glob(prefix.name + ".*.onnx"))
    except OSError:
        return []


def lookup(source: Path) -> Tuple[Optional[Path], bool]:
    """(the cached rewritten model of ``source``, checked against the sha256 in its name, or None; whether
    the cache records that the rewrite leaves ``source`` as it is). A cached file that does not hash to its
    name is deleted."""
    prefix = _prefix(Path(source))
    if prefix is None:
        return None, False
    for path in _candidates(prefix):
        want = path.name[len(prefix.name) + 1:-len(".onnx")]
        try:
            st = path.stat()
            if len(want) >= 16 and _digest_of(str(path), st.st_size, st.st_mtime_ns).startswith(want):
                return path, False
        except OSError:
            continue
        log.warning("%s: cached rewritten model does not match its checksum: deleted, rewriting", path.name)
        discard(path)
    return None, Path(str(prefix) + _AS_IS).exists()


def has_entry(source: Path) -> bool:
    """Whether a session of ``source`` will load without rewriting it in memory (a cached rewritten file or
    an as-is marker exists; the file's checksum is checked only when it is loaded)."""
    prefix = _prefix(Path(source))
    return prefix is not None and (bool(_candidates(prefix)) or Path(str(prefix) + _AS_IS).exists())


def store(source: Path, rewritten: Optional[bytes]) -> Optional[Path]:
    """Keep ``rewritten`` (or, for None, the as-is marker) for ``source``; the path written, or None when the
    cache could not be written (logged)."""
    prefix = _prefix(Path(source))
    if prefix is None:
        return None
    target = Path(str(prefix) + _AS_IS) if rewritten is None else \
        prefix.with_name(f"{prefix.name}.{hashlib.sha256(rewritten).hexdigest()[:24]}.onnx")
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(rewritten or b"")
        os.chmod(tmp, 0o644)  # as the downloaded assets next to it (mkstemp makes it private)
        os.replace(tmp, target)
        _prune(target.parent)
        return target
    except OSError as exc:
        log.info("%s: could not keep the rewritten model in %s (%s); it is rewritten at every start",
                 Path(source).name, target.parent, exc.strerror or exc)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return None


def _prune(folder: Path) -> None:
    """Keep the MAX_ENTRIES most recently written entries of ``folder``."""
    entries = []
    for path in folder.iterdir():
        if path.name.endswith((".onnx", _AS_IS)) and not path.name.startswith(".partial-"):
            try:
                entries.append((path.stat().st_mtime_ns, path))
            except OSError:
                continue
    for _, path in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        discard(path)


def discard(path: Path) -> None:
    """Delete a cached file that failed (logged if it cannot be)."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("%s: could not delete the failed cached model: %s", Path(path).name, exc)
