"""Letterbox: native kernel == NumPy reference, Ultralytics geometry, OpenCV agreement, input errors.

Shape legend: frames (H, W, 3) uint8 BGR; tensors (1, 3, h, w) RGB.
Tolerances (native vs reference.letterbox_into, which works in float64):
  float32 tensors: |diff| <= 1e-6 (float32 rounding of values in [0, 1]; far inside one grey level, 1/255)
  uint8 tensors:   |diff| <= 1 level (a value at an exact .5 may round either way in float32)
OpenCV (11-bit fixed-point weights) agrees within 1 uint8 level; that test needs cv2 and is separate.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime import _native
from edge_runtime import reference as ref
from edge_runtime.errors import InputError
from edge_runtime.vision import ops

FLOAT_TOL = 1e-6
UINT8_TOL = 1


def make_frame(h: int, w: int, seed: int, pattern: str = "noise") -> np.ndarray:
    """A test frame: uniform noise (worst case for interpolation), flat grey, or a 0/255 checkerboard."""
    rng = np.random.default_rng(seed)
    if pattern == "flat":
        return np.full((h, w, 3), rng.integers(0, 256), np.uint8)
    if pattern == "checker":
        yy, xx = np.indices((h, w))
        return np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    return rng.integers(0, 256, (h, w, 3), np.uint8)


def reference_letterbox(frame: np.ndarray, dst_hw, auto=False, stride=32, scale_up=True, dtype=np.float32,
                        pad_value=114):
    geometry = ref.letterbox_geometry(frame.shape[0], frame.shape[1], dst_hw[0], dst_hw[1], auto, stride, scale_up)
    out = np.empty((1, 3, geometry[0], geometry[1]), dtype)
    ref.letterbox_into(frame, out, *geometry[2:6], pad_value)
    return out, geometry


def assert_close(native: np.ndarray, reference: np.ndarray) -> None:
    assert native.dtype == reference.dtype and native.shape == reference.shape
    diff = np.abs(native.astype(np.float64) - reference.astype(np.float64))
    tol = FLOAT_TOL if native.dtype == np.float32 else UINT8_TOL
    assert diff.max(initial=0.0) <= tol, f"max |native - reference| = {diff.max()} > {tol}"


sides = st.one_of(st.integers(1, 40), st.sampled_from([1, 2, 3, 181]))


@st.composite
def letterbox_cases(draw):
    return dict(
        src_hw=(draw(sides), draw(sides)),
        dst_hw=(draw(st.integers(1, 72)), draw(st.integers(1, 72))),
        auto=draw(st.booleans()),
        stride=draw(st.sampled_from([1, 7, 32])),
        scale_up=draw(st.booleans()),
        dtype=draw(st.sampled_from([np.float32, np.uint8])),
        pad_value=draw(st.sampled_from([0, 114, 255])),
        seed=draw(st.integers(0, 2**32 - 1)),
        pattern=draw(st.sampled_from(["noise", "noise", "flat", "checker"])),
    )


@given(letterbox_cases())
def test_letterbox_matches_reference(case):
    frame = make_frame(*case["src_hw"], case["seed"], case["pattern"])
    kw = dict(auto=case["auto"], stride=case["stride"], scale_up=case["scale_up"], dtype=case["dtype"],
              pad_value=case["pad_value"])
    tensor, info = ops.letterbox(frame, case["dst_hw"], **kw)
    expected, geometry = reference_letterbox(frame, case["dst_hw"], **kw)
    assert (*info.out_hw, *info.resized_hw, info.pad_y, info.pad_x, info.scale) == geometry
    assert_close(tensor, expected)


@given(st.integers(1, 9000), st.integers(1, 9000), st.integers(1, 2048), st.integers(1, 2048), st.booleans(),
       st.sampled_from([1, 16, 32, 64]), st.booleans())
def test_geometry_matches_reference(src_h, src_w, dst_h, dst_w, auto, stride, scale_up):
    native = _native.letterbox_geometry(src_h, src_w, dst_h, dst_w, auto, stride, scale_up)
    assert native == ref.letterbox_geometry(src_h, src_w, dst_h, dst_w, auto, stride, scale_up)
    out_h, out_w, new_h, new_w, top, left, _ = native
    assert 1 <= new_h and 1 <= new_w and top >= 0 and left >= 0
    assert top + new_h <= out_h <= dst_h and left + new_w <= out_w <= dst_w


@pytest.mark.parametrize("src_hw, dst_hw, auto, expected", [
    # (out_h, out_w, new_h, new_w, pad_top, pad_left), worked out by hand from Ultralytics' LetterBox
    ((576, 768), (640, 640), False, (640, 640, 480, 640, 80, 0)),      # vtest.avi
    ((1080, 1920), (640, 640), False, (640, 640, 360, 640, 140, 0)),
    ((720, 1280), (640, 640), True, (384, 640, 360, 640, 12, 0)),      # rectangular inference
    ((481, 640), (640, 640), False, (640, 640, 481, 640, 79, 0)),      # odd padding: 79 above, 80 below
    ((2, 5), (1, 100), False, (1, 100, 1, 2, 0, 49)),                  # 5 * 0.5 = 2.5 rounds to even: 2
    ((1, 5000), (64, 64), False, (64, 64, 1, 64, 31, 0)),              # 0.0128 rows rounds to 0: kept at 1; 63 = 31 + 32
])
def test_geometry_known_answers(src_hw, dst_hw, auto, expected):
    info = ops.letterbox_geometry(src_hw, dst_hw, auto=auto)
    assert (*info.out_hw, *info.resized_hw, info.pad_y, info.pad_x) == expected


def test_no_scale_up_keeps_small_frames_at_native_size():
    info = ops.letterbox_geometry((100, 200), (640, 640), scale_up=False)
    assert info.resized_hw == (100, 200) and info.scale == 1.0 and (info.pad_y, info.pad_x) == (270, 220)


@pytest.mark.parametrize("src_hw, dst_hw", [((576, 768), (640, 640)), ((2, 3000), (64, 96)), ((3000, 2), (96, 64)),
                                            ((5, 7), (320, 320)), ((1, 1), (8, 8))])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_letterbox_degenerate_and_real_sizes(src_hw, dst_hw, dtype):
    frame = make_frame(*src_hw, seed=sum(src_hw))
    tensor, _ = ops.letterbox(frame, dst_hw, dtype=dtype)
    assert_close(tensor, reference_letterbox(frame, dst_hw, dtype=dtype)[0])


def test_flat_frame_stays_flat_and_channels_are_swapped():
    frame = np.empty((50, 70, 3), np.uint8)
    frame[...] = (10, 20, 30)  # B, G, R
    tensor, info = ops.letterbox(frame, (64, 64), dtype=np.uint8)
    top, left = info.pad_y, info.pad_x
    content = tensor[0, :, top:top + info.resized_hw[0], left:left + info.resized_hw[1]]
    assert (content[0] == 30).all() and (content[1] == 20).all() and (content[2] == 10).all()
    assert (tensor[0, :, :top] == 114).all() and (tensor[0, :, top + info.resized_hw[0]:] == 114).all()


@pytest.mark.parametrize("dtype, sentinel", [(np.float32, np.nan), (np.uint8, 7)])
def test_letterbox_into_writes_every_element_of_a_reused_buffer(dtype, sentinel):
    out = np.full((1, 3, 96, 128), sentinel, dtype)
    for shape in [(40, 90), (90, 40), (1, 1), (96, 128)]:
        out[...] = sentinel
        frame = make_frame(*shape, seed=3)
        info = ops.letterbox_into(frame, out)
        assert info.out_hw == (96, 128)
        if dtype == np.float32:
            assert np.isfinite(out).all()
        else:
            assert_close(out, reference_letterbox(frame, (96, 128), dtype=np.uint8)[0])
        assert_close(out, reference_letterbox(frame, (96, 128), dtype=dtype)[0])


@pytest.mark.parametrize("dtype, sentinel", [(np.float32, -3.0), (np.uint8, 7)])
def test_letterbox_into_without_pad_writes_the_picture_only(dtype, sentinel):
    frame = make_frame(45, 91, seed=5)  # odd width: the four-pixel loop and its tail
    full = np.empty((1, 3, 96, 128), dtype)
    info = ops.letterbox_into(frame, full)
    out = np.full_like(full, sentinel)
    assert ops.letterbox_into(frame, out, write_pad=False) == info
    top, left = info.pad_y, info.pad_x
    h, w = info.resized_hw
    content = (slice(None), slice(None), slice(top, top + h), slice(left, left + w))
    np.testing.assert_array_equal(out[content], full[content])
    outside = np.ones(out.shape, bool)
    outside[content] = False
    assert outside.any() and (out[outside] == sentinel).all()
    # On a buffer whose padding a previous call wrote: the same tensor as a full write, to the bit.
    ops.letterbox_into(make_frame(45, 91, seed=6), out)
    ops.letterbox_into(frame, out, write_pad=False)
    np.testing.assert_array_equal(out, full)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_letterbox_again_gives_the_checked_path_s_tensor_and_refuses_another_size(dtype):
    frames = [make_frame(45, 91, seed=s) for s in range(3)]
    out = np.empty((1, 3, 96, 128), dtype)
    info = ops.letterbox_into(frames[0], out, threads=2)
    for frame in frames[1:]:
        want = np.empty_like(out)
        ops.letterbox_into(frame, want)
        ops.letterbox_again(frame, out, info, threads=2)
        np.testing.assert_array_equal(out, want)
    with pytest.raises(InputError, match=r"the frame is 46x91, the geometry is for 45x91"):
        ops.letterbox_again(make_frame(46, 91, seed=0), out, info)
    with pytest.raises(InputError, match=r"does not fit the 64x128 tensor"):  # the kernel's own check
        ops.letterbox_again(frames[0], np.empty((1, 3, 64, 128), dtype), info)
    with pytest.raises(InputError, match=r"out must be float32 or uint8"):
        ops.letterbox_again(frames[0], out.astype(np.float64), info)
    with pytest.raises(InputError, match=r"frame must be a numpy array, got list"):
        ops.letterbox_again([[0]], out, info)


def test_letterbox_into_auto_needs_the_trimmed_buffer():
    frame = make_frame(720, 1280, seed=1)
    info = ops.letterbox_geometry(frame.shape[:2], (640, 640), auto=True)
    out = np.empty((1, 3, *info.out_hw), np.float32)
    assert ops.letterbox_into(frame, out, dst_hw=(640, 640), auto=True) == info
    with pytest.raises(InputError, match=r"gives a 384x640 tensor, but out is 640x640"):
        ops.letterbox_into(frame, np.empty((1, 3, 640, 640), np.float32), auto=True)


def test_to_source_inverts_the_letterbox_mapping():
    info = ops.letterbox_geometry((576, 768), (640, 640))
    tensor_boxes = np.array([[0, 80, 640, 560], [320, 320, 320, 320]], np.float32)
    np.testing.assert_allclose(info.to_source(tensor_boxes), [[0, 0, 768, 576], [384, 288, 384, 288]], atol=1e-4)


# -- errors -------------------------------------------------------------------------------------------

frame_ok = np.zeros((8, 8, 3), np.uint8)
out_ok = np.zeros((1, 3, 16, 16), np.float32)


@pytest.mark.parametrize("frame, match", [
    (np.zeros((8, 8, 3), np.float32), "frame must be uint8 BGR, got dtype float32"),
    (np.zeros((8, 8), np.uint8), r"frame must be \(H, W, 3\) BGR, got shape \(8, 8\)"),
    (np.zeros((8, 8, 4), np.uint8), r"got shape \(8, 8, 4\)"),
    (np.zeros((0, 8, 3), np.uint8), "frame sides must be in 1..65536"),
    (np.zeros((8, 16, 3), np.uint8)[:, ::2], "frame must be C-contiguous"),
    (np.zeros((8, 8, 3), np.uint8)[..., ::-1], "frame must be C-contiguous"),
    ([[0, 0, 0]], "frame must be a numpy array, got list"),
])
def test_bad_frames_raise_input_error(frame, match):
    with pytest.raises(InputError, match=match):
        ops.letterbox_into(frame, out_ok)
    with pytest.raises(InputError, match=match):
        ops.letterbox(frame)


@pytest.mark.parametrize("out, match", [
    (np.zeros((1, 3, 16, 16), np.float64), "out must be float32 or uint8, got dtype float64"),
    (np.zeros((3, 16, 16), np.float32), r"out must be \(1, 3, h, w\), got shape \(3, 16, 16\)"),
    (np.zeros((2, 3, 16, 16), np.float32), r"got shape \(2, 3, 16, 16\)"),
    (np.zeros((1, 3, 16, 32), np.float32)[..., ::2], "out must be C-contiguous and writeable"),
    (np.zeros((1, 3, 16, 0), np.float32), r"got shape \(1, 3, 16, 0\)"),
])
def test_bad_buffers_raise_input_error(out, match):
    with pytest.raises(InputError, match=match):
        ops.letterbox_into(frame_ok, out)


def test_read_only_and_aliased_buffers_are_refused():
    ro = np.zeros((1, 3, 16, 16), np.uint8)
    ro.flags.writeable = False
    with pytest.raises(InputError, match="writeable"):
        ops.letterbox_into(frame_ok, ro)
    storage = np.zeros(3 * 16 * 16 + 8 * 8 * 3, np.uint8)
    with pytest.raises(InputError, match="must not share memory"):
        ops.letterbox_into(storage[:192].reshape(8, 8, 3), storage[:768].reshape(1, 3, 16, 16))


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=0), "stride must be an integer in 1..65536"),
    (dict(pad_value=256), "pad_value must be an integer in 0..255"),
    (dict(dst_hw=(0, 640)), r"dst_hw must be two integers in 1..65536"),
    (dict(dst_hw=(640,)), r"dst_hw must be \(height, width\)"),
    (dict(dst_hw=(640.5, 640)), "dst_hw must be two integers"),
])
def test_bad_parameters_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        ops.letterbox_into(frame_ok, out_ok, **kwargs)


_STORAGE = np.zeros(1024, np.uint8)


@pytest.mark.parametrize("args, match", [
    ((frame_ok.astype(np.int8), out_ok, 16, 16, 0, 0, 114), "frame must be uint8, got int8"),
    ((frame_ok, out_ok.astype(np.float64), 16, 16, 0, 0, 114), "out must be float32 or uint8, got float64"),
    ((frame_ok, out_ok, 16, 17, 0, 0, 114), "does not fit the 16x16 tensor"),
    ((frame_ok, out_ok, 16, 16, 1, 0, 114), "does not fit the 16x16 tensor"),
    ((frame_ok, out_ok, 0, 16, 0, 0, 114), "does not fit"),
    ((frame_ok, out_ok, 16, 16, -1, 0, 114), "does not fit"),
    ((frame_ok, out_ok, 16, 16, 0, 0, 300), "pad_value must be 0..255"),
    ((np.zeros((8, 16, 3), np.uint8)[:, ::2], out_ok, 16, 16, 0, 0, 114), "frame must be C-contiguous"),
    ((frame_ok, np.zeros((1, 3, 16, 16), np.float32, order="F"), 16, 16, 0, 0, 114), "out must be C-contiguous"),
    ((_STORAGE[:192].reshape(8, 8, 3), _STORAGE[100:868].reshape(1, 3, 16, 16), 16, 16, 0, 0, 114),
     "out must not share memory with frame"),
])
def test_binding_checks_its_own_inputs(args, match):
    """The native entry point validates on its own: no input it accepts can make the kernel misbehave."""
    with pytest.raises(ValueError, match=match):
        _native.letterbox_into(*args)


def test_binding_refuses_implicit_conversion():
    with pytest.raises(TypeError):
        _native.letterbox_into(frame_ok.tolist(), out_ok, 16, 16, 0, 0, 114)


# -- OpenCV agreement (the path users write today) ----------------------------------------------------


def _cv2_letterbox(cv2, frame: np.ndarray, info: ops.LetterboxInfo) -> np.ndarray:
    """Ultralytics' LetterBox + the usual tensor prep: resize, copyMakeBorder, cvtColor, HWC -> CHW."""
    new_h, new_w = info.resized_hw
    image = frame if (new_h, new_w) == frame.shape[:2] else cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    bottom = info.out_hw[0] - new_h - info.pad_y
    right = info.out_hw[1] - new_w - info.pad_x
    image = cv2.copyMakeBorder(image, info.pad_y, bottom, info.pad_x, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None]


