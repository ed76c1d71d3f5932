"""All-or-nothing output files: a failed conversion never leaves a half-written model behind.

A converter writes into a private temporary directory next to the destination (same filesystem, so the
final step is a rename) and the files appear under their real names only after the caller's block
finished without an exception. An ONNX model with external data is two files (``model.onnx`` and its
``.data``); the data file is moved first so a reader never sees a model whose weights are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

from edge_runtime.errors import InputError

__all__ = ["atomic_output", "atomic_write_text", "file_size", "progress"]

PathLike = Union[str, "os.PathLike[str]"]


def _check_parent(dest: Path, where: str) -> None:
    parent = dest.parent
    if not parent.is_dir():
        raise InputError(f"{where}: output directory {str(parent)!r} does not exist; create it first")
    if dest.exists() and dest.is_dir():
        raise InputError(f"{where}: output path {str(dest)!r} is a directory; give a file name like model.onnx")


@contextlib.contextmanager
def atomic_output(dest: PathLike, *, where: str = "convert") -> Iterator[Path]:
    """Yield a temporary path with ``dest``'s file name; publish it (and its siblings) on success.

    Every file the block writes into the yielded path's directory is renamed into ``dest``'s directory
    (sidecars first, ``dest`` last); on an exception the temporary directory is removed and nothing of
    it is published.

    Args:
        dest: final path of the main output file.
        where: prefix for error messages.

    Raises:
        InputError: the destination's directory does not exist or ``dest`` is a directory.

    Example:
        >>> with atomic_output("/tmp/model.onnx") as tmp:   # doctest: +SKIP
        ...     onnx.save(model, tmp)
    """
    dest = Path(dest)
    _check_parent(dest, where)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        tmp = tmp_dir / dest.name
        yield tmp
        if not tmp.is_file():
            raise InputError(f"{where}: nothing was written to {str(tmp)!r}")
        for path in sorted(tmp_dir.iterdir()):
            if path.name != dest.name:
                os.replace(path, dest.parent / path.name)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def atomic_write_text(dest: PathLike, text: str) -> Path:
    """Write ``text`` to ``dest`` through a temporary file and a rename; returns the path."""
    dest = Path(dest)
    with atomic_output(dest, where="write") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return dest


def file_size(path: PathLike) -> int:
    """Bytes of an ONNX model on disk, its external-data files included."""
    path = Path(path)
    total = path.stat().st_size
    data = path.with_name(path.name + ".data")
    if data.is_file():
        total += data.stat().st_size
    return total


def progress(iterable, *, desc: str, total: "int | None" = None, quiet: bool = False):
    """Wrap ``iterable`` in a tqdm bar on stderr; a plain iterator when quiet or stderr is not a TTY."""
    import sys

    if quiet or not sys.stderr.isatty():
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar, same results
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr)