@pytest.mark.parametrize("src_hw, dst_hw, auto", [((576, 768), (640, 640), False), ((720, 1280), (640, 640), True),
                                                  ((1280, 1280), (640, 640), False), ((97, 131), (640, 640), False),
                                                  ((480, 640), (320, 416), False)])
def test_agrees_with_opencv_within_one_level(src_hw, dst_hw, auto):
    """Separate from the kernel tests: opencv has no armv7 wheel, so this one needs cv2 present.

    OpenCV's uint8 bilinear resize is fixed-point (11-bit weights) and its aarch64 build takes a NEON path
    that rounds differently from its x86 one: measured up to 2 levels apart on downscales under qemu
    Cortex-A72, while our kernel matches the NumPy reference on both. One level on x86-64, two elsewhere.
    """
    cv2 = pytest.importorskip("cv2", reason="opencv has no armv7 wheel")
    levels = 1 if platform.machine() in ("x86_64", "AMD64") else 2
    frame = make_frame(*src_hw, seed=11)
    tensor8, info = ops.letterbox(frame, dst_hw, auto=auto, dtype=np.uint8)
    expected = _cv2_letterbox(cv2, frame, info).astype(np.int16)
    assert np.abs(tensor8.astype(np.int16) - expected).max() <= levels
    tensor32, _ = ops.letterbox(frame, dst_hw, auto=auto)
    assert np.abs(tensor32.astype(np.float64) * 255 - expected).max() <= levels + 1e-3


# -- threads and instruction sets ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("src_hw, dst_hw", [((576, 768), (640, 640)), ((1080, 1920), (640, 640)),
                                            ((2000, 3), (640, 640)), ((9, 11), (64, 64))])
@pytest.mark.parametrize("write_pad", [True, False])
def test_threads_give_the_same_tensor_to_the_bit(dtype, src_hw, dst_hw, write_pad):
    """Rows split over threads (a 640x640 output has room for up to 6 runs) write what one thread writes."""
    frame = make_frame(*src_hw, seed=21)
    one = np.full((1, 3, *dst_hw), 7, dtype)
    ops.letterbox_into(frame, one, write_pad=write_pad)
    for threads in (2, 3, 4, 256):
        many = np.full_like(one, 7)
        assert ops.letterbox_into(frame, many, write_pad=write_pad, threads=threads) == ops.letterbox_geometry(
            src_hw, dst_hw)
        np.testing.assert_array_equal(many, one)
    if write_pad:
        assert_close(one, reference_letterbox(frame, dst_hw, dtype=dtype)[0])


def test_calls_from_several_python_threads_at_once_each_get_their_own_tensor():
    """The kernel runs without the GIL and its helper threads serve one call at a time; calls that find them
    busy run on their own thread. Eight threads letterboxing different frames at once all get exact tensors."""
    import concurrent.futures

    frames = [make_frame(576, 768, seed=40 + k) for k in range(8)]
    expected = []
    for frame in frames:
        out = np.zeros((1, 3, 640, 640), np.float32)
        ops.letterbox_into(frame, out)
        expected.append(out)

    def run(k: int) -> np.ndarray:
        out = np.zeros((1, 3, 640, 640), np.float32)
        for _ in range(20):
            ops.letterbox_into(frames[k], out, threads=2)
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def _letterbox_in_child(queue) -> None:
    frame = make_frame(576, 768, seed=3)
    out = np.zeros((1, 3, 640, 640), np.float32)
    ops.letterbox_into(frame, out, threads=4)
    queue.put(float(out.sum()))


@pytest.mark.skipif(platform.system() != "Linux", reason="fork start method: Linux only")
def test_a_forked_child_starts_its_own_helper_threads():
    """A child forked after the parent's helpers started has none of them: its threaded call neither hangs
    nor differs."""
    import multiprocessing

    frame = make_frame(576, 768, seed=3)
    out = np.zeros((1, 3, 640, 640), np.float32)
    ops.letterbox_into(frame, out, threads=4)  # the parent's helpers are running now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_letterbox_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child did not finish its letterbox"
    assert queue.get(timeout=5) == float(out.sum())


@pytest.mark.parametrize("threads", [0, -1, 257, 1.5, True])
def test_bad_thread_counts_are_refused(threads):
    with pytest.raises(InputError, match="threads must be an int in 1..256"):
        ops.letterbox_into(frame_ok, out_ok, threads=threads)
    if isinstance(threads, int) and not isinstance(threads, bool):
        with pytest.raises(ValueError, match="threads must be 1..256"):
            _native.letterbox_into(frame_ok, out_ok, 16, 16, 0, 0, 114, True, threads)


def _cpu_has_avx2_and_fma() -> bool:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "avx2" in flags and "fma" in flags


def test_the_kernel_takes_avx2_where_the_cpu_has_it():
    expected = "avx2+fma" if platform.machine() == "x86_64" and _cpu_has_avx2_and_fma() else "baseline"
    assert _native.letterbox_isa() == expected


_BASELINE_CHECK = """
import numpy as np
from edge_runtime import _native, reference as ref
from edge_runtime.vision import ops
assert _native.letterbox_isa() == "baseline", _native.letterbox_isa()
rng = np.random.default_rng(5)
for case in range(300):
    h, w = (int(v) for v in rng.integers(1, 120, 2))
    dh, dw = (int(v) for v in rng.integers(1, 96, 2))
    dtype = (np.float32, np.uint8)[case % 2]
    frame = rng.integers(0, 256, (h, w, 3), np.uint8)
    g = ref.letterbox_geometry(h, w, dh, dw, False, 32, True)
    want = np.empty((1, 3, g[0], g[1]), dtype)
    ref.letterbox_into(frame, want, *g[2:6], 114)
    got = np.empty_like(want)
    ops.letterbox_into(frame, got, threads=1 + case % 3)
    tol = 1e-6 if dtype == np.float32 else 1
    assert np.abs(got.astype(np.float64) - want.astype(np.float64)).max() <= tol, (case, h, w, dh, dw)
print("ok")
"""


def test_the_baseline_kernel_matches_the_reference_too():
    """EDGE_RUNTIME_ISA=baseline: the kernel every x86-64 CPU can run, checked on this one as well."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, EDGE_RUNTIME_ISA="baseline")
    done = subprocess.run([sys.executable, "-c", _BASELINE_CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
